import { setTimeout as sleepReal } from 'node:timers/promises';

/**
 * Every wait in the orchestrator goes through a Clock, so tests can run a 30-minute update in milliseconds and
 * deadlines can be checked without real waiting (Argo Rollouts swaps its clock the same way).
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with `signal.reason` as soon as the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => sleepReal(Math.max(0, ms), undefined, signal ? { signal } : undefined).then(
    () => undefined,
    (error: unknown) => {
      // node:timers wraps the abort in its own AbortError; hand back the reason like ManualClock does.
      throw signal?.aborted ? signal.reason : error;
    },
  ),
};

interface PendingTimer {
  at: number;
  order: number;
  resolve: () => void;
  reject: (reason: unknown) => void;
  detach: () => void;
}

export interface ManualClockOptions {
  startMs?: number;
  /**
   * Safety net for tests: auto-advancing further than this past the start rejects every pending sleep, so a wait
   * that never ends fails the test instead of spinning forever.
   */
  limitMs?: number;
}

/**
 * A clock that only moves when told to. `advance(ms)` moves it by hand; `setAutoAdvance(true)` jumps straight to
 * the next pending timer whenever the process has nothing else to do (checked with setImmediate, so all promise
 * continuations run first), which lets whole update runs execute in virtual time.
 */
export class ManualClock implements Clock {
  #now: number;
  readonly #start: number;
  readonly #limitMs: number;
  #timers: PendingTimer[] = [];
  #order = 0;
  #auto = false;
  #tickScheduled = false;

  constructor(options: ManualClockOptions = {}) {
    this.#now = options.startMs ?? Date.UTC(2025, 0, 1);
    this.#start = this.#now;
    this.#limitMs = options.limitMs ?? 7 * 24 * 3600_000;
  }

  now(): number {
    return this.#now;
  }

  get pendingTimers(): number {
    return this.#timers.length;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.#remove(timer);
        reject(signal?.reason);
      };
      const timer: PendingTimer = {
        at: this.#now + Math.max(0, ms),
        order: this.#order++,
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#timers.push(timer);
      this.#scheduleTick();
    });
  }

  /** Moves time forward by `ms`, firing due timers in order and letting their continuations run in between. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      await flushMacrotask();
      const next = this.#earliest();
      if (next === undefined || next.at > target) break;
      this.#now = Math.max(this.#now, next.at);
      this.#fireDue();
    }
    this.#now = target;
    await flushMacrotask();
  }

  setAutoAdvance(enabled: boolean): void {
    this.#auto = enabled;
    this.#scheduleTick();
  }

  #earliest(): PendingTimer | undefined {
    let best: PendingTimer | undefined;
    for (const timer of this.#timers) {
      if (best === undefined || timer.at < best.at || (timer.at === best.at && timer.order < best.order)) best = timer;
    }
    return best;
  }

  #remove(timer: PendingTimer): void {
    const index = this.#timers.indexOf(timer);
    if (index >= 0) this.#timers.splice(index, 1);
  }

  #fireDue(): void {
    const due = this.#timers.filter((timer) => timer.at <= this.#now).sort((x, y) => x.at - y.at || x.order - y.order);
    for (const timer of due) {
      this.#remove(timer);
      timer.detach();
      timer.resolve();
    }
  }

  #scheduleTick(): void {
    if (!this.#auto || this.#tickScheduled || this.#timers.length === 0) return;
    this.#tickScheduled = true;
    // Two turns: continuations that themselves defer with setImmediate still get to register their timers.
    setImmediate(() =>
      setImmediate(() => {
        this.#tickScheduled = false;
        if (!this.#auto) return;
        const next = this.#earliest();
        if (next === undefined) return;
        if (next.at - this.#start > this.#limitMs) {
          const error = new Error(`ManualClock: virtual time limit of ${this.#limitMs} ms exceeded`);
          for (const timer of this.#timers.splice(0)) {
            timer.detach();
            timer.reject(error);
          }
          return;
        }
        this.#now = Math.max(this.#now, next.at);
        this.#fireDue();
        this.#scheduleTick();
      }),
    );
  }
}

function flushMacrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Resolves like `work`, or rejects with `onTimeout()` once `ms` passed on `clock`. The timer is cancelled as soon
 * as `work` settles so no stray timer keeps a process (or an auto-advancing test clock) busy.
 */
export async function withTimeout<T>(
  clock: Clock,
  work: Promise<T>,
  ms: number,
  onTimeout: () => Error,
  signal?: AbortSignal,
): Promise<T> {
  const cancel = new AbortController();
  const onOuterAbort = (): void => cancel.abort(signal?.reason);
  signal?.addEventListener('abort', onOuterAbort, { once: true });
  try {
    return await Promise.race([
      work,
      clock.sleep(ms, cancel.signal).then(
        () => {
          throw onTimeout();
        },
        (reason: unknown) => {
          // Cancelled because `work` settled: never wins the race. Cancelled by the caller: propagate.
          if (signal?.aborted) throw reason;
          return new Promise<never>(() => {});
        },
      ),
    ]);
  } finally {
    signal?.removeEventListener('abort', onOuterAbort);
    cancel.abort();
  }
}
