import type { ErrorSummary } from './errors.ts';
import type { Direction, MovedOrdinal, StepName } from './bluegreen/progress.ts';
import type { Condition } from './bluegreen/status.ts';
import type { PodPhase, RelayState } from './platform/platform.ts';
import type { RunResult } from './bluegreen/result.ts';

/**
 * Typed progress events. The CLI renders them (a line per change, or an in-place view), tests assert on them.
 * Events that report recorded progress (step-finished, ordinal-moved, condition) are emitted only after the
 * progress record write succeeded, so what the user saw is what a rerun will find.
 */

export type Command = 'update' | 'abort' | 'rollback';

/** Steps of a run: the recorded steps plus the unrecorded ones around them. */
export type RunStep = 'preflight' | 'lock' | Exclude<StepName, 'done'> | 'release';

interface EventBase {
  /** Orchestrator clock, ms since the epoch. */
  at: number;
  /** Null until an update record exists (preflight, lock). */
  updateId: string | null;
}

export interface RunStartedEvent extends EventBase {
  type: 'run-started';
  command: Command;
  name: string;
  owner: string;
  platform: string;
}

export interface RunResumedEvent extends EventBase {
  type: 'run-resumed';
  step: StepName;
  direction: Direction;
  /** Owner recorded by the run that was interrupted. */
  previousOwner: string;
}

export interface StepStartedEvent extends EventBase {
  type: 'step-started';
  step: RunStep;
  direction: Direction;
}

export interface StepFinishedEvent extends EventBase {
  type: 'step-finished';
  step: RunStep;
  direction: Direction;
  durationMs: number;
}

/** Emitted when what a step waits for changes, not on every poll. */
export interface WaitingEvent extends EventBase {
  type: 'waiting';
  step: RunStep;
  ordinal: number | null;
  reason: string;
  message: string;
}

/** A pod's observed state changed (first sighting included). */
export interface PodChangedEvent extends EventBase {
  type: 'pod-changed';
  pod: string;
  set: string;
  ordinal: number;
  phase: PodPhase | 'Gone';
  ready: boolean;
  relayState: RelayState | null;
  sessions: number | null;
}

/** One ordinal's sessions moved: forward (old -> new) or rollback (new -> old). */
export interface OrdinalMovedEvent extends EventBase, MovedOrdinal {
  type: 'ordinal-moved';
  direction: Direction;
}

export interface LabelsChangedEvent extends EventBase {
  type: 'labels-changed';
  pod: string;
  labels: Record<string, string | null>;
  reason: string;
}

export interface DrainProgressEvent extends EventBase {
  type: 'drain-progress';
  pod: string;
  forwardedDatagrams: number;
  quietForMs: number;
}

export interface RetryEvent extends EventBase {
  type: 'retry';
  step: RunStep;
  operation: string;
  attempt: number;
  delayMs: number;
  error: ErrorSummary;
}

export interface ConditionEvent extends EventBase {
  type: 'condition';
  condition: Condition;
}

export interface WarningEvent extends EventBase {
  type: 'warning';
  step: RunStep;
  reason: string;
  message: string;
}

export interface ErrorEvent extends EventBase {
  type: 'error';
  step: RunStep;
  error: ErrorSummary;
}

export interface RollbackStartedEvent extends EventBase {
  type: 'rollback-started';
  /** The forward step that was in progress. */
  fromStep: StepName;
  requestedBy: 'failure' | 'abort' | 'rollback';
  cause: ErrorSummary | null;
}

export interface RunFinishedEvent extends EventBase {
  type: 'run-finished';
  result: RunResult;
}

export type UpdateEvent =
  | RunStartedEvent
  | RunResumedEvent
  | StepStartedEvent
  | StepFinishedEvent
  | WaitingEvent
  | PodChangedEvent
  | OrdinalMovedEvent
  | LabelsChangedEvent
  | DrainProgressEvent
  | RetryEvent
  | ConditionEvent
  | WarningEvent
  | ErrorEvent
  | RollbackStartedEvent
  | RunFinishedEvent;

export type UpdateObserver = (event: UpdateEvent) => void;

// Distributes Omit over the union so each member keeps its own fields.
type WithoutBase<T> = T extends unknown ? Omit<T, 'at' | 'updateId'> : never;
export type EventInput = WithoutBase<UpdateEvent>;

/**
 * Stamps events and shields the run from its observer: a renderer that throws must not stop an update halfway.
 * The first such failure of a run is reported as a process warning, later ones are counted silently.
 */
export class EventSink {
  readonly #observer: UpdateObserver;
  readonly #now: () => number;
  updateId: string | null = null;
  #observerFailures = 0;

  constructor(observer: UpdateObserver, now: () => number) {
    this.#observer = observer;
    this.#now = now;
  }

  get observerFailures(): number {
    return this.#observerFailures;
  }

  emit(event: EventInput): void {
    const stamped = { ...event, at: this.#now(), updateId: this.updateId } as UpdateEvent;
    try {
      this.#observer(stamped);
    } catch (error) {
      if (this.#observerFailures++ === 0) {
        process.emitWarning(`relayctl: the progress observer threw on a ${stamped.type} event; the update goes on`, {
          code: 'RELAYCTL_OBSERVER_FAILED',
          detail: error instanceof Error ? error.stack ?? error.message : String(error),
        });
      }
    }
  }
}
