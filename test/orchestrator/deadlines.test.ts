import { describe, expect, test, vi } from 'vitest';
import { runUpdate } from '../../orchestrator/index.ts';
import type { ProgressRecord } from '../../orchestrator/bluegreen/progress.ts';
import { Reason } from '../../orchestrator/bluegreen/status.ts';
import { ErrorCode } from '../../orchestrator/errors.ts';
import { Scenario } from '../fakes/platform.ts';

/** Every wait has a deadline; these fire on the fake clock, so minutes of waiting take milliseconds. */

/** Runs `work` and counts the real timers it set: none, when every wait is the fake clock's. */
async function withRealTimersCounted<T>(work: () => Promise<T>): Promise<{ value: T; realTimers: number }> {
  const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
  const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
  try {
    const value = await work();
    return { value, realTimers: setTimeoutSpy.mock.calls.length + setIntervalSpy.mock.calls.length };
  } finally {
    setTimeoutSpy.mockRestore();
    setIntervalSpy.mockRestore();
  }
}

describe('deadlines', () => {
  test('new pods that never start: the pod start deadline fires and the update rolls back', async () => {
    const s = new Scenario({ world: { podStartMs: Infinity } });
    const virtualStart = s.clock.now();
    const { value: result, realTimers } = await withRealTimersCounted(() => s.update({ timeouts: { podStartMs: 5 * 60_000 } }));
    expect(result).toMatchObject({
      code: 'timed-out',
      step: 'handover',
      rolledBack: true,
      error: { code: ErrorCode.StepTimeout, reason: Reason.PodNotRunning },
    });
    expect(s.clock.now() - virtualStart).toBeGreaterThanOrEqual(5 * 60_000);
    // Five minutes of waiting, and not one real timer: every wait went through the clock.
    expect(realTimers).toBe(0);
    s.expectCleanOn('relay-a', 'relay:1');
  });

  test('readiness that never flips after a restore: the readiness deadline fires and the session goes back', async () => {
    const s = new Scenario({ world: { readinessLagMs: 3600_000 } });
    const result = await s.update({ timeouts: { readinessMs: 30_000 } });
    expect(result).toMatchObject({ code: 'timed-out', step: 'handover', rolledBack: true, error: { reason: Reason.ReadinessPending } });
    expect(s.cluster.transfers.map((transfer) => `${transfer.source}->${transfer.target}`)).toEqual(['relay-a-0->relay-b-0', 'relay-b-0->relay-a-0']);
    expect(s.cluster.violations).toEqual([]);
  });

  test('the overall timeout stops the update and the rollback gets its own budget', async () => {
    const s = new Scenario();
    const virtualStart = s.clock.now();
    const result = await s.update({ timeouts: { overallMs: 15_000 } });
    expect(result).toMatchObject({
      code: 'timed-out',
      rolledBack: true,
      error: { code: ErrorCode.OverallTimeout, reason: Reason.ProgressDeadlineExceeded },
    });
    expect(s.eventsOf('rollback-started')[0]!.at - virtualStart).toBe(15_000);
    s.expectCleanOn('relay-a', 'relay:1');
  });

  test('the overall timeout with noRollback leaves the recorded progress for a rerun', async () => {
    const s = new Scenario();
    const result = await s.update({ noRollback: true, timeouts: { overallMs: 15_000 } });
    expect(result).toMatchObject({ code: 'timed-out', rolledBack: false });
    const record = (s.record('relay-b') ?? s.record('relay-a')) as ProgressRecord;
    expect(record.phase).toBe('Failed');
    expect(record.conditions.find((condition) => condition.type === 'Progressing')).toMatchObject({
      status: 'False',
      reason: Reason.ProgressDeadlineExceeded,
    });
    expect(s.cluster.violations).toEqual([]);
    expect(await s.update()).toMatchObject({ code: 'succeeded' });
    s.expectCleanOn('relay-b', 'relay:2');
  });

  test('a rollback that cannot finish stops at its own deadline', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-1', times: Infinity, effect: { kind: 'fail' } });
    // The old relay of ordinal 0 restarts into `starting` and never listens again: nothing can be handed back.
    s.cluster.beforeCall = (call) => {
      if (call.method === 'relay.restore' && call.target === 'relay-b-1') s.cluster.setRelay('relay-a-0', { state: 'stopping' });
    };
    const result = await s.update({ timeouts: { rollbackMs: 30_000 } });
    expect(result).toMatchObject({
      code: 'failed',
      step: 'handover',
      rollbackAttempted: true,
      error: { code: ErrorCode.RestoreFailed },
      rollbackError: { code: ErrorCode.OverallTimeout },
    });
    const rollbackStarted = s.eventsOf('rollback-started')[0]!.at;
    const lastError = s.eventsOf('error').at(-1)!;
    expect(lastError.at - rollbackStarted).toBe(30_000);
    // The sessions stay on the new pod that serves them.
    expect(s.cluster.violations).toEqual([]);
    expect(s.cluster.holders()['relay/0']).toBe('relay-b-0');
  });

  test('a platform call that never answers times out and is retried', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'listPods', target: 'relay-b', nth: 2, effect: { kind: 'hang' } });
    const result = await s.update({ timeouts: { callMs: 5000 } });
    expect(result.code).toBe('succeeded');
    expect(s.eventsOf('retry')).toEqual([expect.objectContaining({ operation: 'listPods relay-b', error: expect.objectContaining({ code: ErrorCode.CallTimeout }) })]);
  });

  test('a restore that never reaches the relay times out; status shows nothing moved, so it is sent again', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-0', effect: { kind: 'hang' } });
    const result = await s.update({ timeouts: { restoreMs: 10_000 } });
    expect(result.code).toBe('succeeded');
    expect(s.cluster.log().filter((line) => line.startsWith('relay.restore relay-b-0'))).toEqual([
      'relay.restore relay-b-0 <- relay-a-0 !hang',
      'relay.restore relay-b-0 <- relay-a-0',
    ]);
    expect(s.cluster.transfers.filter((transfer) => transfer.target === 'relay-b-0')).toHaveLength(1);
  });
});

describe('losing the lock or being interrupted', () => {
  test('a lease taken over mid-run stops every write at once, without rollback', async () => {
    const s = new Scenario();
    const process = s.cluster.process();
    s.cluster.beforeCall = (call) => {
      if (call.method === 'relay.restore' && call.target === 'relay-b-1') s.cluster.holdLock('relay', 'mallory@elsewhere', 600_000);
    };
    const result = await s.update({}, process);
    expect(result).toMatchObject({ code: 'failed', rollbackAttempted: false, error: { code: ErrorCode.LockLost } });
    const ours = s.cluster.calls.filter((call) => call.process === process.id);
    const lostAt = ours.findIndex((call) => call.method === 'lease.renew' && call.outcome === 'error');
    expect(lostAt).toBeGreaterThan(0);
    expect(s.cluster.log({ writesOnly: true, process: process.id }).slice(-1)).not.toContain('lease.release relay');
    expect(ours.slice(lostAt + 1).filter((call) => ['patchSetAnnotations', 'patchPodLabels', 'createSet', 'deleteSet', 'relay.restore'].includes(call.method))).toEqual([]);
    expect(s.cluster.violations).toEqual([]);
  });

  test('an interrupt stops the run without rollback and releases the lock for a rerun', async () => {
    const s = new Scenario();
    const interrupt = new AbortController();
    s.cluster.beforeCall = (call) => {
      if (call.method === 'relay.restore' && call.target === 'relay-b-1') interrupt.abort();
    };
    const result = await runUpdate(s.spec(), s.cluster.process(), (event) => s.events.push(event), { clock: s.clock, signal: interrupt.signal });
    expect(result).toMatchObject({ code: 'failed', rollbackAttempted: false, error: { code: ErrorCode.Interrupted } });
    expect(s.cluster.lease('relay')).toBeNull();
    s.cluster.beforeCall = null;
    expect(await s.update()).toMatchObject({ code: 'succeeded' });
    s.expectCleanOn('relay-b', 'relay:2');
  });
});

describe('actions the platform is slow to show', () => {
  test('a set that lingers after deletion (finalizers) is asked again each poll, not in a tight loop', async () => {
    const s = new Scenario({ world: { setDeletionMs: 5500 } });
    const result = await s.update({ pollIntervalMs: 1000 });
    expect(result.code).toBe('succeeded');
    const deletes = s.cluster.calls.filter((call) => call.method === 'deleteSet');
    // Once a poll (1 s) until the poll that finds the set gone (it leaves 5.5 s after the first delete).
    expect(deletes.map((call) => call.at - deletes[0]!.at)).toEqual([0, 1000, 2000, 3000, 4000, 5000, 6000]);
    s.expectCleanOn('relay-b', 'relay:2');
  });

  test('a deletion that never completes ends at the delete deadline, past the point of no return', async () => {
    const s = new Scenario({ world: { setDeletionMs: Infinity } });
    const result = await s.update({ timeouts: { deleteMs: 30_000 } });
    expect(result).toMatchObject({ code: 'timed-out', step: 'delete', rolledBack: false, error: { reason: Reason.ActionPending } });
    // Once a poll (1 s, the default) from the first delete to the deadline 30 s later, both included.
    const deletes = s.cluster.calls.filter((call) => call.method === 'deleteSet');
    expect(deletes.map((call) => call.at - deletes[0]!.at)).toEqual(Array.from({ length: 31 }, (_, second) => second * 1000));
    expect(s.cluster.violations).toEqual([]);
  });

  test('labels that do not show after a patch are patched again each poll until the deadline', async () => {
    const s = new Scenario();
    // Patches that "succeed" without showing, as a stale cache would make it look.
    s.cluster.beforeCall = (call) => {
      if (call.method === 'listPods' && call.target === 'relay-a') s.cluster.editPodLabels('relay-a-2', { restore: null });
    };
    const result = await s.update({ timeouts: { podStartMs: 20_000 } });
    expect(result).toMatchObject({ code: 'timed-out', step: 'mark', rolledBack: true, error: { reason: Reason.ActionPending } });
    const patches = s.cluster.calls.filter((call) => call.method === 'patchPodLabels' && call.target === 'relay-a-2' && call.args.includes('true'));
    // Once a poll (1 s) from the first patch to the 20 s deadline of the step, both included.
    expect(patches.map((call) => call.at - patches[0]!.at)).toEqual(Array.from({ length: 21 }, (_, second) => second * 1000));
  });
});
