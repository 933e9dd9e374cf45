import { ErrorCode, OrchestratorError, isOrchestratorError, summarizeError, toOrchestratorError } from '../errors.ts';
import type { RestoreOutcome } from '../platform/platform.ts';
import { gatherOrdinal, type OrdinalFacts } from './context.ts';
import { decideOrdinal, type WaitKind } from './ordinal.ts';
import { movedOrdinal, type Direction, type OrdinalEntry, type ProgressRecord } from './progress.ts';
import { WaitClock, type Run } from './runtime.ts';
import type { RecordStore } from './store.ts';
import { Reason } from './status.ts';

/**
 * Moves one ordinal's sessions in a direction (handover forward, handback in a rollback), as a small reconcile
 * loop: read both pods and relays, decide (ordinal.ts), do one thing, read again. Safe to start over at any
 * point: a restore whose answer was lost is recognised from the relays' status, never repeated blindly.
 */

function entriesOf(record: ProgressRecord, direction: Direction): Record<string, OrdinalEntry> {
  return direction === 'forward' ? record.handedOver : record.handedBack;
}

export async function moveOrdinal(
  run: Run,
  store: RecordStore,
  direction: Direction,
  ordinal: number,
  stop: AbortSignal,
): Promise<void> {
  const { from, to } = store.record;
  const { timeouts, restoreAttempts, retry } = run.settings;
  const waits = new WaitClock<WaitKind>(run, { podStart: timeouts.podStartMs, readiness: timeouts.readinessMs });
  let attempts = 0;
  let outcome: RestoreOutcome | null = null;
  let lastFailure: OrchestratorError | null = null;
  let lastRelabel: string | null = null;

  for (;;) {
    if (stop.aborted) throw stop.reason;
    run.checkDeadline();
    const facts = await gatherOrdinal(run, from, to, ordinal);
    const decision = decideOrdinal(direction, facts, { attemptsLeft: restoreAttempts - attempts });
    switch (decision.kind) {
      case 'done':
        await recordArrival(run, store, direction, facts, outcome);
        return;
      case 'wait':
        await waits.wait(decision.wait, ordinal, decision.reason, decision.message, stop);
        break;
      case 'blocked':
        throw (
          lastFailure ??
          new OrchestratorError(ErrorCode.Blocked, decision.message, { reason: decision.reason, details: { ordinal } })
        );
      case 'relabel': {
        // The same patches again: the platform has not shown the last ones yet; give it a poll interval.
        const key = JSON.stringify(decision.patches);
        if (key === lastRelabel) await waits.wait('podStart', ordinal, Reason.ActionPending, `labels not visible yet: ${decision.message}`, stop);
        lastRelabel = key;
        run.noteWaiting(ordinal, decision.reason, decision.message);
        for (const patch of decision.patches) {
          try {
            await run.call(`patchPodLabels ${patch.pod}`, () => run.platform.patchPodLabels(patch.pod, patch.labels), { retry: true });
          } catch (error) {
            // A pod recreated under us: read again rather than fail.
            if (isOrchestratorError(error) && error.code === ErrorCode.NotFound) break;
            throw error;
          }
          run.emit({ type: 'labels-changed', pod: patch.pod, labels: patch.labels, reason: decision.reason });
        }
        break;
      }
      case 'restore': {
        if (attempts > 0) {
          const delayMs = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempts - 1));
          run.emit({
            type: 'retry',
            step: run.step,
            operation: `relay.restore ${decision.target.name}`,
            attempt: attempts,
            delayMs,
            error: summarizeError(lastFailure),
          });
          await run.sleep(delayMs, stop);
        }
        attempts++;
        if (stop.aborted) throw stop.reason;
        await recordDeparture(run, store, direction, ordinal, decision.source.name, decision.target.name);
        // A sibling failed while the intent was written: do not start a transfer the rollback would undo.
        if (stop.aborted) throw stop.reason;
        try {
          outcome = await run.call(
            `relay.restore ${decision.target.name}`,
            () => run.platform.relay.restore(decision.target, decision.source),
            { retry: false, timeoutMs: timeouts.restoreMs },
          );
          lastFailure = null;
        } catch (raw) {
          const error = toOrchestratorError(raw, `relay.restore ${decision.target.name}`);
          if (error.code === ErrorCode.OverallTimeout || error.code === ErrorCode.LockLost || error.code === ErrorCode.Interrupted) {
            throw error;
          }
          // The transfer may have committed anyway; the next reading of the relays tells.
          lastFailure = error;
          run.emit({ type: 'error', step: run.step, error: summarizeError(error) });
        }
        waits.reset('readiness');
        break;
      }
    }
  }
}

async function recordDeparture(
  run: Run,
  store: RecordStore,
  direction: Direction,
  ordinal: number,
  source: string,
  target: string,
): Promise<void> {
  const now = run.now();
  await store.update((draft) => {
    entriesOf(draft, direction)[String(ordinal)] = {
      state: 'restoring',
      source,
      target,
      startedAt: now,
      finishedAt: null,
      sessions: null,
      skipped: null,
      bytes: null,
      durationMs: null,
      pauseMs: null,
      inferred: false,
    };
  });
}

/**
 * Records that an ordinal's sessions arrived. In a rollback an ordinal that never left the old set has no entry
 * and gets none: nothing was handed back.
 */
async function recordArrival(
  run: Run,
  store: RecordStore,
  direction: Direction,
  facts: OrdinalFacts,
  outcome: RestoreOutcome | null,
): Promise<void> {
  const key = String(facts.ordinal);
  const existing = entriesOf(store.record, direction)[key];
  if (existing?.state === 'done') return;
  if (existing === undefined && direction === 'rollback') return;
  const target = direction === 'forward' ? facts.newPod : facts.oldPod;
  const source = direction === 'forward' ? facts.oldPod : facts.newPod;
  const targetRelay = direction === 'forward' ? facts.newRelay : facts.oldRelay;
  const now = run.now();
  const entry: OrdinalEntry = {
    state: 'done',
    source: existing?.source ?? source?.name ?? '',
    target: existing?.target ?? target?.name ?? '',
    startedAt: existing?.startedAt ?? now,
    finishedAt: now,
    sessions: outcome?.sessions ?? (targetRelay?.reachable ? targetRelay.status.sessions : null),
    skipped: outcome?.skipped ?? null,
    bytes: outcome?.bytes ?? null,
    durationMs: outcome?.durationMs ?? null,
    pauseMs: outcome?.pauseMs ?? null,
    inferred: outcome === null,
  };
  await store.update((draft) => {
    entriesOf(draft, direction)[key] = entry;
  });
  run.emit({ type: 'ordinal-moved', direction, ...movedOrdinal(facts.ordinal, entry) });
}

/**
 * Runs `work` for every ordinal, at most `limit` at a time, in ordinal order. On the first failure no further
 * ordinal starts and the others are told to stop at their next wait (a restore already sent is still awaited, so
 * its outcome is recorded); the first failure is rethrown once all have settled.
 */
export async function forEachOrdinal(
  ordinals: readonly number[],
  limit: number,
  work: (ordinal: number, stop: AbortSignal) => Promise<void>,
): Promise<void> {
  const failed = new AbortController();
  let next = 0;
  let firstError: unknown = null;
  const worker = async (): Promise<void> => {
    while (!failed.signal.aborted && next < ordinals.length) {
      const ordinal = ordinals[next++] as number;
      try {
        await work(ordinal, failed.signal);
      } catch (error) {
        if (!failed.signal.aborted) {
          firstError = error;
          failed.abort(error);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, ordinals.length)) }, worker));
  if (failed.signal.aborted) throw firstError;
}
