import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  VersionApi,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-apiserver/index.ts';
import { kubeConfigFor, raw, statusOf } from './helpers.ts';

const NS = 'relays';
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
const apply = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);

function statefulSet(name: string, replicas = 2): V1StatefulSet {
  return {
    metadata: { name, labels: { 'relayctl.dev/fleet': 'relay' } },
    spec: {
      replicas,
      serviceName: 'relay-peers',
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: { 'relayctl.dev/set': name } },
      template: {
        metadata: { labels: { 'relayctl.dev/set': name, 'relayctl.dev/fleet': 'relay' } },
        spec: { containers: [{ name: 'relay', image: 'relay:1', ports: [{ name: 'mgmt', containerPort: 8443 }] }] },
      },
    },
  };
}

let api: KubeApiServer;
let kc: KubeConfig;
let core: CoreV1Api;
let apps: AppsV1Api;

beforeAll(async () => {
  api = await startKubeApiServer({
    namespaces: ['default', NS],
    users: [{ name: 'ci', token: true }, { name: 'ops', certificate: true, groups: ['ops'] }],
    rbac: false,
    // The API alone: no pods from sets, no node.
    controllers: { statefulSets: false },
    kubelet: false,
  });
  kc = kubeConfigFor(api, 'admin', NS);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  await api.settled();
});

afterAll(async () => {
  await api.close();
});

describe('authentication', () => {
  test('a bearer token and a client certificate from the kubeconfig authenticate; a kubeconfig file loads', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kubeapi-'));
    try {
      await api.writeKubeconfig(path.join(dir, 'config'), 'ops', NS);
      const fromFile = new KubeConfig();
      fromFile.loadFromFile(path.join(dir, 'config'));
      expect(fromFile.getContextObject(fromFile.getCurrentContext())?.namespace).toBe(NS);
      await fromFile.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: NS });
      await kubeConfigFor(api, 'ci', NS).makeApiClient(CoreV1Api).listNamespacedPod({ namespace: NS });
      expect(api.requests.all().slice(-2).map((r) => [r.user, r.groups])).toEqual([
        ['ops', ['ops', 'system:authenticated']],
        ['ci', ['system:authenticated']],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('no credentials, or a wrong token, is 401 Unauthorized as a Status', async () => {
    for (const user of [null, 'nobody']) {
      const response = await raw(api, 'GET', `/api/v1/namespaces/${NS}/pods`, { user });
      expect(response.code).toBe(401);
      expect(JSON.parse(response.body)).toEqual({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    }
  });
});

describe('objects and resourceVersions', () => {
  test('create fills uid, creationTimestamp, resourceVersion and generation; every write takes the next revision', async () => {
    const before = api.store.revision();
    const set = await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('rv-a') });
    expect(set.metadata).toMatchObject({ name: 'rv-a', namespace: NS, generation: 1, resourceVersion: String(before + 1) });
    expect(set.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(set.metadata?.creationTimestamp).toBeInstanceOf(Date);
    const cm = await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'rv-cm' }, data: { a: '1' } } });
    expect(Number(cm.metadata?.resourceVersion)).toBe(before + 2);
    const list = await apps.listNamespacedStatefulSet({ namespace: NS });
    expect(Number(list.metadata?.resourceVersion)).toBeGreaterThanOrEqual(before + 2);
    expect(list.items.find((s) => s.metadata?.name === 'rv-a')).toMatchObject({ metadata: { resourceVersion: String(before + 1) } });
  });

  test('generation bumps on a spec change, not on a label change; a write that changes nothing keeps the resourceVersion', async () => {
    const created = await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('gen') });
    const labelled = await apps.patchNamespacedStatefulSet({ name: 'gen', namespace: NS, body: { metadata: { labels: { x: 'y' } } } }, merge);
    expect(labelled.metadata?.generation).toBe(1);
    const scaled = await apps.patchNamespacedStatefulSet({ name: 'gen', namespace: NS, body: { spec: { replicas: 5 } } }, merge);
    expect(scaled.metadata?.generation).toBe(2);
    const same = await apps.patchNamespacedStatefulSet({ name: 'gen', namespace: NS, body: { spec: { replicas: 5 } } }, merge);
    expect(same.metadata?.resourceVersion).toBe(scaled.metadata?.resourceVersion);
    expect(Number(scaled.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));
  });

  test('a stale resourceVersion in a PUT or a patch is 409 Conflict with the real message', async () => {
    const set = await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('conflict') });
    await apps.patchNamespacedStatefulSet({ name: 'conflict', namespace: NS, body: { metadata: { annotations: { a: '1' } } } }, merge);
    const stale = await statusOf(apps.replaceNamespacedStatefulSet({ name: 'conflict', namespace: NS, body: set }));
    expect(stale).toMatchObject({
      code: 409,
      reason: 'Conflict',
      message: 'Operation cannot be fulfilled on statefulsets.apps "conflict": the object has been modified; please apply your changes to the latest version and try again',
      details: { name: 'conflict', group: 'apps', kind: 'statefulsets' },
    });
    const patched = await statusOf(
      apps.patchNamespacedStatefulSet({ name: 'conflict', namespace: NS, body: { metadata: { resourceVersion: set.metadata!.resourceVersion, annotations: { b: '2' } } } }, merge),
    );
    expect(patched.reason).toBe('Conflict');
    const current = await apps.readNamespacedStatefulSet({ name: 'conflict', namespace: NS });
    const ok = await apps.patchNamespacedStatefulSet(
      { name: 'conflict', namespace: NS, body: { metadata: { resourceVersion: current.metadata!.resourceVersion, annotations: { b: '2' } } } },
      merge,
    );
    expect(ok.metadata?.annotations).toEqual({ a: '1', b: '2' });
  });
});

describe('errors', () => {
  test('404 NotFound and 409 AlreadyExists', async () => {
    expect(await statusOf(core.readNamespacedPod({ name: 'nope', namespace: NS }))).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods "nope" not found',
      reason: 'NotFound',
      details: { name: 'nope', kind: 'pods' },
      code: 404,
    });
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'dup' }, stringData: { a: 'b' } } });
    expect(await statusOf(core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'dup' } } }))).toMatchObject({
      code: 409,
      reason: 'AlreadyExists',
      message: 'secrets "dup" already exists',
    });
    expect(await statusOf(core.createNamespacedConfigMap({ namespace: 'absent', body: { metadata: { name: 'x' } } }))).toMatchObject({
      code: 404,
      message: 'namespaces "absent" not found',
    });
  });

  test('422 Invalid names the fields: a bad name, a selector that does not match the template, a bad label value', async () => {
    const badName = await statusOf(core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'Bad_Name' } } }));
    expect(badName).toMatchObject({ code: 422, reason: 'Invalid', details: { name: 'Bad_Name', kind: 'ConfigMap', causes: [{ reason: 'FieldValueInvalid', field: 'metadata.name' }] } });
    expect(badName.message).toMatch(/^ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/);

    const mismatch = statefulSet('mismatch');
    mismatch.spec!.template.metadata!.labels = { other: 'x' };
    const invalid = await statusOf(apps.createNamespacedStatefulSet({ namespace: NS, body: mismatch }));
    expect(invalid).toMatchObject({ code: 422, details: { group: 'apps', kind: 'StatefulSet', causes: [{ field: 'spec.template.metadata.labels' }] } });
    expect(invalid.message).toContain('`selector` does not match template `labels`');

    const label = await statusOf(core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'lbl', labels: { a: 'not ok' } } } }));
    expect(label.details).toMatchObject({ causes: [{ field: 'metadata.labels', message: expect.stringContaining('Invalid value: "not ok"') }] });
  });

  test('a StatefulSet selector is immutable', async () => {
    const set = await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('immutable') });
    set.spec!.selector = { matchLabels: { 'relayctl.dev/set': 'immutable', extra: 'x' } };
    set.spec!.template.metadata!.labels = { ...set.spec!.template.metadata!.labels, extra: 'x' };
    const status = await statusOf(apps.replaceNamespacedStatefulSet({ name: 'immutable', namespace: NS, body: set }));
    expect(status).toMatchObject({ code: 422, details: { causes: [{ reason: 'FieldValueForbidden', field: 'spec' }] } });
    expect(status.message).toContain("updates to statefulset spec for fields other than 'replicas'");
  });

  test("client-node's default JSON-patch content type with a merge-style body is a 400, as on a real server", async () => {
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'jp' } } });
    expect(await statusOf(core.patchNamespacedConfigMap({ name: 'jp', namespace: NS, body: { metadata: { labels: { a: 'b' } } } }))).toMatchObject({
      code: 400,
      reason: 'BadRequest',
      message: 'json: cannot unmarshal object into Go value of type jsonpatch.Patch',
    });
  });

  test('415 for a patch content type the resource does not accept; 405 for a method a path does not take', async () => {
    const unsupported = await statusOf(core.patchNamespacedConfigMap({ name: 'jp', namespace: NS, body: {} }, setHeaderOptions('Content-Type', 'application/json')));
    expect(unsupported).toMatchObject({
      code: 415,
      reason: 'UnsupportedMediaType',
      message:
        'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml',
    });
    const notAllowed = await raw(api, 'POST', `/api/v1/namespaces/${NS}/configmaps/jp`, { body: '{}', contentType: 'application/json' });
    expect(notAllowed.code).toBe(405);
    expect(JSON.parse(notAllowed.body)).toMatchObject({ reason: 'MethodNotAllowed', code: 405 });
  });
});

describe('patch types', () => {
  test('a strategic merge patch merges containers by name; a JSON patch honours test', async () => {
    await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('smp') });
    const patched = await apps.patchNamespacedStatefulSet(
      { name: 'smp', namespace: NS, body: { spec: { template: { spec: { containers: [{ name: 'relay', env: [{ name: 'RELAY_AWAIT_RESTORE', value: 'true' }] }] } } } } },
      strategic,
    );
    expect(patched.spec?.template.spec?.containers).toMatchObject([{ name: 'relay', image: 'relay:1', env: [{ name: 'RELAY_AWAIT_RESTORE', value: 'true' }] }]);

    const rv = patched.metadata!.resourceVersion!;
    const ops = (value: string) => [
      { op: 'test', path: '/metadata/resourceVersion', value },
      { op: 'add', path: '/metadata/labels/relayctl.dev~1restore', value: 'true' },
    ];
    const ok = await apps.patchNamespacedStatefulSet({ name: 'smp', namespace: NS, body: ops(rv) }, jsonPatch);
    expect(ok.metadata?.labels?.['relayctl.dev/restore']).toBe('true');
    expect(await statusOf(apps.patchNamespacedStatefulSet({ name: 'smp', namespace: NS, body: ops(rv) }, jsonPatch))).toMatchObject({
      code: 422,
      reason: 'Invalid',
      details: { causes: [{ message: 'testing value /metadata/resourceVersion failed: test failed' }] },
    });
  });

  test('server-side apply creates, repeats as a no-op, conflicts with another manager, and force takes over', async () => {
    const config = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa', namespace: NS }, data: { mode: 'a' } };
    const created = await core.patchNamespacedConfigMap({ name: 'ssa', namespace: NS, body: config, fieldManager: 'relayctl-deploy' }, apply);
    expect(created.data).toEqual({ mode: 'a' });
    const again = await core.patchNamespacedConfigMap({ name: 'ssa', namespace: NS, body: config, fieldManager: 'relayctl-deploy' }, apply);
    expect(again.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);

    const other = { ...config, data: { mode: 'b' } };
    const conflict = await statusOf(core.patchNamespacedConfigMap({ name: 'ssa', namespace: NS, body: other, fieldManager: 'kubectl' }, apply));
    expect(conflict).toMatchObject({
      code: 409,
      reason: 'Conflict',
      message: 'Apply failed with 1 conflict: conflict with "relayctl-deploy": .data.mode',
      details: { causes: [{ reason: 'FieldManagerConflict', message: 'conflict with "relayctl-deploy"', field: '.data.mode' }] },
    });
    const forced = await core.patchNamespacedConfigMap({ name: 'ssa', namespace: NS, body: other, fieldManager: 'kubectl', force: true }, apply);
    expect(forced.data).toEqual({ mode: 'b' });
    expect(forced.metadata?.managedFields?.map((m) => [m.manager, m.operation])).toEqual([['kubectl', 'Apply']]);

    const noManager = await statusOf(core.patchNamespacedConfigMap({ name: 'ssa', namespace: NS, body: config }, apply));
    expect(noManager).toMatchObject({ code: 422, message: 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch' });
  });
});

describe('dry run', () => {
  test('dryRun=All validates and runs admission, returns the would-be object, and stores nothing', async () => {
    const revision = api.store.revision();
    const created = await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('dry'), dryRun: 'All' });
    expect(created.metadata?.uid).toBeDefined();
    expect(created.spec?.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { partition: 0 } });
    expect(api.store.get('statefulsets', NS, 'dry')).toBeUndefined();

    const invalid = statefulSet('Dry');
    expect((await statusOf(apps.createNamespacedStatefulSet({ namespace: NS, body: invalid, dryRun: 'All' }))).code).toBe(422);
    const pod = { metadata: { name: 'dry-pod' }, spec: { serviceAccountName: 'missing', containers: [{ name: 'c', image: 'x:1' }] } };
    expect(await statusOf(core.createNamespacedPod({ namespace: NS, body: pod, dryRun: 'All' }))).toMatchObject({
      code: 403,
      message: `pods "dry-pod" is forbidden: error looking up service account ${NS}/missing: serviceaccount "missing" not found`,
    });

    await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('dry-existing') });
    const afterCreate = api.store.revision();
    const patched = await apps.patchNamespacedStatefulSet({ name: 'dry-existing', namespace: NS, body: { spec: { replicas: 7 } }, dryRun: 'All' }, merge);
    expect(patched.spec?.replicas).toBe(7);
    await apps.deleteNamespacedStatefulSet({ name: 'dry-existing', namespace: NS, dryRun: 'All' });
    expect(api.store.get('statefulsets', NS, 'dry-existing')).toMatchObject({ spec: { replicas: 2 } });
    expect(api.store.revision()).toBe(afterCreate);
    expect(afterCreate).toBe(revision + 1);
    expect(api.requests.all().filter((r) => r.dryRun).map((r) => r.verb)).toEqual(['create', 'create', 'create', 'patch', 'delete']);
  });
});

describe('subresources', () => {
  test('status writes change only status; the main resource ignores status; scale reads and writes replicas', async () => {
    await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('sub') });
    const status = await apps.patchNamespacedStatefulSetStatus({ name: 'sub', namespace: NS, body: { status: { replicas: 2, readyReplicas: 1 }, spec: { replicas: 9 } } }, merge);
    expect(status.status).toMatchObject({ replicas: 2, readyReplicas: 1 });
    expect(status.spec?.replicas).toBe(2);
    const main = await apps.patchNamespacedStatefulSet({ name: 'sub', namespace: NS, body: { status: { replicas: 0 } } }, merge);
    expect(main.status?.replicas).toBe(2);

    const scale = await apps.readNamespacedStatefulSetScale({ name: 'sub', namespace: NS });
    expect(scale).toMatchObject({ kind: 'Scale', apiVersion: 'autoscaling/v1', spec: { replicas: 2 }, status: { replicas: 2, selector: 'relayctl.dev/set=sub' } });
    const scaled = await apps.patchNamespacedStatefulSetScale({ name: 'sub', namespace: NS, body: { spec: { replicas: 4 } } }, merge);
    expect(scaled.spec?.replicas).toBe(4);
    expect(api.store.get('statefulsets', NS, 'sub')).toMatchObject({ spec: { replicas: 4 }, metadata: { generation: 2 } });
  });
});

describe('lists and selectors', () => {
  test('label selectors (equality and set-based) and fieldSelector metadata.name', async () => {
    for (const [name, labels] of [['sel-1', { app: 'relay', set: 'a' }], ['sel-2', { app: 'relay', set: 'b' }], ['sel-3', { app: 'echo' }]] as const) {
      await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name, labels } } });
    }
    const names = async (labelSelector?: string, fieldSelector?: string) =>
      (await core.listNamespacedConfigMap({ namespace: NS, labelSelector, fieldSelector })).items.map((i) => i.metadata?.name).filter((n) => n?.startsWith('sel-'));
    expect(await names('app=relay')).toEqual(['sel-1', 'sel-2']);
    expect(await names('app==relay,set!=a')).toEqual(['sel-2']);
    expect(await names('set in (a,b)')).toEqual(['sel-1', 'sel-2']);
    expect(await names('set notin (a)')).toEqual(['sel-2', 'sel-3']);
    expect(await names('set')).toEqual(['sel-1', 'sel-2']);
    expect(await names('!set')).toEqual(['sel-3']);
    expect(await names(undefined, 'metadata.name=sel-3')).toEqual(['sel-3']);
    expect(await statusOf(core.listNamespacedConfigMap({ namespace: NS, fieldSelector: 'spec.nodeName=x' }))).toMatchObject({
      code: 400,
      message: 'field label not supported: spec.nodeName',
    });
    const items = (await core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'app=echo' })).items;
    expect(items[0]).not.toHaveProperty('kind');
  });
});

describe('deletion', () => {
  test('a StatefulSet delete answers a Success Status; finalizers keep an object until they are removed', async () => {
    const set = await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('del') });
    const status = await apps.deleteNamespacedStatefulSet({ name: 'del', namespace: NS });
    expect(status).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'del', group: 'apps', kind: 'statefulsets', uid: set.metadata?.uid } });
    expect(api.store.get('statefulsets', NS, 'del')).toBeUndefined();

    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'fin', finalizers: ['example.com/hold'] } } });
    await core.deleteNamespacedConfigMap({ name: 'fin', namespace: NS });
    expect(api.store.get('configmaps', NS, 'fin')?.metadata.deletionTimestamp).toBeDefined();
    await core.patchNamespacedConfigMap({ name: 'fin', namespace: NS, body: { metadata: { finalizers: null } } }, merge);
    expect(api.store.get('configmaps', NS, 'fin')).toBeUndefined();
  });

  test('a Lease update guarded by its resourceVersion', async () => {
    const coordination = kc.makeApiClient(CoordinationV1Api);
    const lease = await coordination.createNamespacedLease({
      namespace: NS,
      body: { metadata: { name: 'relayctl-relay' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: new Date(), renewTime: new Date() } },
    });
    expect(api.store.get('leases', NS, 'relayctl-relay')?.spec).toMatchObject({ renewTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/) });
    const taken = { ...lease, spec: { ...lease.spec, holderIdentity: 'b' } };
    await coordination.replaceNamespacedLease({ name: 'relayctl-relay', namespace: NS, body: taken });
    expect((await statusOf(coordination.replaceNamespacedLease({ name: 'relayctl-relay', namespace: NS, body: taken }))).reason).toBe('Conflict');
  });
});

describe('namespaces and discovery', () => {
  test('a new namespace gets its default ServiceAccount and root CA; deleting it deletes its content', async () => {
    await core.createNamespace({ body: { metadata: { name: 'scratch' } } });
    await api.settled();
    expect(api.store.get('serviceaccounts', 'scratch', 'default')).toBeDefined();
    expect(api.store.get('configmaps', 'scratch', 'kube-root-ca.crt')?.data).toEqual({ 'ca.crt': api.ca });
    await core.createNamespacedSecret({ namespace: 'scratch', body: { metadata: { name: 's' } } });
    // A finalizer nobody removes yet keeps the namespace terminating.
    await core.createNamespacedConfigMap({ namespace: 'scratch', body: { metadata: { name: 'held', finalizers: ['example.com/hold'] } } });
    await core.deleteNamespace({ name: 'scratch' });
    expect(await statusOf(core.createNamespacedSecret({ namespace: 'scratch', body: { metadata: { name: 't' } } }))).toMatchObject({
      code: 403,
      message: 'secrets "t" is forbidden: unable to create new content in namespace scratch because it is being terminated',
    });
    await api.settled();
    expect(api.store.get('namespaces', '', 'scratch')?.status).toEqual({ phase: 'Terminating' });
    expect(api.store.list('secrets', 'scratch')).toEqual([]);
    await core.patchNamespacedConfigMap({ name: 'held', namespace: 'scratch', body: { metadata: { finalizers: null } } }, merge);
    await api.store.waitFor('namespaces', '', 'scratch', (ns) => ns === undefined);
  });

  test('discovery: /version, /api/v1 and /apis list what is served', async () => {
    const version = await kc.makeApiClient(VersionApi).getCode();
    expect(version.major).toBe('1');
    const resources = await core.getAPIResources();
    expect(resources.resources.map((r) => r.name)).toEqual(expect.arrayContaining(['pods', 'pods/status', 'pods/portforward', 'services', 'secrets']));
    const groups = JSON.parse((await raw(api, 'GET', '/apis')).body) as { groups: { name: string }[] };
    expect(groups.groups.map((g) => g.name)).toEqual(
      expect.arrayContaining(['apps', 'coordination.k8s.io', 'discovery.k8s.io', 'rbac.authorization.k8s.io', 'policy', 'networking.k8s.io']),
    );
  });
});
