import { AppsV1Api, AuthorizationV1Api, CoordinationV1Api, CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../support/kube-apiserver/index.ts';
import { kubeConfigFor, statusOf } from './helpers.ts';

const NS = 'relays';
const SA = `system:serviceaccount:${NS}:relayctl`;
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const role: KubeObject = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'Role',
  metadata: { name: 'relayctl', namespace: NS },
  rules: [
    { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
    { apiGroups: ['apps'], resources: ['statefulsets/scale'], verbs: ['patch'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'patch'] },
    { apiGroups: [''], resources: ['secrets'], resourceNames: ['relay-relayctl-tls'], verbs: ['get'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
  ],
};

function binding(name: string, roleRef: { kind: string; name: string }, subjects: Record<string, string>[]): KubeObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name, namespace: NS },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', ...roleRef },
    subjects,
  };
}

let api: KubeApiServer;
let core: CoreV1Api;
let apps: AppsV1Api;

beforeAll(async () => {
  api = await startKubeApiServer({ namespaces: [NS, 'other'], users: [{ name: SA }, { name: 'dev', groups: ['developers'] }], kubelet: false });
  api.apply([
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'relayctl', namespace: NS } },
    role,
    binding('relayctl', { kind: 'Role', name: 'relayctl' }, [{ kind: 'ServiceAccount', name: 'relayctl', namespace: NS }]),
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'relay-relayctl-tls', namespace: NS }, stringData: { 'tls.crt': 'x' } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'relay-dtls', namespace: NS }, stringData: { key: 'x' } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'relay-a-0', namespace: NS }, spec: { containers: [{ name: 'relay', image: 'relay:1' }] } },
  ]);
  const kc = kubeConfigFor(api, SA, NS);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  await api.settled();
});

afterAll(async () => {
  await api.close();
});

describe('RBAC', () => {
  test('what the Role grants is allowed; anything else is 403 with the real message', async () => {
    await core.listNamespacedPod({ namespace: NS });
    await core.patchNamespacedPod({ name: 'relay-a-0', namespace: NS, body: { metadata: { labels: { 'relayctl.dev/restore': 'true' } } } }, merge);
    expect(await statusOf(core.deleteNamespacedPod({ name: 'relay-a-0', namespace: NS }))).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `pods "relay-a-0" is forbidden: User "${SA}" cannot delete resource "pods" in API group "" in the namespace "${NS}"`,
      reason: 'Forbidden',
      details: { name: 'relay-a-0', kind: 'pods' },
      code: 403,
    });
    expect((await statusOf(core.listNamespacedPod({ namespace: 'other' }))).message).toBe(
      `pods is forbidden: User "${SA}" cannot list resource "pods" in API group "" in the namespace "other"`,
    );
  });

  test('a subresource needs its own rule: pods/status is not pods', async () => {
    const status = await statusOf(core.patchNamespacedPodStatus({ name: 'relay-a-0', namespace: NS, body: { status: { phase: 'Running' } } }, merge));
    expect(status.message).toBe(`pods "relay-a-0" is forbidden: User "${SA}" cannot patch resource "pods/status" in API group "" in the namespace "${NS}"`);
    const scale = await statusOf(apps.readNamespacedStatefulSetScale({ name: 'relay-a', namespace: NS }));
    expect(scale.message).toBe(`statefulsets.apps "relay-a" is forbidden: User "${SA}" cannot get resource "statefulsets/scale" in API group "apps" in the namespace "${NS}"`);
  });

  test('resourceNames limit a rule to those objects, and never match list', async () => {
    const secret = await core.readNamespacedSecret({ name: 'relay-relayctl-tls', namespace: NS });
    expect(secret.metadata?.name).toBe('relay-relayctl-tls');
    expect((await statusOf(core.readNamespacedSecret({ name: 'relay-dtls', namespace: NS }))).code).toBe(403);
    expect((await statusOf(core.listNamespacedSecret({ namespace: NS }))).message).toBe(
      `secrets is forbidden: User "${SA}" cannot list resource "secrets" in API group "" in the namespace "${NS}"`,
    );
  });

  test('groups, ClusterRoles bound in a namespace, and a binding to a missing Role named in the reason', async () => {
    const dev = kubeConfigFor(api, 'dev', NS).makeApiClient(CoordinationV1Api);
    api.apply([
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'lease-reader' }, rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['*'], verbs: ['list'] }] },
      binding('devs-read', { kind: 'ClusterRole', name: 'lease-reader' }, [{ kind: 'Group', name: 'developers', apiGroup: 'rbac.authorization.k8s.io' }]),
      binding('devs-missing', { kind: 'Role', name: 'absent' }, [{ kind: 'User', name: 'dev', apiGroup: 'rbac.authorization.k8s.io' }]),
    ]);
    await dev.listNamespacedLease({ namespace: NS });
    expect((await statusOf(dev.createNamespacedLease({ namespace: NS, body: { metadata: { name: 'l' } } }))).message).toBe(
      `leases.coordination.k8s.io is forbidden: User "dev" cannot create resource "leases" in API group "coordination.k8s.io" in the namespace "${NS}": RBAC: role.rbac.authorization.k8s.io "absent" not found`,
    );
  });

  test('RBAC is switched per user; the admin (system:masters) bypasses it', async () => {
    api.enforceRbac(SA, false);
    await core.listNamespacedSecret({ namespace: NS });
    api.enforceRbac(SA, true);
    expect((await statusOf(core.listNamespacedSecret({ namespace: NS }))).code).toBe(403);
    await kubeConfigFor(api, 'admin', NS).makeApiClient(CoreV1Api).listNamespacedSecret({ namespace: NS });
  });

  test('a SelfSubjectAccessReview answers what the Role allows', async () => {
    const authz = kubeConfigFor(api, SA, NS).makeApiClient(AuthorizationV1Api);
    const ask = async (verb: string, resource: string, subresource?: string) =>
      (await authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { namespace: NS, verb, group: '', resource, subresource } } } })).status?.allowed;
    expect(await ask('patch', 'pods')).toBe(true);
    expect(await ask('create', 'pods', 'portforward')).toBe(false);
  });

  test('the request log gives the exact calls and the rules they needed', async () => {
    api.requests.clear();
    await core.listNamespacedPod({ namespace: NS, labelSelector: 'relayctl.dev/set=relay-a' });
    await core.patchNamespacedPod({ name: 'relay-a-0', namespace: NS, body: { metadata: { labels: { 'relayctl.dev/serving': null } } } }, merge);
    await statusOf(apps.createNamespacedStatefulSet({ namespace: NS, body: { metadata: { name: 'x' } }, dryRun: 'All' }));
    expect(api.requests.all().map((r) => [r.verb, r.resource, r.name, r.dryRun, r.contentType ?? '', r.code])).toEqual([
      ['list', 'pods', '', false, '', 200],
      ['patch', 'pods', 'relay-a-0', false, 'application/merge-patch+json', 200],
      ['create', 'statefulsets', '', true, 'application/json', 422],
    ]);
    expect(api.requests.requiredRules(SA)).toEqual([
      { apiGroup: '', resource: 'pods', verb: 'list' },
      { apiGroup: '', resource: 'pods', verb: 'patch' },
      { apiGroup: 'apps', resource: 'statefulsets', verb: 'create' },
    ]);
  });
});
