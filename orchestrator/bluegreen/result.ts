import type { ErrorSummary } from '../errors.ts';
import type { Command, RunStep } from '../events.ts';
import type { MovedOrdinal, ProgressRecord } from './progress.ts';

/**
 * What a run ends with. `code` is what the CLI maps to an exit status; each code is a distinct situation:
 *
 * - succeeded:   the command did what it was asked (update done, rollback done, abort done).
 * - timed-out:   a deadline (one step's, or the overall timeout) expired. `rolledBack` says whether the fleet was
 *                brought back to the old set afterwards.
 * - rolled-back: the update failed for another reason and was rolled back: the fleet is on the old set, clean.
 * - failed:      failed and not rolled back (noRollback, past the point of no return, rollback failed, lock lost):
 *                the record keeps the progress; run again to continue, or abort/rollback.
 * - lock-held:   another run holds the update lock; nothing was touched.
 * - refused:     the spec was invalid or preflight said no; nothing was touched.
 */
export type ResultCode = 'succeeded' | 'timed-out' | 'rolled-back' | 'failed' | 'lock-held' | 'refused';

interface ResultBase {
  command: Command;
  name: string;
  updateId: string | null;
  durationMs: number;
  /** The progress record as last written (null when none was written or found). */
  record: ProgressRecord | null;
}

export interface SucceededResult extends ResultBase {
  code: 'succeeded';
  /** already-updated: a rerun found the same update completed and did nothing. */
  outcome: 'updated' | 'already-updated' | 'rolled-back' | 'aborted';
  from: string;
  to: string;
  image: string;
  moved: MovedOrdinal[];
}

export interface TimedOutResult extends ResultBase {
  code: 'timed-out';
  /** The step that failed or timed out. */
  step: RunStep;
  error: ErrorSummary;
  rolledBack: boolean;
  /** Why the rollback did not happen or did not finish; null when it completed. */
  rollbackError: ErrorSummary | null;
}

export interface RolledBackResult extends ResultBase {
  code: 'rolled-back';
  /** The step that failed or timed out. */
  step: RunStep;
  error: ErrorSummary;
  /** aborted: nothing had been handed over, so only the new set and the labels had to go. */
  outcome: 'rolled-back' | 'aborted';
}

export interface FailedResult extends ResultBase {
  code: 'failed';
  /** The step that failed or timed out. */
  step: RunStep;
  error: ErrorSummary;
  rollbackAttempted: boolean;
  rollbackError: ErrorSummary | null;
}

export interface LockHeldResult extends ResultBase {
  code: 'lock-held';
  holder: string;
  expiresAt: number;
}

export interface RefusedResult extends ResultBase {
  code: 'refused';
  reason: string;
  message: string;
}

export type RunResult =
  | SucceededResult
  | TimedOutResult
  | RolledBackResult
  | FailedResult
  | LockHeldResult
  | RefusedResult;
