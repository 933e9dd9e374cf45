import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubernetesPodReader, KubernetesReadError, podFacts, resolveKubernetesApi, type KubernetesApiConfig } from '../../relay/startup/kubernetes-api.ts';
import { createCa } from '../../pki/certificates.ts';
import { podObject, startFakeKubeApi, type FakeKubeApi } from './fake-kube-api.ts';

type Api = Extract<KubernetesApiConfig, { kind: 'api' }>;

async function apiOf(fake: FakeKubeApi, setting = fake.url): Promise<Api> {
  const config = await resolveKubernetesApi({ setting, serviceAccountDir: fake.serviceAccountDir, podNamespace: null, env: {} });
  if (config.kind !== 'api') throw new Error(`expected an API, got off: ${config.reason}`);
  return config;
}

describe('resolveKubernetesApi', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relayctl-sa-'));
    await writeFile(join(dir, 'token'), 't');
    await writeFile(join(dir, 'ca.crt'), 'CA');
    await writeFile(join(dir, 'namespace'), 'from-sa');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('auto uses the in-cluster API when the service account is mounted, the pod namespace first', async () => {
    const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '6443' };
    expect(await resolveKubernetesApi({ setting: 'auto', serviceAccountDir: dir, podNamespace: 'relays', env })).toEqual({
      kind: 'api', server: 'https://10.96.0.1:6443', tokenFile: join(dir, 'token'), ca: Buffer.from('CA'), namespace: 'relays',
    });
    const v6 = await resolveKubernetesApi({ setting: 'auto', serviceAccountDir: dir, podNamespace: null, env: { KUBERNETES_SERVICE_HOST: 'fd00::1' } });
    expect(v6).toMatchObject({ kind: 'api', server: 'https://[fd00::1]:443', namespace: 'from-sa' });
  });

  it('auto is off, with the reason, outside a pod or without a token', async () => {
    expect(await resolveKubernetesApi({ setting: 'auto', serviceAccountDir: dir, podNamespace: null, env: {} }))
      .toEqual({ kind: 'off', reason: 'not in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set)' });
    const none = join(dir, 'missing');
    expect(await resolveKubernetesApi({ setting: 'auto', serviceAccountDir: none, podNamespace: null, env: { KUBERNETES_SERVICE_HOST: '10.96.0.1' } }))
      .toEqual({ kind: 'off', reason: `no service-account token in ${none} (automountServiceAccountToken off?)` });
    expect(await resolveKubernetesApi({ setting: 'off', serviceAccountDir: dir, podNamespace: null, env: { KUBERNETES_SERVICE_HOST: '10.96.0.1' } }))
      .toEqual({ kind: 'off', reason: '--kubernetes-api off' });
  });

  it('an explicit URL without a token is a configuration error naming the flag', async () => {
    await expect(resolveKubernetesApi({ setting: 'https://api.example:6443', serviceAccountDir: join(dir, 'missing'), podNamespace: 'x', env: {} }))
      .rejects.toMatchObject({ code: 'ERR_RELAY_CONFIG', message: expect.stringContaining('--kubernetes-api https://api.example:6443: no token') });
  });
});

describe('KubernetesPodReader against an HTTPS API double', () => {
  let fake: FakeKubeApi;
  let reader: KubernetesPodReader;
  beforeAll(async () => {
    fake = await startFakeKubeApi('relays');
    reader = new KubernetesPodReader(await apiOf(fake));
  });
  afterAll(async () => {
    await reader?.close();
    await fake?.close();
  });

  it('reads a pod: labels, pod IP, the mgmt port and deletion, with the bearer token', async () => {
    fake.pods.set('relay-a-0', { name: 'relay-a-0', labels: { 'relayctl.dev/restore': 'true', 'relayctl.dev/fleet': 'relay' }, podIp: '10.1.2.3', mgmtPort: 9443, terminating: true });
    expect(await reader.getPod('relay-a-0')).toEqual({
      name: 'relay-a-0', labels: { 'relayctl.dev/restore': 'true', 'relayctl.dev/fleet': 'relay' }, podIp: '10.1.2.3', mgmtPort: 9443, terminating: true,
    });
    expect(fake.requests.at(-1)).toBe('GET /api/v1/namespaces/relays/pods/relay-a-0');
  });

  it('a missing pod is null; a pod without an address has podIp null', async () => {
    expect(await reader.getPod('relay-b-7')).toBeNull();
    fake.pods.set('relay-b-0', { name: 'relay-b-0' });
    expect(await reader.getPod('relay-b-0')).toMatchObject({ podIp: null, mgmtPort: null, terminating: false, labels: {} });
  });

  it('reads the token again for every request (projected tokens rotate)', async () => {
    fake.token = 'rotated';
    await expect(reader.getPod('relay-a-0')).rejects.toMatchObject({ status: 401, message: expect.stringContaining('the service-account token was refused') });
    await writeFile(join(fake.serviceAccountDir, 'token'), 'rotated');
    expect(await reader.getPod('relay-a-0')).not.toBeNull();
  });

  it('a 403 says which permission the Role lacks', async () => {
    fake.failWith = 403;
    try {
      await expect(reader.getPod('relay-a-0')).rejects.toMatchObject({
        status: 403,
        message: expect.stringContaining("the relays' Role must grant get on pods in namespace relays: pods is forbidden"),
      });
    } finally {
      fake.failWith = null;
    }
  });

  it('refuses an API server whose certificate the service-account CA did not sign', async () => {
    const other = await createCa({ commonName: 'another CA', validityDays: 1 });
    const stranger = new KubernetesPodReader({ ...(await apiOf(fake)), ca: Buffer.from(other.certPem) });
    try {
      const error = await stranger.getPod('relay-a-0').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KubernetesReadError);
      expect((error as KubernetesReadError).status).toBeNull();
    } finally {
      await stranger.close();
    }
  });

  it('never asks for a name that is not a pod name', async () => {
    const before = fake.requests.length;
    await expect(reader.getPod('../secrets/x')).rejects.toThrow('is not a pod name');
    expect(fake.requests.length).toBe(before);
  });
});

describe('podFacts checks what the API sent', () => {
  it('takes only a Pod of the name asked for, with string labels', () => {
    expect(() => podFacts({ kind: 'Status' }, 'relay-a-0')).toThrow('the answer is not a Pod object');
    expect(() => podFacts(podObject('ns', { name: 'relay-a-1' }), 'relay-a-0')).toThrow('the answer names pod relay-a-1');
    expect(() => podFacts({ kind: 'Pod', metadata: { name: 'relay-a-0', labels: { a: 1 } } }, 'relay-a-0')).toThrow('label a is not a string');
    expect(podFacts({ kind: 'Pod', metadata: { name: 'relay-a-0' }, spec: { containers: [{ ports: [{ name: 'mgmt', containerPort: 70000 }] }] } }, 'relay-a-0').mgmtPort).toBeNull();
  });
});
