import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from '../clock.ts';
import { ErrorCode, isLockHeldError, summarizeError, toOrchestratorError, type ErrorSummary, type OrchestratorError } from '../errors.ts';
import { EventSink, type Command, type RunStep, type UpdateObserver } from '../events.ts';
import type { Platform, SetInfo } from '../platform/platform.ts';
import { gatherStart, listPods, observeRelays } from './context.ts';
import { LeaseKeeper } from './lease.ts';
import { planControl, planUpdate, preflightFresh, type StartPlan } from './preflight.ts';
import { PROGRESS_VERSION, canRollBack, movedOrdinal, nextStep, type MovedOrdinal, type OrdinalEntry, type ProgressRecord } from './progress.ts';
import type { RunResult } from './result.ts';
import { beginRollback, rollbackPhase } from './rollback.ts';
import { Run } from './runtime.ts';
import { resolveControlSpec, resolveUpdateSpec, type ControlSpec, type Settings, type UpdateSpec } from './spec.ts';
import { ConditionType, Reason, setCondition } from './status.ts';
import { STEPS } from './steps.ts';
import { RecordStore } from './store.ts';

/**
 * Runs a command as a step machine over the recorded progress: take the lock, decide how to start (preflight,
 * resume, or switch to rollback), then run the recorded steps in order, writing the record after each. A failed
 * forward step rolls back (unless noRollback or past the point of no return); a failed rollback stops and keeps
 * the record so a rerun continues it.
 */

export interface RunOptions {
  /** Swappable clock; tests pass a ManualClock. */
  clock?: Clock;
  /** Aborting stops the run at its next call or wait, without rollback; the record stays for a rerun. */
  signal?: AbortSignal;
  /** Generates update ids (tests pass a fixed one). */
  newUpdateId?: () => string;
}

export async function runCommand(
  command: Command,
  spec: UpdateSpec | ControlSpec,
  platform: Platform,
  observer: UpdateObserver,
  options: RunOptions = {},
): Promise<RunResult> {
  const clock = options.clock ?? systemClock;
  const events = new EventSink(observer, () => clock.now());
  let settings: Settings;
  try {
    settings = command === 'update' ? resolveUpdateSpec(spec as UpdateSpec) : resolveControlSpec(spec as ControlSpec);
  } catch (raw) {
    const error = toOrchestratorError(raw, 'spec');
    const result: RunResult = {
      code: 'refused',
      command,
      name: typeof spec?.name === 'string' ? spec.name : '',
      updateId: null,
      durationMs: 0,
      record: null,
      reason: error.reason ?? Reason.InvalidSpec,
      message: error.message,
    };
    events.emit({ type: 'run-finished', result });
    return result;
  }
  const run = new Run(platform, clock, settings, events, options.signal);
  run.emit({ type: 'run-started', command, name: settings.name, owner: settings.owner, platform: platform.name });
  const result = await underLock(run, command, options);
  run.emit({ type: 'run-finished', result });
  return result;
}

async function underLock(run: Run, command: Command, options: RunOptions): Promise<RunResult> {
  const outcome = new Outcomes(run, command);
  run.step = 'lock';
  const lockStarted = run.now();
  run.emit({ type: 'step-started', step: 'lock', direction: 'forward' });
  let lease: LeaseKeeper;
  try {
    lease = await LeaseKeeper.acquire(run);
  } catch (error) {
    if (isLockHeldError(error)) {
      return { ...outcome.base(null), code: 'lock-held', holder: error.holder, expiresAt: error.expiresAt };
    }
    return outcome.failed(null, 'lock', toOrchestratorError(error, 'lock'), false, null);
  }
  run.emit({ type: 'step-finished', step: 'lock', direction: 'forward', durationMs: run.now() - lockStarted });
  lease.startRenewing();
  try {
    return await start(run, command, options, outcome);
  } finally {
    run.step = 'release';
    const releaseStarted = run.now();
    run.emit({ type: 'step-started', step: 'release', direction: run.direction });
    await lease.release();
    run.emit({ type: 'step-finished', step: 'release', direction: run.direction, durationMs: run.now() - releaseStarted });
  }
}

async function start(run: Run, command: Command, options: RunOptions, outcome: Outcomes): Promise<RunResult> {
  run.step = 'preflight';
  const preflightStarted = run.now();
  run.emit({ type: 'step-started', step: 'preflight', direction: 'forward' });
  let plan: StartPlan;
  let store: RecordStore;
  try {
    const facts = await gatherStart(run);
    plan = command === 'update' ? planUpdate(run.settings, facts) : planControl(command, facts);
    if (plan.kind === 'fresh') {
      const pods = await listPods(run, plan.from.name);
      const problem = preflightFresh(plan.from, pods, await observeRelays(run, pods, { retry: true }));
      if (problem !== null) plan = { kind: 'refuse', ...problem };
    }
  } catch (raw) {
    const error = toOrchestratorError(raw, 'preflight');
    if (error.code === ErrorCode.RecordCorrupt || error.code === ErrorCode.RecordConflict) {
      return outcome.refused(error.reason ?? Reason.RecordCorrupt, error.message);
    }
    return outcome.failed(null, 'preflight', error, false, null);
  }

  switch (plan.kind) {
    case 'refuse':
      return outcome.refused(plan.reason, plan.message);
    case 'already-done':
      run.events.updateId = plan.record.id;
      run.emit({ type: 'step-finished', step: 'preflight', direction: 'forward', durationMs: run.now() - preflightStarted });
      return outcome.succeeded(plan.record, 'already-updated');
    default:
      break;
  }

  try {
    if (plan.kind === 'fresh') {
      const id = options.newUpdateId?.() ?? `${run.now().toString(36)}-${randomUUID().slice(0, 8)}`;
      run.events.updateId = id;
      run.emit({ type: 'step-finished', step: 'preflight', direction: 'forward', durationMs: run.now() - preflightStarted });
      store = await RecordStore.create(run, plan.from, newRecord(run, id, plan.from, plan.to));
    } else {
      const record = plan.located.record;
      run.events.updateId = record.id;
      run.emit({ type: 'step-finished', step: 'preflight', direction: 'forward', durationMs: run.now() - preflightStarted });
      store = RecordStore.adopt(run, record, plan.set);
      run.emit({ type: 'run-resumed', step: record.step, direction: record.direction, previousOwner: record.owner });
      const now = run.now();
      if (plan.kind === 'start-rollback') {
        await beginRollback(run, store, plan.requestedBy, null);
      } else {
        await store.update((draft) => {
          draft.owner = run.settings.owner;
          draft.phase = 'Progressing';
          draft.conditions = [
            ...setCondition(
              draft.conditions,
              { type: ConditionType.Progressing, status: 'True', reason: Reason.UpdateResumed, message: `resumed by ${run.settings.owner} at step ${draft.step}` },
              now,
            ),
          ];
        });
      }
    }
  } catch (raw) {
    // Nothing but the record was written (if anything): no rollback needed, a rerun starts cleanly.
    return outcome.failed(null, 'preflight', toOrchestratorError(raw, 'start'), false, null);
  }
  return drive(run, store, outcome);
}

function newRecord(run: Run, id: string, from: SetInfo, to: string): ProgressRecord {
  const now = run.now();
  const image = run.settings.image ?? from.image;
  return {
    v: PROGRESS_VERSION,
    id,
    owner: run.settings.owner,
    name: run.settings.name,
    from: from.name,
    to,
    fromImage: from.image,
    image,
    replicas: from.replicas,
    direction: 'forward',
    step: 'mark',
    phase: 'Progressing',
    seq: 1,
    startedAt: now,
    updatedAt: now,
    handedOver: {},
    handedBack: {},
    failure: null,
    rollbackRequestedBy: null,
    conditions: [
      {
        type: ConditionType.Progressing,
        status: 'True',
        reason: Reason.UpdateStarted,
        message: `updating ${from.name} (${from.image}) to ${to} (${image})`,
        lastTransitionTime: now,
        lastUpdateTime: now,
      },
    ],
  };
}

async function drive(run: Run, store: RecordStore, outcome: Outcomes): Promise<RunResult> {
  if (store.record.direction === 'rollback') run.setBudget(run.settings.timeouts.rollbackMs, 'rollback budget');
  try {
    await runSteps(run, store);
  } catch (raw) {
    return onFailure(run, store, outcome, toOrchestratorError(raw, run.step));
  }
  return outcome.concluded(store.record);
}

/** Runs the recorded steps until `done`. Each step's completion is one record write, then its event. */
async function runSteps(run: Run, store: RecordStore): Promise<void> {
  for (;;) {
    const { step, direction } = store.record;
    if (step === 'done') return;
    run.step = step;
    run.direction = direction;
    const started = run.now();
    run.emit({ type: 'step-started', step, direction });
    const summary = await STEPS[step].run(run, store);
    const next = nextStep(direction, step);
    const now = run.now();
    const apply = (draft: ProgressRecord): void => {
      draft.step = next;
      let conditions = setCondition(draft.conditions, { type: ConditionType.Progressing, status: 'True', ...summary }, now);
      if (next === 'done') {
        draft.phase = direction === 'forward' ? 'Completed' : rollbackPhase(draft);
        const reason = direction === 'forward' ? Reason.UpdateCompleted : draft.phase === 'Aborted' ? Reason.Aborted : Reason.RolledBack;
        const message =
          direction === 'forward' ? `${draft.to} serves every session with ${draft.image}` : `${draft.from} serves every session again`;
        conditions = setCondition(conditions, { type: ConditionType.Progressing, status: 'False', reason, message }, now);
        conditions = setCondition(conditions, { type: ConditionType.Completed, status: 'True', reason, message }, now);
      }
      draft.conditions = [...conditions];
    };
    // The old set goes next: the record moves to the set that survives.
    if (next === 'delete') await store.moveTo(store.record.to, apply);
    else await store.update(apply);
    run.emit({ type: 'step-finished', step, direction, durationMs: run.now() - started });
  }
}

/** Errors after which we must not write at all: someone else may hold the lock or write the record. */
function haltsWrites(run: Run, error: OrchestratorError): boolean {
  return (
    run.signal.aborted ||
    error.code === ErrorCode.LockLost ||
    error.code === ErrorCode.RecordConflict ||
    error.code === ErrorCode.Interrupted
  );
}

const TIMEOUT_CODES: readonly string[] = [ErrorCode.StepTimeout, ErrorCode.OverallTimeout, ErrorCode.CallTimeout];

export function isTimeout(error: ErrorSummary): boolean {
  return TIMEOUT_CODES.includes(error.code);
}

async function onFailure(run: Run, store: RecordStore, outcome: Outcomes, error: OrchestratorError): Promise<RunResult> {
  const failedStep = run.step;
  run.emit({ type: 'error', step: failedStep, error: summarizeError(error) });
  if (haltsWrites(run, error)) return outcome.failed(store.record, failedStep, error, false, null);

  if (store.record.direction === 'forward') {
    const notRolledBack = !canRollBack(store.record)
      ? 'the old set is being deleted (past the point of no return); run the update again to finish'
      : run.settings.noRollback
        ? 'noRollback is set; run the update again to continue, or abort/rollback it'
        : null;
    if (notRolledBack !== null) {
      await recordFailure(run, store, error, notRolledBack);
      return outcome.failed(store.record, failedStep, error, false, null);
    }
    run.setBudget(run.settings.timeouts.rollbackMs, 'rollback budget');
    try {
      await beginRollback(run, store, 'failure', error);
      await runSteps(run, store);
    } catch (raw) {
      const rollbackError = toOrchestratorError(raw, run.step);
      run.emit({ type: 'error', step: run.step, error: summarizeError(rollbackError) });
      if (!haltsWrites(run, rollbackError)) await recordFailure(run, store, rollbackError, 'rollback failed; run again to continue it');
      return outcome.failed(store.record, failedStep, error, true, rollbackError);
    }
    return outcome.concluded(store.record, { error, step: failedStep });
  }

  await recordFailure(run, store, error, 'rollback failed; run again to continue it');
  const cause = outcome.command === 'update' && store.record.failure !== null ? store.record.failure : summarizeError(error);
  return outcome.failed(store.record, failedStep, cause, true, error);
}

/** Best effort: the run is ending anyway, but the record should say why. Gets a small budget of its own. */
async function recordFailure(run: Run, store: RecordStore, error: OrchestratorError, consequence: string): Promise<void> {
  run.setBudget(run.settings.timeouts.callMs * 2, 'recording the failure');
  const now = run.now();
  const reason =
    error.code === ErrorCode.OverallTimeout
      ? Reason.ProgressDeadlineExceeded
      : error.code === ErrorCode.StepTimeout
        ? Reason.StepDeadlineExceeded
        : store.record.direction === 'rollback'
          ? Reason.RollbackFailed
          : Reason.StepFailed;
  try {
    await store.update((draft) => {
      draft.phase = 'Failed';
      // In a rollback keep the failure that caused it; the condition says why the rollback stopped.
      if (draft.direction === 'forward' || draft.failure === null) draft.failure = { ...summarizeError(error), step: draft.step, at: now };
      draft.conditions = [
        ...setCondition(
          draft.conditions,
          { type: ConditionType.Progressing, status: 'False', reason, message: `${error.message}; ${consequence}` },
          now,
        ),
      ];
    });
  } catch (raw) {
    run.emit({ type: 'warning', step: run.step, reason, message: `could not record the failure: ${summarizeError(raw).message}` });
  }
}

/** Builds results; every code is constructed here and nowhere else. */
class Outcomes {
  readonly #run: Run;
  readonly command: Command;

  constructor(run: Run, command: Command) {
    this.#run = run;
    this.command = command;
  }

  base(record: ProgressRecord | null): { command: Command; name: string; updateId: string | null; durationMs: number; record: ProgressRecord | null } {
    return {
      command: this.command,
      name: this.#run.settings.name,
      updateId: record?.id ?? this.#run.events.updateId,
      durationMs: this.#run.now() - this.#run.startedAt,
      record: record === null ? null : structuredClone(record),
    };
  }

  refused(reason: string, message: string): RunResult {
    return { ...this.base(null), code: 'refused', reason, message };
  }

  succeeded(record: ProgressRecord, outcome: 'updated' | 'already-updated' | 'rolled-back' | 'aborted'): RunResult {
    const forward = outcome === 'updated' || outcome === 'already-updated';
    return {
      ...this.base(record),
      code: 'succeeded',
      outcome,
      from: record.from,
      to: record.to,
      image: forward ? record.image : record.fromImage,
      moved: moved(forward ? record.handedOver : record.handedBack),
    };
  }

  failed(
    record: ProgressRecord | null,
    step: RunStep,
    error: OrchestratorError | ErrorSummary,
    rollbackAttempted: boolean,
    rollbackError: OrchestratorError | null,
  ): RunResult {
    // The code follows the error that ended the update; a rollback's own failure is reported beside it.
    const summary = 'transient' in error ? summarizeError(error) : error;
    if (isTimeout(summary)) {
      return {
        ...this.base(record),
        code: 'timed-out',
        step,
        error: summary,
        rolledBack: false,
        rollbackError: rollbackError === null ? null : summarizeError(rollbackError),
      };
    }
    return {
      ...this.base(record),
      code: 'failed',
      step,
      error: summary,
      rollbackAttempted,
      rollbackError: rollbackError === null ? null : summarizeError(rollbackError),
    };
  }

  /**
   * A direction ran to `done`. For the update command a finished rollback is still a failed update: reported as
   * timed-out when a deadline caused it, rolled-back otherwise (the cause is the recorded failure when this run
   * only finished a rollback an earlier run started).
   */
  concluded(record: ProgressRecord, failure?: { error: OrchestratorError; step: RunStep }): RunResult {
    if (record.direction === 'forward') return this.succeeded(record, 'updated');
    const phase = rollbackPhase(record);
    if (this.command !== 'update') return this.succeeded(record, phase === 'Aborted' ? 'aborted' : 'rolled-back');
    const cause: ErrorSummary = failure ? summarizeError(failure.error) : (record.failure ?? { code: ErrorCode.Unexpected, message: 'rolled back' });
    const step = failure?.step ?? record.failure?.step ?? 'handover';
    if (isTimeout(cause)) {
      return { ...this.base(record), code: 'timed-out', step: step as RunStep, error: cause, rolledBack: true, rollbackError: null };
    }
    return {
      ...this.base(record),
      code: 'rolled-back',
      step: step as RunStep,
      error: cause,
      outcome: phase === 'Aborted' ? 'aborted' : 'rolled-back',
    };
  }
}

function moved(entries: Record<string, OrdinalEntry>): MovedOrdinal[] {
  return Object.entries(entries)
    .map(([ordinal, entry]) => movedOrdinal(Number(ordinal), entry))
    .sort((x, y) => x.ordinal - y.ordinal);
}
