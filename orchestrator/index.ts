import { summarizeError, type ErrorSummary } from './errors.ts';
import type { UpdateObserver } from './events.ts';
import { setNames } from './bluegreen/context.ts';
import { runCommand, type RunOptions } from './bluegreen/machine.ts';
import { isTerminal, parseProgress, pickProgress, type LocatedProgress, type ProgressRecord } from './bluegreen/progress.ts';
import type { RunResult } from './bluegreen/result.ts';
import type { ControlSpec, UpdateSpec } from './bluegreen/spec.ts';
import type { LockInfo, Platform, PodInfo, RelayStatus, SetInfo } from './platform/platform.ts';

/**
 * Public surface of the orchestrator. The CLI calls these with a platform (local or Kubernetes) and an observer
 * that renders events; each returns a RunResult whose `code` maps to an exit status and never throws for
 * anything the platform or the spec did (programming errors aside).
 */

/** Update the fleet `spec.name` to `spec.image`, or continue the recorded update to that image. */
export function runUpdate(spec: UpdateSpec, platform: Platform, observer: UpdateObserver, options?: RunOptions): Promise<RunResult> {
  return runCommand('update', spec, platform, observer, options);
}

/** Abort an update before any session moved: delete the new set, unlabel the old pods. */
export function runAbort(spec: ControlSpec, platform: Platform, observer: UpdateObserver, options?: RunOptions): Promise<RunResult> {
  return runCommand('abort', spec, platform, observer, options);
}

/** Roll an update back from wherever it is (before the delete step), handing sessions back to the old pods. */
export function runRollback(spec: ControlSpec, platform: Platform, observer: UpdateObserver, options?: RunOptions): Promise<RunResult> {
  return runCommand('rollback', spec, platform, observer, options);
}

export interface SetStatus {
  set: SetInfo;
  pods: PodInfo[];
  /** Only when asked for with `relays: true`; null for pods whose relay cannot be read. */
  relays: Record<string, RelayStatus | null> | null;
}

export interface UpdateStatus {
  name: string;
  platform: string;
  /** The sets that exist, a before b. */
  sets: SetStatus[];
  /** The record of the update in progress, or of the last one. */
  update: ProgressRecord | null;
  /** The set whose annotation holds `update`. */
  recordSet: string | null;
  inProgress: boolean;
  /** Set when a record annotation could not be read; `update` is then null. */
  recordError: ErrorSummary | null;
  lock: LockInfo | null;
}

/** Read-only view for `relayctl status`: no lock, no writes. */
export async function readStatus(name: string, platform: Platform, options: { relays?: boolean } = {}): Promise<UpdateStatus> {
  const names = setNames(name);
  const sets: SetStatus[] = [];
  const copies: LocatedProgress[] = [];
  let recordError: ErrorSummary | null = null;
  for (const setName of [names.a, names.b]) {
    const set = await platform.getSet(setName);
    if (set === null) continue;
    const pods = [...(await platform.listPods(setName))].sort((x, y) => x.ordinal - y.ordinal);
    let relays: Record<string, RelayStatus | null> | null = null;
    if (options.relays) {
      relays = {};
      for (const pod of pods) relays[pod.name] = pod.mgmtUrl === null ? null : await platform.relay.status(pod).catch(() => null);
    }
    sets.push({ set, pods, relays });
    try {
      const record = parseProgress(set.name, set.annotations);
      if (record !== null) copies.push({ record, set: set.name });
    } catch (error) {
      recordError = summarizeError(error);
    }
  }
  let picked: LocatedProgress | null = null;
  try {
    picked = pickProgress(copies);
  } catch (error) {
    recordError = summarizeError(error);
  }
  return {
    name,
    platform: platform.name,
    sets,
    update: picked?.record ?? null,
    recordSet: picked?.set ?? null,
    inProgress: picked !== null && !isTerminal(picked.record),
    recordError,
    lock: await platform.lock.inspect(name),
  };
}

export type { RunOptions } from './bluegreen/machine.ts';
export type { RunResult, ResultCode } from './bluegreen/result.ts';
export type { UpdateSpec, ControlSpec, Timeouts, RetryPolicy } from './bluegreen/spec.ts';
export { DEFAULT_TIMEOUTS } from './bluegreen/spec.ts';
export type { ProgressRecord, OrdinalEntry, MovedOrdinal, StepName, Direction, ProgressPhase } from './bluegreen/progress.ts';
export { PROGRESS_ANNOTATION, UPDATE_ID_ANNOTATION, FORWARD_STEPS, ROLLBACK_STEPS } from './bluegreen/progress.ts';
export { ROLLBACK_RULES } from './bluegreen/rollback.ts';
export { Reason, ConditionType, type Condition } from './bluegreen/status.ts';
export type { UpdateEvent, UpdateObserver, Command, RunStep } from './events.ts';
export { ErrorCode, OrchestratorError, isOrchestratorError, type ErrorSummary } from './errors.ts';
export { systemClock, ManualClock, type Clock } from './clock.ts';
export type * from './platform/platform.ts';
export { RESTORE_LABEL, RESTORE_LABEL_VALUE, carriesRestoreLabel, restoreForbiddenBecause } from './platform/platform.ts';
