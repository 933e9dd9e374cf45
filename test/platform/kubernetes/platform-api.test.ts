import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { V1StatefulSet } from '@kubernetes/client-node';
import { ErrorCode, isLockHeldError, isOrchestratorError } from '../../../orchestrator/errors.ts';
import { ManualClock } from '../../../orchestrator/clock.ts';
import { KubeErrorCode, isKubernetesPlatformError, type OpenedKubernetesPlatform } from '../../../orchestrator/platform/kubernetes/index.ts';
import type { SetInfo } from '../../../orchestrator/platform/platform.ts';
import type { KubeObject } from '../../support/kube-apiserver/index.ts';
import { NS, RELAYCTL, RELAYCTL_RULES, runPods, deployActiveSet, notCache, standIn, type StandIn } from './standin.ts';

/**
 * The platform's API calls through @kubernetes/client-node, over HTTPS, against the API stand-in, as the service
 * account bound to the Role the contracts list. The sets' pods are made by the test (no controllers yet).
 */

let standin: StandIn;

beforeAll(async () => {
  standin = await standIn();
});

afterAll(async () => {
  await standin?.close();
});

/** What a failed call threw: its code (orchestrator or platform) and message. */
async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string; error: unknown }> {
  try {
    await promise;
  } catch (error) {
    const code = isOrchestratorError(error) || isKubernetesPlatformError(error) ? error.code : `not a platform error: ${String(error)}`;
    return { code, message: (error as Error).message, error };
  }
  throw new Error('expected the call to fail');
}

function stored(resource: string, name: string): KubeObject | undefined {
  return standin.api.store.get(resource, NS, name);
}

describe('sets, pods and patches', () => {
  let opened: OpenedKubernetesPlatform;
  let active: SetInfo;

  beforeAll(async () => {
    deployActiveSet(standin.api);
    await runPods(standin, 'relay-a', [0, 1, 2]);
    opened = await standin.open();
    active = (await opened.platform.getSet('relay-a'))!;
  });

  test('getSet and listPods: the active set and its pods; reads after the first come from the watch cache', async () => {
    expect(active).toMatchObject({ name: 'relay-a', replicas: 3, image: 'registry.example/relay:1.0', labels: { 'relayctl.dev/set': 'relay-a' } });
    const pods = await opened.platform.listPods('relay-a');
    expect(pods.map((pod) => [pod.name, pod.ordinal, pod.phase, pod.ready, pod.mgmtUrl]).sort()).toEqual([
      ['relay-a-0', 0, 'Running', true, 'https://127.0.100.1:8443'],
      ['relay-a-1', 1, 'Running', true, 'https://127.0.100.2:8443'],
      ['relay-a-2', 2, 'Running', true, 'https://127.0.100.3:8443'],
    ]);
    // Once both watches run, polling costs the API server nothing.
    while (!opened.platform.cacheFresh) await opened.platform.waitForChange(5_000);
    const mark = standin.mark();
    for (let poll = 0; poll < 5; poll++) {
      await opened.platform.listPods('relay-a');
      await opened.platform.getSet('relay-a');
      expect(await opened.platform.getSet('relay-b')).toBeNull();
    }
    expect(standin.calls(mark, (request) => request.verb !== 'watch')).toEqual([]);
  });

  test('createSet: one read of the active set, one create; the stored set is the copy with the new image and its own selector', async () => {
    const mark = standin.mark();
    const created = await opened.platform.createSet({ name: 'relay-b', replicas: 3, image: 'registry.example/relay:1.1', template: active, annotations: { 'relayctl.dev/update-id': 'u-1' } });
    expect(standin.calls(mark, notCache)).toEqual(['get statefulsets relay-a', 'create statefulsets']);
    const set = stored('statefulsets', 'relay-b') as unknown as V1StatefulSet;
    expect(created).toMatchObject({ name: 'relay-b', replicas: 3, image: 'registry.example/relay:1.1' });
    expect(set.metadata!.annotations).toEqual({ 'relayctl.dev/update-id': 'u-1', 'relayctl.dev/previous-image': 'registry.example/relay:1.0' });
    expect(set.spec!.selector).toEqual({ matchLabels: { 'relayctl.dev/fleet': 'relay', 'relayctl.dev/set': 'relay-b' } });
    expect(set.spec!.podManagementPolicy).toBe('Parallel');
    expect(set.spec!.template.spec!.containers[0]!.env).toContainEqual({ name: 'RELAY_AWAIT_RESTORE', value: 'true' });
    expect(set.metadata!.uid).not.toBe((stored('statefulsets', 'relay-a') as unknown as V1StatefulSet).metadata!.uid);
    // The cache shows our own write at once.
    expect((await opened.platform.getSet('relay-b'))?.image).toBe('registry.example/relay:1.1');
    expect((await failure(opened.platform.createSet({ name: 'relay-b', replicas: 1, image: 'x:1', template: active, annotations: {} }))).code).toBe(ErrorCode.AlreadyExists);
  });

  test('pod labels: a merge patch (null removes); the next read shows it; an unknown pod is not found', async () => {
    const mark = standin.mark();
    await opened.platform.patchPodLabels('relay-a-1', { 'relayctl.dev/restore': 'true', 'relayctl.dev/serving': null });
    expect(standin.calls(mark, notCache)).toEqual(['patch pods relay-a-1 (application/merge-patch+json)']);
    expect((stored('pods', 'relay-a-1') as { metadata: { labels: Record<string, string> } }).metadata.labels).not.toHaveProperty('relayctl.dev/serving');
    const pod = (await opened.platform.listPods('relay-a')).find((candidate) => candidate.name === 'relay-a-1')!;
    expect(pod.labels['relayctl.dev/restore']).toBe('true');
    expect(pod.labels).not.toHaveProperty('relayctl.dev/serving');
    expect(await failure(opened.platform.patchPodLabels('relay-a-9', { x: 'y' }))).toMatchObject({ code: ErrorCode.NotFound, message: 'pod relay-a-9 in namespace relays not found' });
  });

  test('set annotations: guarded by the resourceVersion; a stale one is the orchestrator\'s conflict naming both versions', async () => {
    const before = (await opened.platform.getSet('relay-a'))!;
    const written = await opened.platform.patchSetAnnotations('relay-a', { 'relayctl.dev/update': '{"seq":1}' }, before.resourceVersion);
    expect(written.annotations['relayctl.dev/update']).toBe('{"seq":1}');
    expect(written.resourceVersion).not.toBe(before.resourceVersion);
    const mark = standin.mark();
    const stale = await failure(opened.platform.patchSetAnnotations('relay-a', { 'relayctl.dev/update': '{"seq":2}' }, before.resourceVersion));
    expect(stale.code).toBe(ErrorCode.Conflict);
    expect(stale.message).toBe(`set relay-a changed: expected resourceVersion ${before.resourceVersion}, found ${written.resourceVersion}`);
    expect(standin.calls(mark, notCache)).toEqual(['patch statefulsets relay-a (application/merge-patch+json) -> 409', 'get statefulsets relay-a']);
    const removed = await opened.platform.patchSetAnnotations('relay-a', { 'relayctl.dev/update': null });
    expect(removed.annotations).not.toHaveProperty('relayctl.dev/update');
    expect((await opened.platform.getSet('relay-a'))?.resourceVersion).toBe(removed.resourceVersion);
  });

  test('deleteSet: one delete, gone from reads at once; deleting again is fine', async () => {
    const mark = standin.mark();
    await opened.platform.deleteSet('relay-b');
    await opened.platform.deleteSet('relay-b');
    expect(standin.calls(mark, notCache)).toEqual(['delete statefulsets relay-b', 'delete statefulsets relay-b -> 404']);
    expect(stored('statefulsets', 'relay-b')).toBeUndefined();
    expect(await opened.platform.getSet('relay-b')).toBeNull();
    // The garbage collector deletes its pods (background propagation).
    await standin.api.settled();
    expect(await opened.platform.listPods('relay-b')).toEqual([]);
  });

  test('restore is refused on labels read afresh from the API server, and between pods of different ordinals', async () => {
    deployActiveSet(standin.api);
    await opened.platform.createSet({ name: 'relay-b', replicas: 3, image: 'registry.example/relay:1.1', template: active, annotations: {} });
    await runPods(standin, 'relay-b', [0, 1], { ready: false });
    const a0 = (await opened.platform.listPods('relay-a')).find((pod) => pod.name === 'relay-a-0')!;
    const b0 = (await opened.platform.listPods('relay-b')).find((pod) => pod.name === 'relay-b-0')!;
    const mark = standin.mark();
    // The caller's view says the source carries the label; the API server says it does not.
    const forged = await failure(opened.platform.relay.restore(b0, { ...a0, labels: { ...a0.labels, restore: 'true', 'relayctl.dev/restore': 'true' } }));
    expect(forged.code).toBe(ErrorCode.RestoreRefused);
    expect(standin.calls(mark, notCache)).toEqual(['get pods relay-b-0', 'get pods relay-a-0']);
    // Forward, the old pods carry the label: the new pod may restore from its double, never the other way.
    await opened.platform.patchPodLabels('relay-a-0', { restore: 'true', 'relayctl.dev/restore': 'true' });
    await opened.platform.patchPodLabels('relay-b-0', { restore: 'true', 'relayctl.dev/restore': 'true' });
    expect((await failure(opened.platform.relay.restore(a0, b0))).code).toBe(ErrorCode.RestoreRefused);
    expect((await failure(opened.platform.relay.restore(b0, a0))).code).toBe(ErrorCode.RestoreRefused);
    await opened.platform.patchPodLabels('relay-b-0', { restore: null, 'relayctl.dev/restore': null });
    expect((await failure(opened.platform.relay.restore(a0, b0))).code).toBe(ErrorCode.RestoreRefused);
    // Only from its double.
    await opened.platform.patchPodLabels('relay-a-1', { restore: 'true', 'relayctl.dev/restore': 'true' });
    const a1 = (await opened.platform.listPods('relay-a')).find((pod) => pod.name === 'relay-a-1')!;
    const other = await failure(opened.platform.relay.restore(b0, a1));
    expect(other).toMatchObject({ code: ErrorCode.RestoreRefused, message: expect.stringContaining('relay-a-1 (ordinal 1) is not the double of relay-b-0 (ordinal 0)') });
    // Allowed by the rule: the next thing needed is relayctl's certificate, and there is none in this namespace.
    const noCertificate = await failure(opened.platform.relay.restore(b0, a0));
    expect(noCertificate).toMatchObject({
      code: KubeErrorCode.MgmtTls,
      message: expect.stringContaining('Secret relay-relayctl-tls not found in namespace relays: relayctl needs its operator certificate'),
    });
  });

  test('every call so far is covered by the Role manifests/base ships', () => {
    const granted = new Set(RELAYCTL_RULES.flatMap((rule) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${rule.apiGroups[0]}|${resource}|${verb}`))));
    const needed = standin.api.requests.requiredRules(RELAYCTL).map((rule) => `${rule.apiGroup}|${rule.resource}|${rule.verb}`);
    expect(needed.filter((rule) => !granted.has(rule))).toEqual([]);
  });
});
