import { AppsV1Api, CoreV1Api, DiscoveryV1Api, PatchStrategy, setHeaderOptions, type V1Pod, type V1StatefulSet } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startKubeApiServer, type KubeApiServer, type KubeObject, type StoreEvent } from '../support/kube-apiserver/index.ts';
import { kubeConfigFor } from './helpers.ts';

// No kubelet here: pods stay unscheduled (deleted at once) and the tests play the kubelet by writing pod status.
const NS = 'relays';
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

function statefulSet(name: string, replicas: number, policy: 'Parallel' | 'OrderedReady' = 'Parallel'): V1StatefulSet {
  return {
    metadata: { name },
    spec: {
      replicas,
      serviceName: 'relay-peers',
      podManagementPolicy: policy,
      selector: { matchLabels: { 'relayctl.dev/set': name } },
      template: {
        metadata: { labels: { 'relayctl.dev/set': name, 'relayctl.dev/fleet': 'relay' } },
        spec: { containers: [{ name: 'relay', image: 'relay:1', ports: [{ name: 'dtls', containerPort: 5684, protocol: 'UDP' }, { name: 'mgmt', containerPort: 8443 }] }] },
      },
    },
  };
}

let api: KubeApiServer;
let core: CoreV1Api;
let apps: AppsV1Api;
let discovery: DiscoveryV1Api;
let nextIp = 1;

beforeAll(async () => {
  api = await startKubeApiServer({ namespaces: [NS], kubelet: false });
  const kc = kubeConfigFor(api, 'admin', NS);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  discovery = kc.makeApiClient(DiscoveryV1Api);
});

afterAll(async () => {
  expect(api.controllerErrors()).toEqual([]);
  await api.close();
});

async function setPodStatus(name: string, ready: boolean): Promise<void> {
  const pod = api.store.get('pods', NS, name)!;
  const ip = (pod.status as { podIP?: string }).podIP ?? `10.0.0.${nextIp++}`;
  await core.patchNamespacedPodStatus(
    { name, namespace: NS, body: { status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } } },
    merge,
  );
}

function podNames(set: string): string[] {
  return api.store.list('pods', NS, `relayctl.dev/set=${set}`).map((p) => p.metadata.name!);
}

/** Records pod events of one set from now on. */
function recordPods(set: string): { events: string[]; stop: () => void } {
  const events: string[] = [];
  const stop = api.store.subscribe((event: StoreEvent) => {
    if (event.table === '/pods' && event.object.metadata.labels?.['relayctl.dev/set'] === set && event.type !== 'MODIFIED') events.push(`${event.type} ${event.name}`);
  });
  return { events, stop };
}

describe('the StatefulSet controller', () => {
  test('Parallel: creates every pod from the template with the labels, owner and hostname the real one sets', async () => {
    const set = await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('relay-a', 3) });
    await api.settled();
    expect(podNames('relay-a')).toEqual(['relay-a-0', 'relay-a-1', 'relay-a-2']);
    const pod = api.store.get('pods', NS, 'relay-a-1')! as KubeObject & V1Pod;
    const revision = pod.metadata.labels!['controller-revision-hash'];
    expect(revision).toMatch(/^relay-a-[a-z0-9]{10}$/);
    expect(pod.metadata.labels).toEqual({
      'relayctl.dev/set': 'relay-a',
      'relayctl.dev/fleet': 'relay',
      'controller-revision-hash': revision,
      'statefulset.kubernetes.io/pod-name': 'relay-a-1',
      'apps.kubernetes.io/pod-index': '1',
    });
    expect(pod.metadata.ownerReferences).toEqual([{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'relay-a', uid: set.metadata!.uid, controller: true, blockOwnerDeletion: true }]);
    expect(pod.spec).toMatchObject({ hostname: 'relay-a-1', subdomain: 'relay-peers', serviceAccountName: 'default' });
    expect(api.store.get('statefulsets', NS, 'relay-a')!.status).toMatchObject({ observedGeneration: 1, replicas: 3, readyReplicas: 0, currentRevision: revision, updateRevision: revision });

    for (const name of podNames('relay-a')) await setPodStatus(name, true);
    await api.settled();
    expect(api.store.get('statefulsets', NS, 'relay-a')!.status).toMatchObject({ replicas: 3, readyReplicas: 3, availableReplicas: 3, currentReplicas: 3, updatedReplicas: 3 });
  });

  test('recreates a deleted pod; scales down from the highest ordinal', async () => {
    const before = api.store.get('pods', NS, 'relay-a-1')!.metadata.uid;
    const record = recordPods('relay-a');
    await core.deleteNamespacedPod({ name: 'relay-a-1', namespace: NS });
    await api.settled();
    expect(api.store.get('pods', NS, 'relay-a-1')!.metadata.uid).not.toBe(before);
    await apps.patchNamespacedStatefulSetScale({ name: 'relay-a', namespace: NS, body: { spec: { replicas: 1 } } }, merge);
    await api.settled();
    record.stop();
    expect(record.events).toEqual(['DELETED relay-a-1', 'ADDED relay-a-1', 'DELETED relay-a-2', 'DELETED relay-a-1']);
    expect(podNames('relay-a')).toEqual(['relay-a-0']);
  });

  test('OrderedReady: each pod waits for the previous one to be Running and Ready', async () => {
    await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('ordered', 3, 'OrderedReady') });
    await api.settled();
    expect(podNames('ordered')).toEqual(['ordered-0']);
    await setPodStatus('ordered-0', true);
    await api.settled();
    expect(podNames('ordered')).toEqual(['ordered-0', 'ordered-1']);
    await setPodStatus('ordered-1', false);
    await api.settled();
    expect(podNames('ordered')).toEqual(['ordered-0', 'ordered-1']);
  });

  test('a template change rolls the pods from the highest ordinal, one at a time, once all are ready', async () => {
    await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('roll', 2) });
    await api.settled();
    for (const name of podNames('roll')) await setPodStatus(name, true);
    const record = recordPods('roll');
    await apps.patchNamespacedStatefulSet(
      { name: 'roll', namespace: NS, body: { spec: { template: { metadata: { annotations: { rev: '2' } } } } } },
      merge,
    );
    await api.settled();
    expect(record.events).toEqual(['DELETED roll-1', 'ADDED roll-1']);
    await setPodStatus('roll-1', true);
    await api.settled();
    record.stop();
    expect(record.events).toEqual(['DELETED roll-1', 'ADDED roll-1', 'DELETED roll-0', 'ADDED roll-0']);
    const status = api.store.get('statefulsets', NS, 'roll')!.status as { updateRevision: string };
    expect(podNames('roll').map((n) => api.store.get('pods', NS, n)!.metadata.labels!['controller-revision-hash'])).toEqual([status.updateRevision, status.updateRevision]);
  });
});

describe('garbage collection', () => {
  test('deleting a set deletes its pods (background); Orphan leaves them without the owner', async () => {
    await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('gc', 2) });
    await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('orphans', 2) });
    await api.settled();
    await apps.deleteNamespacedStatefulSet({ name: 'gc', namespace: NS });
    await apps.deleteNamespacedStatefulSet({ name: 'orphans', namespace: NS, propagationPolicy: 'Orphan' });
    await api.settled();
    expect(podNames('gc')).toEqual([]);
    expect(api.store.get('statefulsets', NS, 'orphans')).toBeUndefined();
    expect(podNames('orphans')).toEqual(['orphans-0', 'orphans-1']);
    expect(api.store.get('pods', NS, 'orphans-0')!.metadata.ownerReferences).toBeUndefined();
  });

  test('Foreground: the set stays, with a deletionTimestamp, until its pods are gone', async () => {
    await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('fg', 1) });
    await api.settled();
    // A finalizer on the pod holds it, and so the set.
    await core.patchNamespacedPod({ name: 'fg-0', namespace: NS, body: { metadata: { finalizers: ['example.com/hold'] } } }, merge);
    await apps.deleteNamespacedStatefulSet({ name: 'fg', namespace: NS, propagationPolicy: 'Foreground' });
    await api.settled();
    expect(api.store.get('statefulsets', NS, 'fg')!.metadata).toMatchObject({ finalizers: ['foregroundDeletion'], deletionTimestamp: expect.any(String) });
    expect(api.store.get('pods', NS, 'fg-0')!.metadata.deletionTimestamp).toBeDefined();
    await core.patchNamespacedPod({ name: 'fg-0', namespace: NS, body: { metadata: { finalizers: null } } }, merge);
    await api.settled();
    expect(api.store.get('statefulsets', NS, 'fg')).toBeUndefined();
  });
});

describe('the EndpointSlice controller', () => {
  test('ready, serving and terminating follow the pods; named target ports resolve; publishNotReadyAddresses', async () => {
    await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet('eps', 3) });
    await api.settled();
    await setPodStatus('eps-0', true);
    await setPodStatus('eps-1', false);
    await setPodStatus('eps-2', true);
    await core.patchNamespacedPod({ name: 'eps-2', namespace: NS, body: { metadata: { finalizers: ['example.com/hold'] } } }, merge);
    await core.deleteNamespacedPod({ name: 'eps-2', namespace: NS });
    const ports = [{ name: 'dtls', port: 5684, targetPort: 'dtls', protocol: 'UDP' }];
    await core.createNamespacedService({ namespace: NS, body: { metadata: { name: 'relay' }, spec: { selector: { 'relayctl.dev/set': 'eps' }, ports } } });
    await core.createNamespacedService({
      namespace: NS,
      body: { metadata: { name: 'relay-peers' }, spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: { 'relayctl.dev/set': 'eps' }, ports: [{ name: 'mgmt', port: 8443, targetPort: 8443 }] } },
    });
    await api.settled();
    const slices = await discovery.listNamespacedEndpointSlice({ namespace: NS, labelSelector: 'kubernetes.io/service-name=relay' });
    expect(slices.items).toHaveLength(1);
    const slice = slices.items[0]!;
    expect(slice.metadata?.labels).toMatchObject({ 'kubernetes.io/service-name': 'relay', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' });
    expect(slice.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Service', name: 'relay', controller: true });
    expect(slice.ports).toEqual([{ name: 'dtls', port: 5684, protocol: 'UDP' }]);
    const byPod = Object.fromEntries(slice.endpoints!.map((e) => [e.targetRef?.name, e.conditions]));
    expect(byPod).toEqual({
      'eps-0': { ready: true, serving: true, terminating: false },
      'eps-1': { ready: false, serving: false, terminating: false },
      'eps-2': { ready: false, serving: true, terminating: true },
    });
    const peers = (await discovery.listNamespacedEndpointSlice({ namespace: NS, labelSelector: 'kubernetes.io/service-name=relay-peers' })).items[0]!;
    expect(peers.endpoints!.map((e) => [e.targetRef?.name, e.conditions?.ready, e.hostname])).toEqual([
      ['eps-0', true, 'eps-0'],
      ['eps-1', true, 'eps-1'],
      ['eps-2', true, 'eps-2'],
    ]);

    await setPodStatus('eps-1', true);
    await api.settled();
    expect(api.store.list('endpointslices', NS, 'kubernetes.io/service-name=relay')[0]!.endpoints).toContainEqual(
      expect.objectContaining({ targetRef: expect.objectContaining({ name: 'eps-1' }), conditions: { ready: true, serving: true, terminating: false } }),
    );
    await core.deleteNamespacedService({ name: 'relay', namespace: NS });
    await api.settled();
    expect(api.store.list('endpointslices', NS, 'kubernetes.io/service-name=relay')).toEqual([]);
  });
});
