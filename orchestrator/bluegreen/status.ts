/**
 * Conditions and reasons, in the manner of Argo Rollouts' utils/conditions: a condition has a type, a status, a
 * reason from the constants below and a human message; its transition time only moves when the status changes.
 */

export const Reason = {
  // Progress
  UpdateStarted: 'UpdateStarted',
  UpdateResumed: 'UpdateResumed',
  StepStarted: 'StepStarted',
  PodsMarked: 'PodsMarked',
  NewSetCreated: 'NewSetCreated',
  OrdinalHandedOver: 'OrdinalHandedOver',
  DrainQuiet: 'DrainQuiet',
  DrainTimedOut: 'DrainTimedOut',
  SessionsVerified: 'SessionsVerified',
  OldSetDeleted: 'OldSetDeleted',
  UpdateCompleted: 'UpdateCompleted',
  AlreadyCompleted: 'AlreadyCompleted',

  // Rollback
  RollbackStarted: 'RollbackStarted',
  AbortRequested: 'AbortRequested',
  RollbackRequested: 'RollbackRequested',
  OrdinalHandedBack: 'OrdinalHandedBack',
  NewSetRemoved: 'NewSetRemoved',
  PodsUnmarked: 'PodsUnmarked',
  RolledBack: 'RolledBack',
  Aborted: 'Aborted',
  RollbackFailed: 'RollbackFailed',

  // Why a run stopped
  StepFailed: 'StepFailed',
  StepDeadlineExceeded: 'StepDeadlineExceeded',
  ProgressDeadlineExceeded: 'ProgressDeadlineExceeded',
  LockLost: 'LockLost',
  Interrupted: 'Interrupted',
  RollbackDisabled: 'RollbackDisabled',
  PastPointOfNoReturn: 'PastPointOfNoReturn',

  // Why a step is waiting (not an error until its deadline passes)
  PodNotRunning: 'PodNotRunning',
  RelayUnreachable: 'RelayUnreachable',
  RestoreInProgress: 'RestoreInProgress',
  ReadinessPending: 'ReadinessPending',
  TargetNotAwaitingRestore: 'TargetNotAwaitingRestore',
  SessionsUnplaced: 'SessionsUnplaced',
  StragglersForwarded: 'StragglersForwarded',
  PodsTerminating: 'PodsTerminating',
  /** An action took, but the platform does not show its effect yet (caches, finalizers): repeat it politely. */
  ActionPending: 'ActionPending',
  RestoreRetrying: 'RestoreRetrying',

  // Guards and label reconciliation
  DoubleNotMarked: 'DoubleNotMarked',
  TargetMarked: 'TargetMarked',
  RestoreAttemptsExhausted: 'RestoreAttemptsExhausted',
  OrdinalNotOnNewSet: 'OrdinalNotOnNewSet',
  NewSetServesSessions: 'NewSetServesSessions',
  SetNotOurs: 'SetNotOurs',
  OldPodMissing: 'OldPodMissing',
  ReplicasMismatch: 'ReplicasMismatch',

  // Refusals before anything is touched
  InvalidSpec: 'InvalidSpec',
  NoActiveSet: 'NoActiveSet',
  BothSetsExist: 'BothSetsExist',
  PodsNotReady: 'PodsNotReady',
  RelaysNotServing: 'RelaysNotServing',
  ImageUnchanged: 'ImageUnchanged',
  UpdateInProgress: 'UpdateInProgress',
  RollbackInProgress: 'RollbackInProgress',
  NoUpdateInProgress: 'NoUpdateInProgress',
  HandoverStarted: 'HandoverStarted',
  RecordCorrupt: 'RecordCorrupt',
  RecordConflict: 'RecordConflict',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export const ConditionType = {
  /** True while steps advance; False with the reason the run stopped. */
  Progressing: 'Progressing',
  /** True once the update ended: reason UpdateCompleted, RolledBack or Aborted. */
  Completed: 'Completed',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  reason: Reason;
  message: string;
  /** When status last changed. */
  lastTransitionTime: number;
  /** When reason or message last changed. */
  lastUpdateTime: number;
}

/**
 * Returns the conditions with `next` applied (a new array; the input is left alone). Keeps lastTransitionTime
 * while the status is unchanged; returns the same array when nothing changed so callers can skip the write.
 */
export function setCondition(
  conditions: readonly Condition[],
  next: { type: ConditionType; status: ConditionStatus; reason: Reason; message: string },
  now: number,
): readonly Condition[] {
  const current = conditions.find((condition) => condition.type === next.type);
  if (current && current.status === next.status && current.reason === next.reason && current.message === next.message) {
    return conditions;
  }
  const updated: Condition = {
    ...next,
    lastTransitionTime: current && current.status === next.status ? current.lastTransitionTime : now,
    lastUpdateTime: now,
  };
  return [...conditions.filter((condition) => condition.type !== next.type), updated];
}

export function getCondition(conditions: readonly Condition[], type: ConditionType): Condition | undefined {
  return conditions.find((condition) => condition.type === type);
}
