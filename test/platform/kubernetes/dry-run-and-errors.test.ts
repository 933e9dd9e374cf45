import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ErrorCode, isLockHeldError, isOrchestratorError } from '../../../orchestrator/errors.ts';
import { KubeErrorCode, isKubernetesPlatformError, openKubernetesPlatform } from '../../../orchestrator/platform/kubernetes/index.ts';
import type { SetInfo } from '../../../orchestrator/platform/platform.ts';
import { NS, RELAYCTL, bindRole, runPods, deployActiveSet, notCache, standIn, type StandIn } from './standin.ts';

let standin: StandIn;
let active: SetInfo;

beforeAll(async () => {
  standin = await standIn();
  deployActiveSet(standin.api);
  await runPods(standin, 'relay-a', [0, 1, 2]);
  const reader = await standin.open();
  active = (await reader.platform.getSet('relay-a'))!;
});

afterAll(async () => {
  await standin?.close();
});

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return { code: isOrchestratorError(error) || isKubernetesPlatformError(error) ? error.code : String(error), message: (error as Error).message };
  }
  throw new Error('expected a failure');
}

const writeVerbs = new Set(['create', 'update', 'patch', 'delete']);

/** Every write a platform can make, in the order an update makes them. */
async function everyWrite(platform: Awaited<ReturnType<StandIn['open']>>['platform']): Promise<void> {
  const lease = await platform.lock.acquire('relay', 'dry@ci:1', 30_000);
  await platform.patchSetAnnotations('relay-a', { 'relayctl.dev/update': '{"seq":1}' }, active.resourceVersion);
  await platform.patchPodLabels('relay-a-0', { 'relayctl.dev/restore': 'true' });
  await platform.createSet({ name: 'relay-b', replicas: 2, image: 'registry.example/relay:1.1', template: active, annotations: { 'relayctl.dev/update-id': 'u-9' } });
  await platform.deleteSet('relay-a');
  await lease.renew();
  await lease.release();
}

describe('--dry-run', () => {
  test('server: every write is sent with dryRun=All, validated by the API server, and nothing changes', async () => {
    const { platform, writes, target } = await standin.open({ dryRun: 'server' });
    expect(target.dryRun).toBe('server');
    const revision = standin.api.store.revision();
    const mark = standin.mark();
    await everyWrite(platform);
    expect(standin.api.store.revision()).toBe(revision);
    expect(standin.calls(mark, (request) => writeVerbs.has(request.verb))).toEqual([
      'create leases dryRun',
      'patch statefulsets relay-a (application/merge-patch+json) dryRun',
      'patch pods relay-a-0 (application/merge-patch+json) dryRun',
      'create statefulsets dryRun',
      'delete statefulsets relay-a dryRun',
    ]);
    expect(writes.map((write) => `${write.dryRun} ${write.verb} ${write.resource} ${write.name}`)).toEqual([
      'server create leases.coordination.k8s.io relayctl-relay',
      'server patch statefulsets.apps relay-a',
      'server patch pods relay-a-0',
      'server create statefulsets.apps relay-b',
      'server delete statefulsets.apps relay-a',
    ]);
    // The API server's validation runs: an invalid object is refused as it would be for real.
    const invalid = await failure(platform.patchPodLabels('relay-a-0', { 'relayctl.dev/serving': 'not a valid label value!' }));
    expect(invalid.code).toBe(KubeErrorCode.Invalid);
    expect(invalid.message).toContain('metadata.labels');
  });

  test('client: nothing is sent but reads; the log holds the objects and patches it would have sent', async () => {
    const { platform, writes } = await standin.open({ dryRun: 'client' });
    const mark = standin.mark();
    await everyWrite(platform);
    expect(standin.calls(mark).filter((call) => writeVerbs.has(call.split(' ')[0]!))).toEqual([]);
    expect(standin.calls(mark, notCache)).toEqual(['get leases relayctl-relay -> 404', 'get statefulsets relay-a', 'get pods relay-a-0', 'get statefulsets relay-a']);
    expect(writes.map((write) => [write.verb, write.resource, write.name, write.contentType ?? ''])).toEqual([
      ['create', 'leases.coordination.k8s.io', 'relayctl-relay', ''],
      ['patch', 'statefulsets.apps', 'relay-a', 'application/merge-patch+json'],
      ['patch', 'pods', 'relay-a-0', 'application/merge-patch+json'],
      ['create', 'statefulsets.apps', 'relay-b', ''],
      ['delete', 'statefulsets.apps', 'relay-a', ''],
      ['update', 'leases.coordination.k8s.io', 'relayctl-relay', ''],
    ]);
    expect(writes[1]!.body).toEqual({ metadata: { annotations: { 'relayctl.dev/update': '{"seq":1}' }, resourceVersion: active.resourceVersion } });
    expect(writes[3]!.body).toMatchObject({ kind: 'StatefulSet', metadata: { name: 'relay-b' }, spec: { podManagementPolicy: 'Parallel' } });
    expect(writes[4]!.body).toEqual({ propagationPolicy: 'Background' });
    // It still answers as the server would: a stale version conflicts, an unknown pod is not found.
    expect((await failure(platform.patchSetAnnotations('relay-a', { x: 'y' }, '1'))).code).toBe(ErrorCode.Conflict);
    expect((await failure(platform.patchPodLabels('relay-a-7', { x: 'y' }))).code).toBe(ErrorCode.NotFound);
    expect(standin.api.store.get('statefulsets', NS, 'relay-b')).toBeUndefined();
  });
});

describe('API errors a user can act on', () => {
  test('403: the missing verb, resource and namespace, and the rule the Role needs', async () => {
    bindRole(standin, 'reader', 'stranger', [{ apiGroups: ['', 'apps'], resources: ['pods', 'statefulsets'], verbs: ['get', 'list', 'watch'] }]);
    const { platform } = await standin.open({}, 'stranger');
    expect((await platform.listPods('relay-a')).length).toBe(3);
    const forbidden = await failure(platform.patchPodLabels('relay-a-0', { 'relayctl.dev/restore': 'true' }));
    expect(forbidden.code).toBe(KubeErrorCode.Forbidden);
    expect(forbidden.message).toContain('patch pods relay-a-0 in namespace relays: forbidden for stranger (context');
    expect(forbidden.message).toContain('must allow patch on pods; add the rule { apiGroups: [""], resources: ["pods"], verbs: ["patch"] }');
    expect(forbidden.message).toContain('User "stranger" cannot patch resource "pods" in API group "" in the namespace "relays"');
    const noLease = await failure(platform.lock.acquire('relay', 'x', 30_000));
    expect(noLease.message).toContain('must allow get on coordination.k8s.io/leases');
  });

  test('a Role without watch: reads still work (from the API server each time) and the user is told once why', async () => {
    await standin.api.addUser({ name: 'lister' });
    bindRole(standin, 'lister', 'lister', [{ apiGroups: ['', 'apps'], resources: ['pods', 'statefulsets'], verbs: ['get', 'list'] }]);
    const warnings: string[] = [];
    const { platform } = await standin.open({ log: (event) => warnings.push(`${event.level}: ${event.message}`) }, 'lister');
    expect((await platform.listPods('relay-a')).map((pod) => pod.name).sort()).toEqual(['relay-a-0', 'relay-a-1', 'relay-a-2']);
    while (warnings.length === 0) await platform.waitForChange(100);
    expect(await platform.getSet('relay-a')).toMatchObject({ name: 'relay-a' });
    expect((await platform.listPods('relay-a')).length).toBe(3);
    expect(platform.cacheFresh).toBe(false);
    expect(warnings[0]).toContain('warn: watch pods in namespace relays: forbidden for lister');
    expect(warnings[0]).toContain('must allow watch on pods');
    expect(warnings[0]).toContain('reading from the API server until the watch works again');
  });

  test('401: credentials the API server does not accept', async () => {
    const file = await standin.kubeconfig(RELAYCTL, (yaml) => yaml.replace(/token: .*/, 'token: not-a-token'));
    const { platform, close } = await openKubernetesPlatform({ name: 'relay', kubeconfig: file, mgmtAccess: 'direct' });
    try {
      const rejected = await failure(platform.getSet('relay-a'));
      expect(rejected.code).toBe(KubeErrorCode.Unauthorized);
      expect(rejected.message).toContain(`did not accept the credentials of ${RELAYCTL} (context`);
    } finally {
      await close();
    }
  });

  test('the lock held by another run is the orchestrator\'s LockHeldError, whatever the dry-run mode', async () => {
    const { platform } = await standin.open();
    const held = await platform.lock.acquire('relay', 'first@ci:1', 30_000);
    const { platform: dry } = await standin.open({ dryRun: 'client' });
    expect(isLockHeldError(await dry.lock.acquire('relay', 'second@ci:2', 30_000).catch((error: unknown) => error))).toBe(true);
    await held.release();
  });
});
