import { withTimeout, type Clock } from '../clock.ts';
import { ErrorCode, OrchestratorError, summarizeError, toOrchestratorError } from '../errors.ts';
import type { EventInput, EventSink, RunStep } from '../events.ts';
import type { PodInfo, Platform, RelayStatus } from '../platform/platform.ts';
import type { Direction } from './progress.ts';
import type { Settings } from './spec.ts';
import { Reason } from './status.ts';

/** A point in time after which waiting is an error of the given kind. */
export interface Deadline {
  at: number;
  /** Builds the error thrown when the deadline passes. */
  expired: () => OrchestratorError;
}

export interface CallOptions {
  /** Retry transient failures (platform unavailable, call timeout). Only for calls safe to repeat. */
  retry: boolean;
  /** Overrides the per-call timeout (restore calls take longer than reads). */
  timeoutMs?: number;
}

/**
 * Everything one invocation shares: the platform, the clock, the settings, the event sink, the deadline of the
 * current direction, and a stop signal that fires when the lease is lost or the caller interrupts. Steps receive
 * this and nothing else.
 */
export class Run {
  readonly platform: Platform;
  readonly clock: Clock;
  readonly settings: Settings;
  readonly events: EventSink;
  readonly startedAt: number;
  step: RunStep = 'preflight';
  direction: Direction = 'forward';
  deadline: Deadline;
  readonly #stop = new AbortController();
  readonly #podSeen = new Map<string, string>();
  readonly #waitingSeen = new Map<string, string>();

  constructor(platform: Platform, clock: Clock, settings: Settings, events: EventSink, signal?: AbortSignal) {
    this.platform = platform;
    this.clock = clock;
    this.settings = settings;
    this.events = events;
    this.startedAt = clock.now();
    this.deadline = overallDeadline(this.startedAt + settings.timeouts.overallMs, 'overall timeout');
    if (signal) {
      const onAbort = (): void =>
        this.stopWith(new OrchestratorError(ErrorCode.Interrupted, 'interrupted by the caller', { reason: Reason.Interrupted }));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  }

  /** Aborted once the run must stop writing (lease lost, caller interrupt); the reason is an OrchestratorError. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  stopWith(error: OrchestratorError): void {
    if (!this.#stop.signal.aborted) this.#stop.abort(error);
  }

  throwIfStopped(): void {
    if (this.#stop.signal.aborted) throw this.#stop.signal.reason;
  }

  now(): number {
    return this.clock.now();
  }

  /** Gives the current direction a new budget starting now (a rollback gets its own). */
  setBudget(ms: number, label: string): void {
    this.deadline = overallDeadline(this.now() + ms, label);
  }

  remainingMs(): number {
    return this.deadline.at - this.now();
  }

  checkDeadline(): void {
    this.throwIfStopped();
    if (this.now() >= this.deadline.at) throw this.deadline.expired();
  }

  emit(event: EventInput): void {
    this.events.emit(event);
  }

  /**
   * Sleeps up to `ms`, never past the run's deadline, and wakes early when the run stops or `signal` aborts.
   * Throws the deadline error when the deadline is reached.
   */
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.checkDeadline();
    const signals = signal ? AbortSignal.any([this.#stop.signal, signal]) : this.#stop.signal;
    await this.clock.sleep(Math.max(0, Math.min(ms, this.remainingMs())), signals);
    this.checkDeadline();
  }

  /**
   * One platform or relay call under the call timeout (or the run deadline if sooner), retrying transient
   * failures with exponential backoff when `retry` is set. Every retry is reported as an event.
   */
  async call<T>(operation: string, fn: () => Promise<T>, options: CallOptions): Promise<T> {
    const policy = this.settings.retry;
    for (let attempt = 1; ; attempt++) {
      this.checkDeadline();
      const limit = options.timeoutMs ?? this.settings.timeouts.callMs;
      const remaining = this.remainingMs();
      const deadlineFirst = remaining < limit;
      try {
        return await withTimeout(
          this.clock,
          Promise.resolve().then(fn),
          deadlineFirst ? remaining : limit,
          () =>
            deadlineFirst
              ? this.deadline.expired()
              : new OrchestratorError(ErrorCode.CallTimeout, `${operation}: no answer within ${limit} ms`, {
                  transient: true,
                  details: { operation, timeoutMs: limit },
                }),
          this.#stop.signal,
        );
      } catch (raw) {
        const error = toOrchestratorError(raw, operation);
        if (this.#stop.signal.aborted) throw this.#stop.signal.reason;
        const retryable = options.retry && error.transient && error.code !== ErrorCode.Conflict;
        if (!retryable || attempt >= policy.attempts) throw error;
        const delayMs = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
        this.emit({ type: 'retry', step: this.step, operation, attempt, delayMs, error: summarizeError(error) });
        await this.sleep(delayMs);
      }
    }
  }

  /** Emits pod-changed when what we know of a pod differs from the last sighting. */
  notePod(pod: PodInfo, relay: RelayStatus | null): void {
    const key = `${pod.phase}|${pod.ready}|${relay?.state ?? '-'}|${relay?.sessions ?? '-'}`;
    if (this.#podSeen.get(pod.name) === key) return;
    this.#podSeen.set(pod.name, key);
    this.emit({
      type: 'pod-changed',
      pod: pod.name,
      set: pod.set,
      ordinal: pod.ordinal,
      phase: pod.phase,
      ready: pod.ready,
      relayState: relay?.state ?? null,
      sessions: relay?.sessions ?? null,
    });
  }

  notePodGone(name: string, set: string, ordinal: number): void {
    if (this.#podSeen.get(name) === 'Gone' || !this.#podSeen.has(name)) return;
    this.#podSeen.set(name, 'Gone');
    this.emit({ type: 'pod-changed', pod: name, set, ordinal, phase: 'Gone', ready: false, relayState: null, sessions: null });
  }

  /** Emits waiting when the reason a step (or one ordinal) waits changes; silent while it stays the same. */
  noteWaiting(ordinal: number | null, reason: string, message: string): void {
    const key = `${this.step}/${ordinal ?? '-'}`;
    const value = `${reason}|${message}`;
    if (this.#waitingSeen.get(key) === value) return;
    this.#waitingSeen.set(key, value);
    this.emit({ type: 'waiting', step: this.step, ordinal, reason, message });
  }
}

export function overallDeadline(at: number, label: string): Deadline {
  return {
    at,
    expired: () =>
      new OrchestratorError(ErrorCode.OverallTimeout, `${label} of the run expired`, {
        reason: Reason.ProgressDeadlineExceeded,
        details: { deadline: at },
      }),
  };
}

/**
 * Tracks how long each kind of wait has lasted, so a step can give up with the reason it was waiting for.
 * A kind's clock starts at its first wait and restarts only when reset (e.g. after each restore attempt).
 */
export class WaitClock<Kind extends string> {
  readonly #run: Run;
  readonly #limits: Record<Kind, number>;
  readonly #since = new Map<Kind, number>();

  constructor(run: Run, limits: Record<Kind, number>) {
    this.#run = run;
    this.#limits = limits;
  }

  reset(kind: Kind): void {
    this.#since.delete(kind);
  }

  /** Waits one poll interval (less when the deadline is closer); throws ERR_STEP_TIMEOUT once it has passed. */
  async wait(kind: Kind, ordinal: number | null, reason: string, message: string, signal?: AbortSignal): Promise<void> {
    const run = this.#run;
    const now = run.now();
    const since = this.#since.get(kind) ?? now;
    this.#since.set(kind, since);
    run.noteWaiting(ordinal, reason, message);
    const limit = this.#limits[kind];
    const left = since + limit - now;
    if (left <= 0) {
      throw new OrchestratorError(
        ErrorCode.StepTimeout,
        `${run.step}${ordinal === null ? '' : ` ordinal ${ordinal}`}: waited ${limit} ms: ${message}`,
        { reason, details: { step: run.step, ordinal, waitedFor: reason, timeoutMs: limit } },
      );
    }
    await run.sleep(Math.min(run.settings.pollIntervalMs, left), signal);
  }
}
