import type { Gate } from './fleet.ts';

/**
 * A rate cap shared by many callers: `take()` resolves when the caller may go, in arrival order, at most
 * `perSecond` times a second on average. It is the generic cell rate algorithm (a token bucket without tokens):
 * each grant moves a theoretical arrival time on by 1/rate, and a caller may go when that time is not more than
 * `burstMs` ahead of now. One timer serves the whole queue, however many devices wait. A device that stops
 * while waiting simply never uses its turn (the fleet races the wait against its stop signal).
 */
export class Pacer implements Gate {
  readonly #intervalMs: number;
  readonly #burstMs: number;
  /**
   * Turns missed because the event loop was late (a GC pause, a busy core) are made up for, up to this much
   * time's worth: without it every hiccup of the load generator would lower the average rate below the cap.
   */
  readonly #catchUpMs: number;
  readonly #now: () => number;
  /** When the next grant is due if callers came evenly. */
  #due = Number.NEGATIVE_INFINITY;
  #waiters: (() => void)[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(perSecond: number, options: { burstMs?: number; catchUpMs?: number; now?: () => number } = {}) {
    if (!(perSecond > 0) || !Number.isFinite(perSecond)) throw new RangeError(`perSecond: expected a positive number, got ${perSecond}`);
    this.#intervalMs = 1000 / perSecond;
    // A few ms of slack lets one timer tick release several callers: Node's timers are not finer than 1 ms.
    this.#burstMs = options.burstMs ?? Math.max(5, this.#intervalMs);
    this.#catchUpMs = options.catchUpMs ?? 250;
    this.#now = options.now ?? (() => performance.now());
  }

  get waiting(): number {
    return this.#waiters.length - this.#head;
  }

  take(): Promise<void> | undefined {
    if (this.waiting === 0 && this.#grant(this.#now())) return undefined;
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#arm();
    });
  }

  #grant(now: number): boolean {
    if (this.#due > now + this.#burstMs) return false;
    // The first grant starts the schedule: no catch-up credit for the time before anyone asked.
    this.#due = (this.#due === Number.NEGATIVE_INFINITY ? now : Math.max(this.#due, now - this.#catchUpMs)) + this.#intervalMs;
    return true;
  }

  #arm(): void {
    if (this.#timer !== null) return;
    const wait = Math.max(1, this.#due - this.#burstMs - this.#now());
    this.#timer = setTimeout(this.#release, wait);
  }

  readonly #release = (): void => {
    this.#timer = null;
    const now = this.#now();
    while (this.#head < this.#waiters.length && this.#grant(now)) {
      const resolve = this.#waiters[this.#head]!;
      this.#waiters[this.#head++] = noop;
      resolve();
    }
    // Compact now and then rather than shift() per grant (which moves the whole queue).
    if (this.#head > 1024 && this.#head * 2 > this.#waiters.length) {
      this.#waiters = this.#waiters.slice(this.#head);
      this.#head = 0;
    }
    if (this.waiting > 0) this.#arm();
  };
}

function noop(): void {}
