import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1StatefulSet } from '@kubernetes/client-node';
import { relayctlRules } from '../../../api/kubernetes-rbac.ts';
import { openKubernetesPlatform, type KubernetesPlatformOptions, type OpenedKubernetesPlatform } from '../../../orchestrator/platform/kubernetes/index.ts';
import { eventually as eventuallyOnce } from '../../support/eventually.ts';
import { startKubeApiServer, type KubeApiServer, type KubeApiServerOptions, type KubeObject, type RecordedRequest } from '../../support/kube-apiserver/index.ts';
import { activeSet } from './fixtures.ts';

/**
 * The Kubernetes API stand-in set up as a cluster where relayctl runs as the service account
 * `system:serviceaccount:relays:relayctl`, bound to the Role manifests/base ships (api/kubernetes-rbac.ts), nothing
 * more.
 */

export const NS = 'relays';
export const RELAYCTL = 'system:serviceaccount:relays:relayctl';

/** relayctl's Role, as manifests/base ships it. */
export const RELAYCTL_RULES = relayctlRules('relay');

export interface StandIn {
  api: KubeApiServer;
  /** Opens the platform through a kubeconfig file for `user` (default relayctl); closed by `close()`. */
  open(options?: Partial<KubernetesPlatformOptions>, user?: string): Promise<OpenedKubernetesPlatform>;
  /** A kubeconfig file for `user` (its YAML changed by `edit`, if given). */
  kubeconfig(user: string, edit?: (yaml: string) => string): Promise<string>;
  /** The admin's CoreV1Api (pod status writes, what a kubelet would do). */
  admin: CoreV1Api;
  adminConfig: KubeConfig;
  /** relayctl's requests from `since` (a seq) on, as "verb resource[/sub] name" (plus " dryRun" and the patch type). */
  calls(since?: number, filter?: (request: RecordedRequest) => boolean): string[];
  /** The seq of the last request so far. */
  mark(): number;
  close(): Promise<void>;
}

/**
 * Without options no kubelet runs: the test plays it (runPods) so that pod states are exactly what it wrote.
 * Pass `kubelet` to run pods as real processes.
 */
export async function standIn(options: Pick<KubeApiServerOptions, 'kubelet' | 'kubeProxy'> = {}): Promise<StandIn> {
  const api = await startKubeApiServer({
    namespaces: [NS],
    users: [{ name: RELAYCTL }, { name: 'stranger' }],
    kubelet: options.kubelet ?? false,
    kubeProxy: options.kubeProxy ?? false,
  });
  api.apply([
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'relayctl', namespace: NS } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'relay', namespace: NS } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'relayctl', namespace: NS }, rules: RELAYCTL_RULES },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'relayctl', namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'relayctl' },
      subjects: [{ kind: 'ServiceAccount', name: 'relayctl', namespace: NS }],
    },
  ] as KubeObject[]);
  const dir = await mkdtemp(join(tmpdir(), 'relayctl-kube-'));
  let files = 0;
  const kubeconfig = async (user: string, edit: (yaml: string) => string = (yaml) => yaml): Promise<string> => {
    const file = join(dir, `config-${++files}`);
    await writeFile(file, edit(api.kubeconfigFor(user, NS)), { mode: 0o600 });
    return file;
  };
  const adminConfig = new KubeConfig();
  adminConfig.loadFromString(api.kubeconfigFor('admin', NS));
  const opened: OpenedKubernetesPlatform[] = [];
  return {
    api,
    admin: adminConfig.makeApiClient(CoreV1Api),
    adminConfig,
    kubeconfig,
    async open(options = {}, user = RELAYCTL) {
      const file = await kubeconfig(user);
      const platform = await openKubernetesPlatform({ name: 'relay', kubeconfig: file, mgmtAccess: 'port-forward', environment: { env: {}, home: null, serviceAccountDir: join(dir, 'none') }, ...options });
      opened.push(platform);
      return platform;
    },
    calls(since = 0, filter = () => true) {
      return api.requests
        .all(RELAYCTL)
        .filter((request) => request.seq > since && filter(request))
        .map(describeRequest);
    },
    mark() {
      return api.requests.all().at(-1)?.seq ?? 0;
    },
    async close() {
      await Promise.all(opened.map((platform) => platform.close()));
      await api.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Grants `user` these rules in the namespace: a Role and a RoleBinding, both named `name`. */
export function bindRole(standin: StandIn, name: string, user: string, rules: readonly object[]): void {
  standin.api.apply([
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: NS }, rules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }],
    },
  ] as KubeObject[]);
}

/** test/support's eventually, waking on the next change the platform's watches see (or after 200 ms: a relay's own state is not watched). */
export function eventually<T>(
  platform: { waitForChange(timeoutMs: number): Promise<boolean> },
  what: string,
  check: () => Promise<T | null | false | undefined>,
  timeoutMs = 25_000,
): Promise<T> {
  return eventuallyOnce(what, check, { timeoutMs, everyMs: 200, pause: (ms) => platform.waitForChange(ms) });
}

export function describeRequest(request: RecordedRequest): string {
  const resource = request.subresource === '' ? request.resource : `${request.resource}/${request.subresource}`;
  const parts = [request.verb, resource];
  if (request.name !== '') parts.push(request.name);
  if (request.verb === 'patch' && request.contentType !== undefined) parts.push(`(${request.contentType})`);
  if (request.dryRun) parts.push('dryRun');
  if (request.code >= 400) parts.push(`-> ${request.code}`);
  return parts.join(' ');
}

/** Requests the watch caches make in the background (their lists and watches): left out of exact sequences. */
export const notCache = (request: RecordedRequest): boolean => request.verb !== 'watch' && request.verb !== 'list';

/** Deploys relay-a as the manifests would (admin), without its server-owned fields. */
export function deployActiveSet(api: KubeApiServer, image = 'registry.example/relay:1.0'): KubeObject {
  const set = activeSet({ image }) as V1StatefulSet & Record<string, unknown>;
  const { status: _status, ...rest } = set;
  const metadata = { ...set.metadata };
  for (const field of ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields'] as const) delete metadata[field];
  delete metadata.annotations;
  return api.apply({ ...rest, metadata } as unknown as KubeObject)[0]!;
}

/**
 * Runs pods of `set` as a kubelet would (for a stand-in started without one): waits for the StatefulSet
 * controller to create each one, in order, then writes a Running status with a loopback pod IP and the Ready
 * condition. Extra labels are patched on as an admin.
 */
export async function runPods(standin: StandIn, set: string, ordinals: number[], options: { ready?: boolean; labels?: Record<string, string> } = {}): Promise<void> {
  for (const ordinal of ordinals) {
    const name = `${set}-${ordinal}`;
    await standin.api.store.waitFor('pods', NS, name, (pod) => pod !== undefined);
    if (options.labels !== undefined) {
      await standin.admin.patchNamespacedPod({ name, namespace: NS, body: { metadata: { labels: options.labels } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    }
    const created = await standin.admin.readNamespacedPod({ name, namespace: NS });
    await standin.admin.replaceNamespacedPodStatus({
      name,
      namespace: NS,
      body: {
        ...created,
        status: {
          phase: 'Running',
          podIP: `127.0.100.${ordinal + 1}`,
          conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }],
        },
      },
    });
  }
}
