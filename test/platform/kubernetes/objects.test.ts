import { describe, expect, test } from 'vitest';
import { isKubernetesPlatformError, KubeErrorCode } from '../../../orchestrator/platform/kubernetes/kube-errors.ts';
import { invalidPatch, jsonMergePatch, metadataMergePatch } from '../../../orchestrator/platform/kubernetes/labels.ts';
import { ordinalOf, toPodInfo } from '../../../orchestrator/platform/kubernetes/pods.ts';
import { newSetObject, toSetInfo } from '../../../orchestrator/platform/kubernetes/sets.ts';
import { activeSet, pod } from './fixtures.ts';

const createSpec = (overrides: Partial<{ name: string; image: string; replicas: number }> = {}) => ({
  name: overrides.name ?? 'relay-b',
  replicas: overrides.replicas ?? 3,
  image: overrides.image ?? 'registry.example/relay:1.1',
  template: toSetInfo(activeSet()),
  annotations: { 'relayctl.dev/update-id': 'u-1', 'relayctl.dev/update': '{"version":1,"seq":2}' },
});

describe('createSet: the new StatefulSet copied from the active one', () => {
  test('the exact object: same template and claims, new image, own selector label, awaiting restore, nothing the server owns', () => {
    const active = activeSet();
    const created = newSetObject(active, createSpec(), 'relay', 'relays');
    const template = active.spec!.template;
    const [relay, shipper] = template.spec!.containers;
    expect(created).toEqual({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: {
        name: 'relay-b',
        namespace: 'relays',
        labels: { 'app.kubernetes.io/name': 'relay', 'relayctl.dev/fleet': 'relay', 'relayctl.dev/set': 'relay-b' },
        annotations: {
          'relayctl.dev/update-id': 'u-1',
          'relayctl.dev/update': '{"version":1,"seq":2}',
          'relayctl.dev/previous-image': 'registry.example/relay:1.0',
        },
      },
      spec: {
        replicas: 3,
        serviceName: 'relay-peers',
        podManagementPolicy: 'Parallel',
        revisionHistoryLimit: 2,
        updateStrategy: { type: 'OnDelete' },
        selector: { matchLabels: { 'relayctl.dev/fleet': 'relay', 'relayctl.dev/set': 'relay-b' } },
        template: {
          metadata: {
            labels: { 'app.kubernetes.io/name': 'relay', 'relayctl.dev/fleet': 'relay', 'relayctl.dev/set': 'relay-b', 'relayctl.dev/serving': 'true' },
            annotations: { 'prometheus.io/port': '8080' },
          },
          spec: {
            serviceAccountName: 'relay',
            terminationGracePeriodSeconds: 30,
            containers: [
              {
                ...relay,
                image: 'registry.example/relay:1.1',
                env: [
                  { name: 'RELAY_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  { name: 'RELAY_HEALTH_PORT', value: '8080' },
                  { name: 'RELAY_AWAIT_RESTORE', value: 'true' },
                ],
              },
              shipper,
            ],
            volumes: [{ name: 'tls', secret: { secretName: 'relay-relay-tls' } }],
          },
        },
      },
    });
    // The active object is left as it was.
    expect(active.spec!.template.spec!.containers[0]!.image).toBe('registry.example/relay:1.0');
    expect(active.spec!.template.spec!.containers[0]!.env).toContainEqual({ name: 'RELAY_AWAIT_RESTORE', value: 'false' });
  });

  test('a template carrying the restore label does not pass it on (the new pods could never restore)', () => {
    const active = activeSet();
    active.spec!.template.metadata!.labels!.restore = 'true';
    expect(newSetObject(active, createSpec(), 'relay', 'relays').spec!.template.metadata!.labels).not.toHaveProperty('restore');
  });

  test('refused with what to fix: a selector without the set label, or no container that runs relayd', () => {
    const shared = activeSet();
    delete shared.spec!.selector.matchLabels!['relayctl.dev/set'];
    const overlap = (() => {
      try {
        return newSetObject(shared, createSpec(), 'relay', 'relays');
      } catch (error) {
        return error;
      }
    })();
    expect(isKubernetesPlatformError(overlap) && overlap.code).toBe(KubeErrorCode.Template);
    expect((overlap as Error).message).toContain('the selector of StatefulSet relay-a must include relayctl.dev/set: relay-a');

    const unnamed = activeSet();
    unnamed.spec!.template.spec!.containers = [
      { name: 'main', image: 'relay:1' },
      { name: 'side', image: 'shipper:1' },
    ];
    expect(() => newSetObject(unnamed, createSpec(), 'relay', 'relays')).toThrow('no container runs relayd (containers: main, side); name it "relay"');
  });

  test('SetInfo: the relay container\'s image, the metadata the orchestrator reads', () => {
    expect(toSetInfo(activeSet())).toEqual({
      name: 'relay-a',
      replicas: 3,
      image: 'registry.example/relay:1.0',
      labels: { 'app.kubernetes.io/name': 'relay', 'relayctl.dev/fleet': 'relay', 'relayctl.dev/set': 'relay-a' },
      annotations: { 'relayctl.dev/update': '{"version":1}', 'kubectl.kubernetes.io/last-applied-configuration': '{"apiVersion":"apps/v1"}' },
      resourceVersion: '4711',
      createdAt: Date.parse('2025-01-01T00:00:00Z'),
    });
    // Watch events carry timestamps as strings.
    const raw = activeSet();
    (raw.metadata as { creationTimestamp: unknown }).creationTimestamp = '2025-01-01T00:00:00Z';
    expect(toSetInfo(raw).createdAt).toBe(Date.parse('2025-01-01T00:00:00Z'));
  });
});

describe('pods as the orchestrator sees them', () => {
  test('running and ready: ordinal, set, management URL on the pod IP and the mgmt port', () => {
    expect(toPodInfo(pod('relay-a-2'))).toEqual({
      name: 'relay-a-2',
      set: 'relay-a',
      ordinal: 2,
      phase: 'Running',
      ready: true,
      labels: { 'relayctl.dev/fleet': 'relay', 'relayctl.dev/set': 'relay-a', 'statefulset.kubernetes.io/pod-name': 'relay-a-2' },
      mgmtUrl: 'https://10.244.1.7:8443',
      image: 'registry.example/relay:1.0',
    });
    expect(toPodInfo(pod('relay-a-0', { ip: 'fd00::7' })).mgmtUrl).toBe('https://[fd00::7]:8443');
  });

  test('pending has no address; terminating is never ready and has no address', () => {
    expect(toPodInfo(pod('relay-b-0', { phase: 'Pending', ready: false }))).toMatchObject({ phase: 'Pending', ready: false, mgmtUrl: null });
    expect(toPodInfo(pod('relay-a-1', { terminating: true }))).toMatchObject({ phase: 'Running', ready: false, mgmtUrl: null });
    expect(ordinalOf('relay-a-12')).toBe(12);
    expect(ordinalOf('oddly-named')).toBe(-1);
  });
});

describe('patches', () => {
  test('labels and annotations as JSON merge patches; a resourceVersion becomes the precondition', () => {
    expect(metadataMergePatch('labels', { 'relayctl.dev/restore': 'true', 'relayctl.dev/serving': null })).toEqual({
      metadata: { labels: { 'relayctl.dev/restore': 'true', 'relayctl.dev/serving': null } },
    });
    expect(metadataMergePatch('annotations', { 'relayctl.dev/update': '{}' }, '4711')).toEqual({
      metadata: { annotations: { 'relayctl.dev/update': '{}' }, resourceVersion: '4711' },
    });
  });

  test('merge patch semantics (RFC 7386) for client dry-run answers', () => {
    const object = { metadata: { name: 'x', labels: { a: '1', b: '2' } }, spec: { replicas: 3 } };
    expect(jsonMergePatch(object, { metadata: { labels: { a: null, c: '3' } } })).toEqual({
      metadata: { name: 'x', labels: { b: '2', c: '3' } },
      spec: { replicas: 3 },
    });
    expect(object.metadata.labels).toEqual({ a: '1', b: '2' });
  });

  test('bad keys and values are refused before anything is sent', () => {
    expect(invalidPatch({ 'relayctl.dev/restore': 'true', plain: null })).toBeNull();
    expect(invalidPatch({ 'Bad Key': 'x' })).toContain('"Bad Key" is not a valid key');
    expect(invalidPatch({ ok: 3 })).toContain('"ok" must map to a string or null, got 3');
    expect(invalidPatch(['x'])).toContain('expected an object');
  });
});
