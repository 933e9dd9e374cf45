import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { stringify } from 'yaml';
import { resolveConfig, serviceAccountOf, type ConfigEnvironment } from '../../../orchestrator/platform/kubernetes/config.ts';
import { isKubernetesPlatformError, KubeErrorCode } from '../../../orchestrator/platform/kubernetes/kube-errors.ts';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relayctl-kubeconfig-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Entry {
  name: string;
  server?: string;
  user?: string;
  cluster?: string;
  namespace?: string;
}

/** A kubeconfig file with these clusters, users and contexts. */
async function kubeconfig(file: string, options: { current?: string; clusters?: Entry[]; users?: Entry[]; contexts?: Entry[] }): Promise<string> {
  const path = join(dir, file);
  await writeFile(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      ...(options.current === undefined ? {} : { 'current-context': options.current }),
      clusters: (options.clusters ?? []).map((c) => ({ name: c.name, cluster: { server: c.server ?? `https://${c.name}.example:6443`, 'certificate-authority': 'ca.crt' } })),
      users: (options.users ?? []).map((u) => ({ name: u.name, user: { token: `token-of-${u.name}` } })),
      contexts: (options.contexts ?? []).map((c) => ({ name: c.name, context: { cluster: c.cluster, user: c.user, ...(c.namespace === undefined ? {} : { namespace: c.namespace }) } })),
    }),
  );
  return path;
}

function environment(env: Record<string, string> = {}, home: string | null = null): ConfigEnvironment {
  return { env, home, serviceAccountDir: join(dir, 'serviceaccount') };
}

function failure(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (error) {
    return { code: isKubernetesPlatformError(error) ? error.code : 'other', message: (error as Error).message };
  }
  throw new Error('expected a failure');
}

describe('configuration as kubectl finds it', () => {
  test('--kubeconfig: that file, its current context and namespace; -n and --context override', async () => {
    const file = await kubeconfig('config', {
      current: 'prod',
      clusters: [{ name: 'prod-cluster' }, { name: 'staging-cluster' }],
      users: [{ name: 'ci' }],
      contexts: [
        { name: 'prod', cluster: 'prod-cluster', user: 'ci', namespace: 'relays' },
        { name: 'staging', cluster: 'staging-cluster', user: 'ci' },
      ],
    });
    const resolved = resolveConfig({ kubeconfig: file }, environment());
    expect(resolved).toMatchObject({ context: 'prod', namespace: 'relays', server: 'https://prod-cluster.example:6443', user: 'ci', inCluster: false, source: file });
    // Relative paths in a kubeconfig are relative to its folder, as kubectl reads them.
    expect(resolved.kubeConfig.getCurrentCluster()?.caFile).toBe(join(dir, 'ca.crt'));
    expect(resolveConfig({ kubeconfig: file, context: 'staging' }, environment())).toMatchObject({ context: 'staging', namespace: 'default', server: 'https://staging-cluster.example:6443' });
    expect(resolveConfig({ kubeconfig: file, namespace: 'other' }, environment()).namespace).toBe('other');
    expect(failure(() => resolveConfig({ kubeconfig: file, namespace: 'Bad_NS' }, environment())).message).toBe('namespace "Bad_NS" is not a valid namespace name (a DNS label)');
    expect(failure(() => resolveConfig({ kubeconfig: join(dir, 'missing') }, environment()))).toEqual({ code: KubeErrorCode.Config, message: `--kubeconfig ${join(dir, 'missing')}: no such file` });
  });

  test('$KUBECONFIG: files merged, the first to define a name or current-context wins, missing files skipped', async () => {
    const first = await kubeconfig('first', {
      current: 'a',
      clusters: [{ name: 'shared', server: 'https://first.example:6443' }],
      users: [{ name: 'ci' }],
      contexts: [{ name: 'a', cluster: 'shared', user: 'ci', namespace: 'from-first' }],
    });
    const second = await kubeconfig('second', {
      current: 'b',
      clusters: [{ name: 'shared', server: 'https://second.example:6443' }, { name: 'only-second' }],
      users: [{ name: 'ci' }],
      contexts: [
        { name: 'a', cluster: 'only-second', user: 'ci', namespace: 'from-second' },
        { name: 'b', cluster: 'only-second', user: 'ci' },
      ],
    });
    const env = environment({ KUBECONFIG: [join(dir, 'absent'), first, '', second].join(delimiter) });
    expect(resolveConfig({}, env)).toMatchObject({ context: 'a', namespace: 'from-first', server: 'https://first.example:6443' });
    expect(resolveConfig({ context: 'b' }, env)).toMatchObject({ context: 'b', server: 'https://only-second.example:6443' });
    expect(failure(() => resolveConfig({}, environment({ KUBECONFIG: join(dir, 'absent') })))).toMatchObject({ code: KubeErrorCode.Config, message: expect.stringContaining('none of them exists') });
  });

  test('~/.kube/config when nothing else is given', async () => {
    await mkdir(join(dir, '.kube'));
    await kubeconfig('.kube/config', { current: 'home', clusters: [{ name: 'c' }], users: [{ name: 'me' }], contexts: [{ name: 'home', cluster: 'c', user: 'me' }] });
    expect(resolveConfig({}, environment({}, dir))).toMatchObject({ context: 'home', user: 'me', namespace: 'default' });
  });

  test('the in-cluster service account: its namespace, its identity, the token re-read from its file', async () => {
    const sa = join(dir, 'serviceaccount');
    await mkdir(sa);
    const claims = Buffer.from(JSON.stringify({ sub: 'system:serviceaccount:ci:relayctl' })).toString('base64url');
    await writeFile(join(sa, 'token'), `e30.${claims}.signature`);
    await writeFile(join(sa, 'namespace'), 'ci\n');
    await writeFile(join(sa, 'ca.crt'), 'not read here');
    const env = environment({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' });
    const resolved = resolveConfig({}, env);
    expect(resolved).toMatchObject({ context: 'in-cluster', namespace: 'ci', server: 'https://10.96.0.1:443', user: 'system:serviceaccount:ci:relayctl', inCluster: true, source: 'in-cluster service account' });
    expect(resolved.kubeConfig.getCurrentUser()?.authProvider).toEqual({ name: 'tokenFile', config: { tokenFile: join(sa, 'token') } });
    expect(resolveConfig({}, environment({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443', POD_NAMESPACE: 'relays' })).server).toBe('https://[fd00::1]:443');
    expect(resolveConfig({}, environment({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443', POD_NAMESPACE: 'relays' })).namespace).toBe('relays');
    expect(serviceAccountOf('garbage')).toBeUndefined();
  });

  test('errors say what exists and what to do', async () => {
    expect(failure(() => resolveConfig({}, environment()))).toEqual({
      code: KubeErrorCode.Config,
      message: 'no Kubernetes configuration found: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a pod with a service account',
    });
    const file = await kubeconfig('config', { clusters: [{ name: 'c', server: 'http://insecure.example:8080' }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }, { name: 'y', cluster: 'gone', user: 'u' }] });
    expect(failure(() => resolveConfig({ kubeconfig: file }, environment())).message).toBe(`${file} sets no current-context; pass --context (one of: x, y)`);
    expect(failure(() => resolveConfig({ kubeconfig: file, context: 'z' }, environment())).message).toBe(`context "z" is not in ${file} (contexts there: x, y)`);
    expect(failure(() => resolveConfig({ kubeconfig: file, context: 'y' }, environment())).message).toBe(`context "y" names cluster "gone", which ${file} does not define`);
    expect(failure(() => resolveConfig({ kubeconfig: file, context: 'x' }, environment())).message).toContain('plain http');
    await writeFile(join(dir, 'broken'), 'clusters: [{ name: c }]\n');
    expect(failure(() => resolveConfig({ kubeconfig: join(dir, 'broken') }, environment())).message).toContain('is not a usable kubeconfig: clusters[0].cluster is missing');
  });
});
