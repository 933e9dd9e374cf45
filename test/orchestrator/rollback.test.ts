import { describe, expect, test } from 'vitest';
import type { ProgressRecord } from '../../orchestrator/bluegreen/progress.ts';
import { Reason } from '../../orchestrator/bluegreen/status.ts';
import { ErrorCode, restoreFailedError } from '../../orchestrator/errors.ts';
import { Scenario } from '../fakes/platform.ts';

/**
 * A permanent failure at each forward step. `arrange` injects it into a fresh scenario; `heal` undoes it so a
 * rerun can finish. Each documents what the rollback has to undo there.
 */
interface StepFailure {
  step: string;
  arrange: (s: Scenario) => void;
  heal: (s: Scenario) => void;
  /** ERR code of the failure as reported. */
  code: string;
  /** Was any ordinal handed over (so the rollback must hand back)? */
  handedBack: number[];
}

const forbidden = (): Error => new Error('forbidden by policy');

const STEP_FAILURES: StepFailure[] = [
  {
    step: 'mark',
    arrange: (s) => s.cluster.addFault({ method: 'patchPodLabels', target: 'relay-a-1', times: Infinity, effect: { kind: 'fail', error: forbidden } }),
    heal: (s) => s.cluster.clearFaults(),
    code: ErrorCode.Unexpected,
    handedBack: [],
  },
  {
    step: 'create',
    arrange: (s) => s.cluster.addFault({ method: 'createSet', times: Infinity, effect: { kind: 'fail', error: forbidden } }),
    heal: (s) => s.cluster.clearFaults(),
    code: ErrorCode.Unexpected,
    handedBack: [],
  },
  {
    step: 'handover',
    arrange: (s) =>
      s.cluster.addFault({
        method: 'relay.restore',
        target: 'relay-b-1',
        times: Infinity,
        effect: { kind: 'fail', error: () => restoreFailedError('relay-b-1', 'relay-a-1', 'state does not load') },
      }),
    heal: (s) => s.cluster.clearFaults(),
    code: ErrorCode.RestoreFailed,
    handedBack: [0],
  },
  {
    step: 'drain',
    // The write that would end the drain step fails (etcd refuses it).
    arrange: (s) =>
      s.cluster.addFault({
        method: 'patchSetAnnotations',
        when: () => s.record('relay-a')?.step === 'drain' && s.record('relay-a')?.direction === 'forward',
        effect: { kind: 'fail', error: () => new Error('etcdserver: request is too large') },
      }),
    heal: (s) => s.cluster.clearFaults(),
    code: ErrorCode.Unexpected,
    handedBack: [0, 1, 2],
  },
  {
    step: 'verify',
    // A new pod turns unready after its handover (during the drain): verify waits for it, then gives up.
    arrange: (s) => {
      s.cluster.beforeCall = () => {
        if (s.record('relay-a')?.step === 'drain' && s.cluster.relayOf('relay-b-2')?.ready) s.cluster.setRelay('relay-b-2', { ready: false });
      };
    },
    heal: (s) => {
      s.cluster.beforeCall = null;
      s.cluster.setRelay('relay-b-2', { ready: true });
    },
    code: ErrorCode.StepTimeout,
    handedBack: [0, 1, 2],
  },
];

describe('a failure at each step rolls back as documented', () => {
  test.each(STEP_FAILURES)('$step', async ({ step, arrange, code, handedBack }) => {
    const s = new Scenario();
    arrange(s);
    const result = await s.update({ timeouts: { readinessMs: 20_000 } });
    const timedOut = code === ErrorCode.StepTimeout;
    expect(result).toMatchObject(
      timedOut
        ? { code: 'timed-out', step, rolledBack: true, error: { code } }
        : { code: 'rolled-back', step, error: { code }, outcome: handedBack.length > 0 ? 'rolled-back' : 'aborted' },
    );
    s.expectCleanOn('relay-a', 'relay:1');
    const record = s.record('relay-a') as ProgressRecord;
    expect(record).toMatchObject({
      direction: 'rollback',
      step: 'done',
      phase: handedBack.length > 0 ? 'RolledBack' : 'Aborted',
      rollbackRequestedBy: 'failure',
      failure: { code, step },
    });
    expect(Object.keys(record.handedBack).map(Number)).toEqual(handedBack);
    expect(s.eventsOf('rollback-started')).toEqual([expect.objectContaining({ fromStep: step, requestedBy: 'failure', cause: expect.objectContaining({ code }) })]);
    expect(s.eventsOf('step-started').map((event) => event.step).slice(-5)).toEqual(['handback', 'drain-back', 'remove', 'unmark', 'release']);
    // Sessions moved back exactly once per ordinal that had moved.
    expect(s.cluster.transfers.filter((transfer) => transfer.target.startsWith('relay-a')).map((transfer) => transfer.ordinal)).toEqual(handedBack);
  });

  test.each(STEP_FAILURES)('$step with noRollback: stops there, and a rerun continues', async ({ step, arrange, heal, code }) => {
    const s = new Scenario();
    arrange(s);
    const result = await s.update({ noRollback: true, timeouts: { readinessMs: 20_000 } });
    expect(result).toMatchObject(
      code === ErrorCode.StepTimeout
        ? { code: 'timed-out', step, rolledBack: false, rollbackError: null }
        : { code: 'failed', step, rollbackAttempted: false, error: { code } },
    );
    expect(s.cluster.violations).toEqual([]);
    const record = s.record('relay-a') as ProgressRecord;
    expect(record).toMatchObject({ direction: 'forward', step, phase: 'Failed', failure: { code, step } });
    expect(record.conditions.find((condition) => condition.type === 'Progressing')).toMatchObject({
      status: 'False',
      message: expect.stringContaining('noRollback is set'),
    });
    heal(s);
    const rerun = await s.update();
    expect(rerun).toMatchObject({ code: 'succeeded', outcome: 'updated' });
    expect(s.eventsOf('run-resumed').at(-1)).toMatchObject({ step, direction: 'forward' });
    s.expectCleanOn('relay-b', 'relay:2');
  });

  test('delete: past the point of no return, nothing is rolled back; a rerun finishes', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'deleteSet', times: Infinity, effect: { kind: 'fail', error: forbidden } });
    const result = await s.update();
    expect(result).toMatchObject({ code: 'failed', step: 'delete', rollbackAttempted: false });
    expect(s.cluster.violations).toEqual([]);
    expect(s.record('relay-b')).toMatchObject({ step: 'delete', phase: 'Failed', direction: 'forward' });
    expect(await s.rollback()).toMatchObject({ code: 'refused', reason: Reason.PastPointOfNoReturn });
    s.cluster.clearFaults();
    expect(await s.update()).toMatchObject({ code: 'succeeded', outcome: 'updated' });
    s.expectCleanOn('relay-b', 'relay:2');
  });
});

describe('abort and rollback commands', () => {
  test('abort before any handover deletes the new set and unlabels, with exactly these writes', async () => {
    const s = new Scenario({ seed: { replicas: 2 }, world: { podStartMs: Infinity } });
    const stuck = await s.update({ noRollback: true, timeouts: { podStartMs: 20_000 } });
    expect(stuck).toMatchObject({ code: 'timed-out', step: 'handover', rolledBack: false, error: { reason: Reason.PodNotRunning } });
    const abort = s.cluster.process();
    const result = await s.abort({}, abort);
    expect(result).toMatchObject({ code: 'succeeded', command: 'abort', outcome: 'aborted', image: 'relay:1', moved: [] });
    expect(s.cluster.log({ writesOnly: true, process: abort.id })).toEqual([
      'lock.acquire relay alice@test',
      'patchSetAnnotations relay-a relayctl.dev/update', // direction rollback, step handback
      'patchSetAnnotations relay-a relayctl.dev/update', // nothing to hand back: step drain-back
      'patchSetAnnotations relay-a relayctl.dev/update', // nothing to drain: step remove
      'deleteSet relay-b',
      'patchSetAnnotations relay-a relayctl.dev/update', // step unmark
      'patchPodLabels relay-a-0 {"restore":null}',
      'patchPodLabels relay-a-1 {"restore":null}',
      'patchSetAnnotations relay-a relayctl.dev/update', // Aborted
      'lease.release relay',
    ]);
    s.expectCleanOn('relay-a', 'relay:1');
    expect(s.record('relay-a')).toMatchObject({ phase: 'Aborted', rollbackRequestedBy: 'abort' });
  });

  test('abort is refused once a session moved, pointing at rollback', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-2', times: Infinity, effect: { kind: 'fail' } });
    await s.update({ noRollback: true });
    const abort = s.cluster.process();
    const result = await s.abort({}, abort);
    expect(result).toMatchObject({ code: 'refused', reason: Reason.HandoverStarted, message: expect.stringContaining('use rollback') });
    expect(s.cluster.log({ writesOnly: true, process: abort.id })).toEqual(['lock.acquire relay alice@test', 'lease.release relay']);
  });

  test('rollback after handovers swaps labels (new pod first), hands back, then removes the new set', async () => {
    const s = new Scenario({ seed: { replicas: 2 } });
    s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-1', times: Infinity, effect: { kind: 'fail' } });
    expect(await s.update({ noRollback: true })).toMatchObject({ code: 'failed', step: 'handover' });
    s.cluster.clearFaults();
    const rollback = s.cluster.process();
    const result = await s.rollback({}, rollback);
    expect(result).toMatchObject({
      code: 'succeeded',
      command: 'rollback',
      outcome: 'rolled-back',
      moved: [{ ordinal: 0, source: 'relay-b-0', target: 'relay-a-0', sessions: 100, inferred: false }],
    });
    expect(s.cluster.log({ writesOnly: true, process: rollback.id })).toEqual([
      'lock.acquire relay alice@test',
      'patchSetAnnotations relay-a relayctl.dev/update', // direction rollback
      'patchPodLabels relay-b-0 {"restore":"true"}', // the new pod may no longer be restored into...
      'patchPodLabels relay-a-0 {"restore":null}', // ...and only then may the old one
      'patchSetAnnotations relay-a relayctl.dev/update', // ordinal 0 handing back
      'relay.restore relay-a-0 <- relay-b-0',
      'patchSetAnnotations relay-a relayctl.dev/update', // ordinal 0 back
      'patchSetAnnotations relay-a relayctl.dev/update', // step drain-back
      'patchSetAnnotations relay-a relayctl.dev/update', // step remove
      'deleteSet relay-b',
      'patchSetAnnotations relay-a relayctl.dev/update', // step unmark
      'patchPodLabels relay-a-1 {"restore":null}', // never handed over: still marked
      'patchSetAnnotations relay-a relayctl.dev/update', // RolledBack
      'lease.release relay',
    ]);
    s.expectCleanOn('relay-a', 'relay:1');
    // The new pod forwarded stragglers back and was only deleted once quiet.
    expect(s.cluster.stragglersDropped).toBe(0);
  });

  test('nothing in progress: abort and rollback refuse', async () => {
    const s = new Scenario();
    expect(await s.abort()).toMatchObject({ code: 'refused', reason: Reason.NoUpdateInProgress });
    await s.update();
    expect(await s.rollback()).toMatchObject({ code: 'refused', reason: Reason.NoUpdateInProgress });
  });

  test('an update with another image is refused while one is in progress', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'createSet', effect: { kind: 'fail', error: forbidden } });
    await s.update({ noRollback: true });
    expect(await s.update({ image: 'relay:3' })).toMatchObject({
      code: 'refused',
      reason: Reason.UpdateInProgress,
      message: expect.stringContaining('run it again with image relay:2'),
    });
  });

  test('a rollback the user asked for is finished by rollback, not turned back by update', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-2', times: Infinity, effect: { kind: 'fail' } });
    await s.update({ noRollback: true });
    s.cluster.clearFaults();
    s.cluster.addFault({ method: 'deleteSet', effect: { kind: 'kill' } });
    expect(await s.rollback()).toMatchObject({ code: 'failed' });
    expect(await s.update({ lockWaitMs: 60_000 })).toMatchObject({ code: 'refused', reason: Reason.RollbackInProgress });
    expect(await s.rollback({ lockWaitMs: 60_000 })).toMatchObject({ code: 'succeeded', outcome: 'rolled-back' });
    s.expectCleanOn('relay-a', 'relay:1');
  });
});

describe('when the rollback itself fails', () => {
  test('it stops, keeps the record, and rerunning the update finishes the rollback', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-1', times: Infinity, effect: { kind: 'fail' } });
    s.cluster.addFault({ method: 'relay.restore', target: 'relay-a-0', times: Infinity, effect: { kind: 'fail' } });
    const result = await s.update();
    expect(result).toMatchObject({
      code: 'failed',
      step: 'handover',
      error: { code: ErrorCode.RestoreFailed, message: expect.stringContaining('relay-b-1') },
      rollbackAttempted: true,
      rollbackError: { code: ErrorCode.RestoreFailed, message: expect.stringContaining('relay-a-0') },
    });
    // Ordinal 0 still sits on its new pod, which serves it: nothing is lost while we wait for a human.
    expect(s.cluster.violations).toEqual([]);
    expect(s.cluster.holders()['relay/0']).toBe('relay-b-0');
    const record = s.record('relay-a') as ProgressRecord;
    expect(record).toMatchObject({ direction: 'rollback', step: 'handback', phase: 'Failed', failure: { step: 'handover', code: ErrorCode.RestoreFailed } });
    expect(record.conditions.find((condition) => condition.type === 'Progressing')).toMatchObject({ status: 'False', reason: Reason.RollbackFailed });

    s.cluster.clearFaults();
    const rerun = await s.update();
    expect(rerun).toMatchObject({ code: 'rolled-back', step: 'handover', error: { code: ErrorCode.RestoreFailed }, outcome: 'rolled-back' });
    s.expectCleanOn('relay-a', 'relay:1');
  });
});

describe('restores whose outcome is unclear are never repeated blindly', () => {
  test('answer lost after the transfer committed: recognised from relay status, outcome marked inferred', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-1', effect: { kind: 'fail-after' } });
    const result = await s.update();
    expect(result.code).toBe('succeeded');
    expect(s.cluster.transfers.map((transfer) => transfer.target)).toEqual(['relay-b-0', 'relay-b-1', 'relay-b-2']);
    expect(result.code === 'succeeded' && result.moved[1]).toMatchObject({ ordinal: 1, sessions: 100, bytes: null, inferred: true });
  });

  test('no answer at all: the call times out, status shows the transfer committed', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-0', effect: { kind: 'hang-after' } });
    const result = await s.update({ timeouts: { restoreMs: 5000 } });
    expect(result.code).toBe('succeeded');
    expect(s.cluster.calls.filter((call) => call.method === 'relay.restore')).toHaveLength(3);
    expect(s.eventsOf('error')[0]).toMatchObject({ step: 'handover', error: { code: ErrorCode.CallTimeout } });
  });

  test('a transfer aborted midway leaves the old relay serving and is retried', async () => {
    const s = new Scenario();
    s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-2', effect: { kind: 'fail-midway' } });
    const result = await s.update();
    expect(result.code).toBe('succeeded');
    expect(s.cluster.log().filter((line) => line.startsWith('relay.restore relay-b-2'))).toEqual([
      'relay.restore relay-b-2 <- relay-a-2 !error',
      'relay.restore relay-b-2 <- relay-a-2',
    ]);
    expect(s.eventsOf('retry')).toEqual([expect.objectContaining({ operation: 'relay.restore relay-b-2', attempt: 1 })]);
    expect(s.cluster.violations).toEqual([]);
  });

  test('a double that lost its label is marked again before it is restored from', async () => {
    const s = new Scenario();
    s.cluster.beforeCall = (call) => {
      if (call.method === 'createSet') s.cluster.editPodLabels('relay-a-1', { restore: null });
    };
    expect((await s.update()).code).toBe('succeeded');
    expect(s.eventsOf('labels-changed').filter((event) => event.reason === Reason.DoubleNotMarked)).toEqual([
      expect.objectContaining({ pod: 'relay-a-1', labels: { restore: 'true' } }),
    ]);
  });
});
