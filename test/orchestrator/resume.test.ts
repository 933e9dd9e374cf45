import { describe, expect, test } from 'vitest';
import { readStatus } from '../../orchestrator/index.ts';
import type { RunResult } from '../../orchestrator/bluegreen/result.ts';
import { Reason } from '../../orchestrator/bluegreen/status.ts';
import { Scenario } from '../fakes/platform.ts';

/**
 * Kill relayctl right after each call of a run took effect (every call boundary), then run the same command
 * again: it must continue or roll back from the recorded progress, never start over, never strand a session.
 */

interface KillCase {
  /** Builds a fresh scenario, with whatever faults and history the case needs. */
  arrange: () => Promise<Scenario>;
  /** The command killed and then rerun; the rerun waits out the dead run's lease. */
  command: (s: Scenario, rerun: boolean) => Promise<RunResult>;
  /**
   * Checks the end state after the rerun. `finished` is true when the killed run had already recorded its end
   * (killed after its last record write): the rerun is then a new attempt rather than a continuation.
   */
  verify: (s: Scenario, rerun: RunResult, finished: boolean) => void;
}

/** How many calls a run of `kase` makes when nobody kills it. */
async function callsOfUndisturbedRun(kase: KillCase): Promise<number> {
  const s = await kase.arrange();
  const before = s.cluster.calls.length;
  await kase.command(s, false);
  return s.cluster.calls.length - before;
}

async function killAtEveryBoundary(kase: KillCase): Promise<number> {
  const total = await callsOfUndisturbedRun(kase);
  expect(total).toBeGreaterThan(5);
  for (let boundary = 1; boundary <= total; boundary++) {
    const s = await kase.arrange();
    const offset = s.cluster.calls.length;
    s.cluster.killAfterCall(boundary);
    await kase.command(s, false);
    const killed = s.cluster.calls[offset + boundary - 1];
    const context = `killed after call ${boundary} (${killed?.method} ${killed?.target})`;
    expect(killed?.outcome, context).toBe('killed');
    const status = await readStatus(s.name, s.cluster.process());
    const eventsBefore = s.events.length;
    const rerun = await kase.command(s, true);
    await s.settle();
    try {
      kase.verify(s, rerun, !status.inProgress && status.update !== null);
      if (status.inProgress) {
        // It continued from the recorded step, in the recorded direction.
        const resumed = s.events.slice(eventsBefore).find((event) => event.type === 'run-resumed');
        expect(resumed).toMatchObject({ step: status.update?.step, direction: status.update?.direction });
      }
    } catch (error) {
      throw new Error(`${context}: ${(error as Error).message}`, { cause: error });
    }
  }
  return total;
}

/** Each ordinal moved old -> new exactly once; the new set was created once. */
function expectNothingRepeated(s: Scenario): void {
  const forward = s.cluster.transfers.filter((transfer) => transfer.target.startsWith('relay-b'));
  expect(forward.map((transfer) => transfer.ordinal).sort()).toEqual([...new Set(forward.map((transfer) => transfer.ordinal))].sort());
  const created = s.cluster.calls.filter((call) => call.method === 'createSet' && (call.outcome === 'ok' || call.outcome === 'killed'));
  expect(created.length).toBeLessThanOrEqual(1);
}

const waitForDeadLease = { lockWaitMs: 60_000 };

describe('killed at every call boundary, then run again', () => {
  test('update: the rerun finishes it, handing each ordinal over once', async () => {
    const boundaries = await killAtEveryBoundary({
      arrange: async () => new Scenario(),
      command: (s, rerun) => s.update(rerun ? waitForDeadLease : {}),
      verify: (s, rerun) => {
        expect(rerun).toMatchObject({ code: 'succeeded' });
        s.expectCleanOn('relay-b', 'relay:2');
        expectNothingRepeated(s);
        expect(s.cluster.transfers.filter((transfer) => transfer.target.startsWith('relay-b'))).toHaveLength(3);
      },
    });
    expect(boundaries).toBeGreaterThan(100);
  });

  test('update with maxParallel 2: same, with transfers in flight when killed', async () => {
    await killAtEveryBoundary({
      arrange: async () => new Scenario({ seed: { replicas: 4 } }),
      command: (s, rerun) => s.update({ maxParallel: 2, ...(rerun ? waitForDeadLease : {}) }),
      verify: (s, rerun) => {
        expect(rerun).toMatchObject({ code: 'succeeded' });
        s.expectCleanOn('relay-b', 'relay:2');
        expectNothingRepeated(s);
      },
    });
  });

  test('an update that fails and rolls back: the rerun rolls back cleanly, moving each ordinal at most once each way', async () => {
    await killAtEveryBoundary({
      arrange: async () => {
        const s = new Scenario();
        s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-2', times: Infinity, effect: { kind: 'fail' } });
        return s;
      },
      command: (s, rerun) => s.update(rerun ? waitForDeadLease : {}),
      verify: (s, rerun, finished) => {
        expect(rerun).toMatchObject({ code: 'rolled-back', step: 'handover' });
        s.expectCleanOn('relay-a', 'relay:1');
        if (finished) return; // the rerun was a second attempt, which failed and rolled back the same way
        expectNothingRepeated(s);
        const back = s.cluster.transfers.filter((transfer) => transfer.target.startsWith('relay-a')).map((transfer) => transfer.ordinal);
        expect(back.sort()).toEqual([0, 1]);
      },
    });
  });

  test('abort: the rerun finishes it, or finds it finished', async () => {
    await killAtEveryBoundary({
      arrange: async () => {
        const s = new Scenario({ world: { podStartMs: Infinity } });
        await s.update({ noRollback: true, timeouts: { podStartMs: 10_000 } });
        return s;
      },
      command: (s, rerun) => s.abort(rerun ? waitForDeadLease : {}),
      verify: (s, rerun) => {
        if (rerun.code === 'refused') expect(rerun.reason).toBe(Reason.NoUpdateInProgress);
        else expect(rerun).toMatchObject({ code: 'succeeded', outcome: 'aborted' });
        expect(s.record('relay-a')).toMatchObject({ phase: 'Aborted' });
        s.expectCleanOn('relay-a', 'relay:1');
      },
    });
  });
});
