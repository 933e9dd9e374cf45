import { ErrorCode, OrchestratorError, type ErrorSummary } from '../errors.ts';
import { Reason, type Condition } from './status.ts';

/**
 * The progress record: what an update intends and how far it got, stored as a JSON annotation on a set so that a
 * killed relayctl can be run again and continue (or roll back) from the recorded step.
 *
 * Where it lives: on the old ("from") set from the first write until the delete step; the delete step first
 * writes it onto the new ("to") set, then deletes the old set. While both sets carry a record of the same update
 * the one with the higher `seq` wins (a kill between the two writes leaves the older copy behind).
 */
export const PROGRESS_ANNOTATION = 'relayctl.dev/update';
/** Put on the new set at creation, so a rollback never deletes a set this update did not create. */
export const UPDATE_ID_ANNOTATION = 'relayctl.dev/update-id';
export const PROGRESS_VERSION = 1;

/**
 * Forward steps in order. `delete` is the point of no return: once it starts, failures stop the run without
 * rollback (the old set may already be gone), and a rerun finishes it.
 */
export const FORWARD_STEPS = ['mark', 'create', 'handover', 'drain', 'verify', 'delete'] as const;
export const ROLLBACK_STEPS = ['handback', 'drain-back', 'remove', 'unmark'] as const;
export type ForwardStep = (typeof FORWARD_STEPS)[number];
export type RollbackStep = (typeof ROLLBACK_STEPS)[number];
export type StepName = ForwardStep | RollbackStep | 'done';
export type Direction = 'forward' | 'rollback';

/** Phases of the record. Failed: stopped without rollback; a rerun continues in the recorded direction. */
export type ProgressPhase = 'Progressing' | 'Failed' | 'Completed' | 'RolledBack' | 'Aborted';

/** One ordinal's sessions moved: what the run result lists and the ordinal-moved event reports. */
export interface MovedOrdinal {
  ordinal: number;
  /** Pod the sessions left, and pod that took them. */
  source: string;
  target: string;
  sessions: number | null;
  /** Sessions the relay left out of the transfer (their devices handshake again). */
  skipped: number | null;
  bytes: number | null;
  durationMs: number | null;
  pauseMs: number | null;
  /** True when the restore call's answer was lost and the outcome was read back from relay status. */
  inferred: boolean;
}

/** The record's entry for an ordinal (keyed by it): the move, and when it started and ended. */
export interface OrdinalEntry extends Omit<MovedOrdinal, 'ordinal'> {
  /** `restoring` is written before the restore call, so a rerun knows the outcome may be unknown. */
  state: 'restoring' | 'done';
  startedAt: number;
  finishedAt: number | null;
}

export function movedOrdinal(ordinal: number, entry: OrdinalEntry): MovedOrdinal {
  const { state: _state, startedAt: _startedAt, finishedAt: _finishedAt, ...move } = entry;
  return { ordinal, ...move };
}

export interface RecordedFailure extends ErrorSummary {
  step: StepName;
  at: number;
}

export interface ProgressRecord {
  v: typeof PROGRESS_VERSION;
  id: string;
  /** The run currently driving the update (changes when a rerun takes over). */
  owner: string;
  /** Base name: the sets are `<name>-a` and `<name>-b`. */
  name: string;
  from: string;
  to: string;
  fromImage: string;
  image: string;
  replicas: number;
  /** Only ever moves forward -> rollback, never back. */
  direction: Direction;
  /** The step in progress (intent: written before its action runs). */
  step: StepName;
  phase: ProgressPhase;
  /** Incremented on every write. */
  seq: number;
  startedAt: number;
  updatedAt: number;
  /** Keyed by ordinal. */
  handedOver: Record<string, OrdinalEntry>;
  handedBack: Record<string, OrdinalEntry>;
  /** The failure that started the rollback or stopped the run; null while all is well. */
  failure: RecordedFailure | null;
  rollbackRequestedBy: 'failure' | 'abort' | 'rollback' | null;
  conditions: Condition[];
}

export function isTerminal(record: ProgressRecord): boolean {
  return record.phase === 'Completed' || record.phase === 'RolledBack' || record.phase === 'Aborted';
}

export function stepsOf(direction: Direction): readonly StepName[] {
  return direction === 'forward' ? FORWARD_STEPS : ROLLBACK_STEPS;
}

export function nextStep(direction: Direction, step: StepName): StepName {
  const steps = stepsOf(direction);
  const index = steps.indexOf(step);
  if (index < 0) throw new Error(`step ${step} is not a ${direction} step`);
  return steps[index + 1] ?? 'done';
}

/** A forward update may still be rolled back: the old set has not started to go. */
export function canRollBack(record: ProgressRecord): boolean {
  if (record.direction === 'rollback') return true;
  return record.step !== 'delete' && record.step !== 'done';
}

/** Ordinals whose sessions were (or may have been) moved to the new set, per the record. */
export function ordinalsTouched(record: ProgressRecord): number[] {
  return Object.keys(record.handedOver)
    .map(Number)
    .sort((x, y) => x - y);
}

export function serializeProgress(record: ProgressRecord): string {
  return JSON.stringify(record);
}

function corrupt(set: string, message: string): OrchestratorError {
  return new OrchestratorError(ErrorCode.RecordCorrupt, `progress record on ${set}: ${message}`, {
    reason: Reason.RecordCorrupt,
    details: { set },
  });
}

const ALL_STEPS: readonly string[] = [...FORWARD_STEPS, ...ROLLBACK_STEPS, 'done'];
const PHASES: readonly string[] = ['Progressing', 'Failed', 'Completed', 'RolledBack', 'Aborted'];

/** Parses the record annotation of `set`; null when absent. Throws ERR_RECORD_CORRUPT rather than guess. */
export function parseProgress(set: string, annotations: Readonly<Record<string, string>>): ProgressRecord | null {
  const raw = annotations[PROGRESS_ANNOTATION];
  if (raw === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    throw corrupt(set, `not JSON (${(error as Error).message})`);
  }
  if (typeof value !== 'object' || value === null) throw corrupt(set, 'not an object');
  const record = value as Partial<ProgressRecord>;
  if (record.v !== PROGRESS_VERSION) throw corrupt(set, `unknown version ${String(record.v)}`);
  for (const field of ['id', 'owner', 'name', 'from', 'to', 'fromImage', 'image'] as const) {
    if (typeof record[field] !== 'string') throw corrupt(set, `field ${field} missing`);
  }
  for (const field of ['replicas', 'seq', 'startedAt', 'updatedAt'] as const) {
    if (typeof record[field] !== 'number') throw corrupt(set, `field ${field} missing`);
  }
  if (record.direction !== 'forward' && record.direction !== 'rollback') throw corrupt(set, 'bad direction');
  if (typeof record.step !== 'string' || !ALL_STEPS.includes(record.step)) throw corrupt(set, 'bad step');
  if (typeof record.phase !== 'string' || !PHASES.includes(record.phase)) throw corrupt(set, 'bad phase');
  if (typeof record.handedOver !== 'object' || record.handedOver === null) throw corrupt(set, 'bad handedOver');
  if (typeof record.handedBack !== 'object' || record.handedBack === null) throw corrupt(set, 'bad handedBack');
  if (!Array.isArray(record.conditions)) throw corrupt(set, 'bad conditions');
  return record as ProgressRecord;
}

export interface LocatedProgress {
  record: ProgressRecord;
  /** The set whose annotation holds this copy. */
  set: string;
}

/**
 * Picks the record that speaks for an update from the copies found on the two sets: the active one (not
 * terminal) if any, the one with the higher seq when both copies belong to the same update. Two active records of
 * different updates mean someone edited annotations by hand: refuse rather than guess.
 */
export function pickProgress(copies: readonly LocatedProgress[]): LocatedProgress | null {
  const active = copies.filter((copy) => !isTerminal(copy.record));
  const pool = active.length > 0 ? active : copies;
  if (pool.length === 0) return null;
  const ids = new Set(pool.map((copy) => copy.record.id));
  if (active.length > 1 && ids.size > 1) {
    throw new OrchestratorError(
      ErrorCode.RecordConflict,
      `both sets carry an active update record (${[...ids].join(', ')})`,
      { reason: Reason.RecordConflict },
    );
  }
  // Copies of one update: the later write. Terminal records of different updates: the most recent update.
  const newer = (x: LocatedProgress, y: LocatedProgress): boolean =>
    x.record.id === y.record.id ? x.record.seq > y.record.seq : x.record.updatedAt > y.record.updatedAt;
  return pool.reduce((best, copy) => (newer(copy, best) ? copy : best));
}
