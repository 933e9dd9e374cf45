import { describe, expect, test } from 'vitest';
import { readStatus, runUpdate } from '../../orchestrator/index.ts';
import { PROGRESS_ANNOTATION, UPDATE_ID_ANNOTATION, type ProgressRecord } from '../../orchestrator/bluegreen/progress.ts';
import { Reason } from '../../orchestrator/bluegreen/status.ts';
import { ErrorCode } from '../../orchestrator/errors.ts';
import { Scenario } from '../fakes/platform.ts';

/** The writes of a whole 2-replica update, in order: intent is recorded before each action. */
const UPDATE_WRITES = [
  'lock.acquire relay alice@test',
  'patchSetAnnotations relay-a relayctl.dev/update', // record created: step mark
  'patchPodLabels relay-a-0 {"restore":"true"}',
  'patchPodLabels relay-a-1 {"restore":"true"}',
  'patchSetAnnotations relay-a relayctl.dev/update', // step create
  'createSet relay-b relay:2 x2',
  'patchSetAnnotations relay-a relayctl.dev/update', // step handover
  'patchSetAnnotations relay-a relayctl.dev/update', // ordinal 0 restoring
  'relay.restore relay-b-0 <- relay-a-0',
  'patchSetAnnotations relay-a relayctl.dev/update', // ordinal 0 done
  'patchSetAnnotations relay-a relayctl.dev/update', // ordinal 1 restoring
  'relay.restore relay-b-1 <- relay-a-1',
  'patchSetAnnotations relay-a relayctl.dev/update', // ordinal 1 done
  'patchSetAnnotations relay-a relayctl.dev/update', // step drain
  'patchSetAnnotations relay-a relayctl.dev/update', // step verify
  'patchSetAnnotations relay-b relayctl.dev/update', // record moves to the surviving set: step delete
  'deleteSet relay-a',
  'patchSetAnnotations relay-b relayctl.dev/update', // Completed
  'lease.release relay',
];

describe('a blue/green update', () => {
  test('hands every ordinal over with exactly this sequence of writes', async () => {
    const s = new Scenario({ seed: { replicas: 2 } });
    const result = await s.update();
    expect(result).toMatchObject({
      code: 'succeeded',
      outcome: 'updated',
      from: 'relay-a',
      to: 'relay-b',
      image: 'relay:2',
      moved: [
        { ordinal: 0, source: 'relay-a-0', target: 'relay-b-0', sessions: 100, skipped: 0, bytes: 29_700, inferred: false },
        { ordinal: 1, source: 'relay-a-1', target: 'relay-b-1', sessions: 100, skipped: 0, bytes: 29_700, inferred: false },
      ],
    });
    expect(s.cluster.log({ writesOnly: true })).toEqual(UPDATE_WRITES);
    s.expectCleanOn('relay-b', 'relay:2');
    expect(s.cluster.stragglersDropped).toBe(0);
  });

  test('emits steps in order, one ordinal-moved per ordinal, and the result last', async () => {
    const s = new Scenario();
    const result = await s.update();
    expect(s.eventsOf('step-started').map((event) => event.step)).toEqual([
      'lock',
      'preflight',
      'mark',
      'create',
      'handover',
      'drain',
      'verify',
      'delete',
      'release',
    ]);
    expect(s.eventsOf('step-finished').map((event) => event.step)).toEqual(s.eventsOf('step-started').map((event) => event.step));
    expect(s.eventsOf('ordinal-moved').map((event) => [event.ordinal, event.direction, event.sessions, event.pauseMs])).toEqual([
      [0, 'forward', 100, 50],
      [1, 'forward', 100, 50],
      [2, 'forward', 100, 50],
    ]);
    expect(s.events[0]).toMatchObject({ type: 'run-started', command: 'update', name: 'relay', owner: 'alice@test', platform: 'fake' });
    expect(s.events.at(-1)).toEqual({ type: 'run-finished', at: expect.any(Number), updateId: 'upd-1', result });
    const times = s.events.map((event) => event.at);
    expect(times).toEqual([...times].sort((x, y) => x - y));
    // Each pod's changes are reported, e.g. the new pod going from Pending to serving.
    const newPod = s.eventsOf('pod-changed').filter((event) => event.pod === 'relay-b-0');
    expect(newPod[0]).toMatchObject({ phase: 'Pending', relayState: null });
    expect(newPod.some((event) => event.relayState === 'serving' && event.ready)).toBe(true);
    expect(s.eventsOf('condition').at(-1)?.condition).toMatchObject({ type: 'Completed', status: 'True', reason: Reason.UpdateCompleted });
  });

  test('the record, the ordinal-moved events and the result report the same moves', async () => {
    const s = new Scenario({ seed: { replicas: 2 } });
    const result = await s.update();
    const entries = (s.record('relay-b') as ProgressRecord).handedOver;
    const fromRecord = Object.entries(entries).map(([ordinal, { state: _s, startedAt: _a, finishedAt: _f, ...move }]) => ({ ordinal: Number(ordinal), ...move }));
    expect(fromRecord).toEqual([
      { ordinal: 0, source: 'relay-a-0', target: 'relay-b-0', sessions: 100, skipped: 0, bytes: 29_700, durationMs: expect.any(Number), pauseMs: 50, inferred: false },
      { ordinal: 1, source: 'relay-a-1', target: 'relay-b-1', sessions: 100, skipped: 0, bytes: 29_700, durationMs: expect.any(Number), pauseMs: 50, inferred: false },
    ]);
    expect(result.code === 'succeeded' && result.moved).toEqual(fromRecord);
    expect(s.eventsOf('ordinal-moved').map(({ type: _t, at: _at, updateId: _u, direction: _d, ...move }) => move)).toEqual(fromRecord);
  });

  test('records intent before the restore, and the outcome after, on the old set until the delete step', async () => {
    const s = new Scenario();
    const seen: ProgressRecord[] = [];
    s.cluster.beforeCall = (call) => {
      if (call.method === 'relay.restore' && call.target === 'relay-b-1') seen.push(s.record('relay-a') as ProgressRecord);
    };
    await s.update();
    expect(seen[0]).toMatchObject({
      id: 'upd-1',
      owner: 'alice@test',
      from: 'relay-a',
      to: 'relay-b',
      fromImage: 'relay:1',
      image: 'relay:2',
      replicas: 3,
      direction: 'forward',
      step: 'handover',
      phase: 'Progressing',
      handedOver: {
        '0': { state: 'done', source: 'relay-a-0', target: 'relay-b-0', sessions: 100, bytes: 29_700, durationMs: 400, inferred: false },
        '1': { state: 'restoring', source: 'relay-a-1', target: 'relay-b-1', sessions: null },
      },
    });
    const final = s.record('relay-b') as ProgressRecord;
    expect(final).toMatchObject({ step: 'done', phase: 'Completed', failure: null });
    expect(Object.values(final.handedOver).map((entry) => entry.state)).toEqual(['done', 'done', 'done']);
    expect(final.conditions.map((condition) => [condition.type, condition.status, condition.reason])).toEqual([
      ['Progressing', 'False', Reason.UpdateCompleted],
      ['Completed', 'True', Reason.UpdateCompleted],
    ]);
    expect(s.cluster.set('relay-b')?.annotations[UPDATE_ID_ANNOTATION]).toBe('upd-1');
  });

  test('maxParallel bounds how many ordinals hand over at once', async () => {
    const s = new Scenario({ seed: { replicas: 5 } });
    await s.update({ maxParallel: 2 });
    const starts = s.cluster.calls.filter((call) => call.method === 'relay.restore').map((call) => ({ target: call.target, at: call.at }));
    const intervals = starts.map((start) => ({ from: start.at, to: s.cluster.transfers.find((transfer) => transfer.target === start.target)!.at }));
    const overlap = (at: number): number => intervals.filter((interval) => interval.from <= at && at < interval.to).length;
    const peak = Math.max(...intervals.map((interval) => overlap(interval.from)));
    expect(peak).toBe(2);
    s.expectCleanOn('relay-b', 'relay:2');
  });

  test('drain waits until the old relays forwarded nothing for drainQuiet before deleting them', async () => {
    const s = new Scenario();
    await s.update({ drainQuietMs: 10_000 });
    const lastForwardSeen = Math.max(...s.eventsOf('drain-progress').map((event) => event.at));
    const deleted = s.cluster.calls.find((call) => call.method === 'deleteSet')!.at;
    expect(deleted - lastForwardSeen).toBeGreaterThanOrEqual(10_000);
    expect(s.cluster.stragglersDropped).toBe(0);
    expect(s.eventsOf('condition').some((event) => event.condition.reason === Reason.DrainQuiet)).toBe(true);
  });

  test('drain gives up at drainTimeout when devices keep forwarding, says so, and finishes', async () => {
    const s = new Scenario({ world: { forwardForever: true } });
    const result = await s.update({ timeouts: { drainMs: 20_000 } });
    expect(result.code).toBe('succeeded');
    const drainStarted = s.eventsOf('step-started').find((event) => event.step === 'drain')!.at;
    const warning = s.eventsOf('warning').find((event) => event.reason === Reason.DrainTimedOut);
    expect(warning?.at).toBe(drainStarted + 20_000);
    // The trade-off the timeout makes: stragglers still on their way are cut off.
    expect(s.cluster.stragglersDropped).toBeGreaterThan(0);
    s.expectCleanOn('relay-b', 'relay:2');
  });

  test('a second update goes back from b to a', async () => {
    const s = new Scenario();
    expect((await s.update()).code).toBe('succeeded');
    const second = await s.update({ image: 'relay:3' });
    expect(second).toMatchObject({ code: 'succeeded', from: 'relay-b', to: 'relay-a', image: 'relay:3' });
    s.expectCleanOn('relay-a', 'relay:3');
  });
});

describe('reruns and refusals', () => {
  test('rerunning a completed update touches nothing and reports success', async () => {
    const s = new Scenario();
    await s.update();
    const rerun = s.cluster.process();
    const result = await s.update({}, rerun);
    expect(result).toMatchObject({ code: 'succeeded', outcome: 'already-updated', updateId: 'upd-1' });
    expect(s.cluster.log({ writesOnly: true, process: rerun.id })).toEqual(['lock.acquire relay alice@test', 'lease.release relay']);
  });

  test('the same image is refused unless forced; force hands every session over again', async () => {
    const s = new Scenario({ seed: { image: 'relay:2' } });
    const refused = await s.update();
    expect(refused).toMatchObject({ code: 'refused', reason: Reason.ImageUnchanged });
    expect(s.cluster.log({ writesOnly: true })).toEqual(['lock.acquire relay alice@test', 'lease.release relay']);
    const forced = await s.update({ force: true });
    expect(forced).toMatchObject({ code: 'succeeded', to: 'relay-b', image: 'relay:2' });
    expect(s.cluster.transfers).toHaveLength(3);
    s.expectCleanOn('relay-b', 'relay:2');
  });

  test.each<[string, (s: Scenario) => Promise<void>, string]>([
    ['a pod is not ready', async (s) => {
      s.cluster.setRelay('relay-a-1', { ready: false });
      await s.settle(2000);
    }, Reason.PodsNotReady],
    ['a relay is not serving', async (s) => s.cluster.setRelay('relay-a-2', { state: 'forwarding' }), Reason.RelaysNotServing],
    ['both sets exist without an update', async (s) => s.cluster.seed({ name: 'relay', set: 'relay-b', replicas: 3, image: 'relay:0', sessions: [0, 0, 0] }), Reason.BothSetsExist],
  ])('refuses when %s, touching nothing but the lock', async (_, arrange, reason) => {
    const s = new Scenario();
    await arrange(s);
    const result = await s.update();
    expect(result).toMatchObject({ code: 'refused', reason });
    expect(s.cluster.log({ writesOnly: true })).toEqual(['lock.acquire relay alice@test', 'lease.release relay']);
  });

  test('refuses a fleet that does not exist', async () => {
    const s = new Scenario();
    expect(await s.update({ name: 'ghost' })).toMatchObject({ code: 'refused', reason: Reason.NoActiveSet });
  });

  test('an invalid spec is refused before any call', async () => {
    const s = new Scenario();
    const result = await s.update({ maxParallel: 0 });
    expect(result).toMatchObject({ code: 'refused', reason: Reason.InvalidSpec, message: expect.stringContaining('maxParallel') });
    expect(s.cluster.calls).toEqual([]);
    expect(s.events.map((event) => event.type)).toEqual(['run-finished']);
  });

  test('another update holding the lock: lock-held, and nothing touched', async () => {
    const s = new Scenario();
    s.cluster.holdLock('relay', 'bob@ci', 30_000);
    const result = await s.update();
    expect(result).toMatchObject({ code: 'lock-held', holder: 'bob@ci', expiresAt: s.clock.now() + 30_000 });
    expect(s.cluster.log()).toEqual(['lock.acquire relay alice@test !error']);
    expect(s.events.map((event) => event.type)).toEqual(['run-started', 'step-started', 'run-finished']);
  });

  test('waits for a held lease to expire when lockWaitMs allows, then takes it over', async () => {
    const s = new Scenario();
    s.cluster.holdLock('relay', 'dead-run', 20_000);
    expect(await s.update({ lockWaitMs: 10_000 })).toMatchObject({ code: 'lock-held', holder: 'dead-run' });
    const start = s.clock.now();
    const result = await s.update({ lockWaitMs: 30_000 });
    expect(result.code).toBe('succeeded');
    const acquired = s.cluster.calls.filter((call) => call.method === 'lock.acquire' && call.outcome === 'ok');
    expect(acquired[0]!.at - start).toBeGreaterThanOrEqual(20_000 - (start - s.cluster.calls[0]!.at));
    expect(s.eventsOf('waiting').some((event) => event.step === 'lock')).toBe(true);
  });

  test('a corrupt record is refused, not guessed at', async () => {
    const s = new Scenario();
    s.cluster.editSetAnnotations('relay-a', { [PROGRESS_ANNOTATION]: '{"v":1,' });
    expect(await s.update()).toMatchObject({ code: 'refused', reason: Reason.RecordCorrupt });
    expect(s.cluster.log({ writesOnly: true })).toEqual(['lock.acquire relay alice@test', 'lease.release relay']);
  });
});

describe('platform trouble', () => {
  test('transient errors are retried, each retry reported', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'patchPodLabels', target: 'relay-a-1', effect: { kind: 'fail' } });
    s.cluster.addFault({ method: 'listPods', nth: 3, times: 2, effect: { kind: 'fail' } });
    s.cluster.addFault({ method: 'createSet', effect: { kind: 'fail' } });
    const result = await s.update();
    expect(result.code).toBe('succeeded');
    expect(s.eventsOf('retry').map((event) => [event.operation, event.attempt, event.error.code])).toEqual([
      ['patchPodLabels relay-a-1', 1, ErrorCode.Unavailable],
      // The mark step's second reading of the old pods.
      ['listPods relay-a', 1, ErrorCode.Unavailable],
      ['listPods relay-a', 2, ErrorCode.Unavailable],
      ['createSet relay-b', 1, ErrorCode.Unavailable],
    ]);
    s.expectCleanOn('relay-b', 'relay:2');
  });

  test('a create whose answer was lost is recognised as ours, not created twice', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'createSet', effect: { kind: 'fail-after' } });
    expect((await s.update()).code).toBe('succeeded');
    expect(s.cluster.log({ writesOnly: true }).filter((line) => line.startsWith('createSet'))).toEqual([
      'createSet relay-b relay:2 x3 !error',
      'createSet relay-b relay:2 x3 !error',
    ]);
    expect(s.cluster.calls.filter((call) => call.method === 'createSet').map((call) => call.error)).toEqual([
      ErrorCode.Unavailable,
      ErrorCode.AlreadyExists,
    ]);
  });

  test('a third party writing other annotations between our writes is retried, not a conflict', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'patchSetAnnotations', nth: 3, effect: { kind: 'conflict', annotations: { 'kubectl.kubernetes.io/note': 'hi' } } });
    expect((await s.update()).code).toBe('succeeded');
    expect(s.eventsOf('retry').map((event) => event.error.code)).toEqual([ErrorCode.Conflict]);
    expect(s.cluster.set('relay-b')).not.toBeNull();
  });

  test('somebody else rewriting our record stops the run at once, without rollback', async () => {
    const s = new Scenario();
    s.cluster.beforeCall = (call) => {
      if (call.method === 'relay.restore' && call.target === 'relay-b-1') {
        s.cluster.editSetAnnotations('relay-a', { [PROGRESS_ANNOTATION]: JSON.stringify({ ...s.record('relay-a'), id: 'hijack', seq: 99 }) });
      }
    };
    const result = await s.update();
    expect(result).toMatchObject({ code: 'failed', rollbackAttempted: false, error: { code: ErrorCode.RecordConflict } });
    const lastWrite = s.cluster.log({ writesOnly: true }).at(-1);
    expect(lastWrite).toBe('lease.release relay');
    expect(s.cluster.violations).toEqual([]);
  });

  test('readStatus shows the update in progress and its lock, then the finished update', async () => {
    const s = new Scenario();
    let during: Awaited<ReturnType<typeof readStatus>> | null = null;
    const observer = s.cluster.process();
    s.cluster.beforeCall = (call) => {
      if (call.method === 'relay.restore' && call.target === 'relay-b-1' && during === null) {
        void readStatus('relay', observer, { relays: true }).then((status) => (during = status));
      }
    };
    await s.update();
    expect(during).toMatchObject({
      inProgress: true,
      recordSet: 'relay-a',
      update: { step: 'handover', id: 'upd-1' },
      lock: { owner: 'alice@test' },
      recordError: null,
    });
    expect(during!.sets.map((entry) => entry.set.name)).toEqual(['relay-a', 'relay-b']);
    expect(during!.sets[0]!.relays!['relay-a-0']).toMatchObject({ state: 'forwarding' });
    const after = await readStatus('relay', observer);
    expect(after).toMatchObject({ inProgress: false, recordSet: 'relay-b', update: { phase: 'Completed' }, lock: null });
    expect(after.sets[0]!.relays).toBeNull();
  });
});

test('an observer that throws cannot stop an update; the first failure becomes a process warning', async () => {
  const s = new Scenario();
  const warnings: string[] = [];
  const onWarning = (warning: Error & { code?: string }): void => void warnings.push(warning.code ?? '');
  process.on('warning', onWarning);
  try {
    const result = await runUpdate(
      s.spec(),
      s.cluster.process(),
      (event) => {
        if (event.type === 'pod-changed' || event.type === 'ordinal-moved') throw new Error('renderer bug');
      },
      { clock: s.clock },
    );
    expect(result.code).toBe('succeeded');
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toEqual(['RELAYCTL_OBSERVER_FAILED']);
  } finally {
    process.off('warning', onWarning);
  }
  s.expectCleanOn('relay-b', 'relay:2');
});
