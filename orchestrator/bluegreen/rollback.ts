import { summarizeError, type OrchestratorError } from '../errors.ts';
import type { ForwardStep, ProgressRecord } from './progress.ts';
import type { Run } from './runtime.ts';
import type { RecordStore } from './store.ts';
import { ConditionType, Reason, setCondition } from './status.ts';

/**
 * Rollback rules, per forward step that was in progress when the update failed or was aborted. A rollback always
 * runs the same four steps (handback, drain-back, remove, unmark); each finds nothing to do when the forward
 * update had not got that far, which is what makes it safe to start from any recorded step and to rerun.
 */
export const ROLLBACK_RULES: Readonly<Record<ForwardStep, string>> = {
  mark: 'unlabel the old pods already marked; no set to remove.',
  create: 'delete the new set if it was created (only if it carries our update id), unlabel the old pods.',
  handover:
    'for each ordinal whose sessions reached (or are reaching) the new pod: give the new pod restore=true, take it ' +
    'from the old pod, restore the old pod from the new one, wait for readiness to flip back; let the new pods ' +
    'drain their stragglers; delete the new set once every ordinal is served by a ready old pod; unlabel.',
  drain: 'as handover: every ordinal is handed back.',
  verify: 'as handover: every ordinal is handed back.',
  delete: 'none: the old set may already be gone. The run stops; running the update again finishes the delete.',
};

/** How a finished rollback is reported: aborted when no session had to be handed back. */
export function rollbackPhase(record: ProgressRecord): 'RolledBack' | 'Aborted' {
  return Object.keys(record.handedBack).length === 0 ? 'Aborted' : 'RolledBack';
}

/**
 * Records the switch to rollback (owner, direction, first rollback step, who asked, the cause) in one write, then
 * says so. From here on the update only ever goes back.
 */
export async function beginRollback(
  run: Run,
  store: RecordStore,
  requestedBy: 'failure' | 'abort' | 'rollback',
  cause: OrchestratorError | null,
): Promise<void> {
  const fromStep = store.record.step;
  const now = run.now();
  const reason =
    requestedBy === 'failure' ? Reason.RollbackStarted : requestedBy === 'abort' ? Reason.AbortRequested : Reason.RollbackRequested;
  await store.update((draft) => {
    // The run that turns the update around owns it from here.
    draft.owner = run.settings.owner;
    draft.direction = 'rollback';
    draft.step = 'handback';
    draft.phase = 'Progressing';
    draft.rollbackRequestedBy = requestedBy;
    if (cause !== null) draft.failure = { ...summarizeError(cause), step: fromStep, at: now };
    draft.conditions = [
      ...setCondition(
        draft.conditions,
        {
          type: ConditionType.Progressing,
          status: 'True',
          reason,
          message: cause === null ? `${requestedBy} requested at step ${fromStep}` : `rolling back from step ${fromStep}: ${cause.message}`,
        },
        now,
      ),
    ];
  });
  run.emit({ type: 'rollback-started', fromStep, requestedBy, cause: cause === null ? null : summarizeError(cause) });
}
