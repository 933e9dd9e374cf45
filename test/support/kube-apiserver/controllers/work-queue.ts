/**
 * A controller's work queue: keys added (deduplicated while waiting) are reconciled one at a time, outside the
 * store's event fan-out (a controller writing from inside a store listener would deliver its event to the
 * remaining listeners before the event that caused it). A reconcile that throws is retried with a doubling
 * delay (10 ms to 1 s), as client-go's rate-limited queue does; the error is kept for inspection.
 */
export class WorkQueue {
  private readonly name: string;
  private readonly reconcile: (key: string) => void | Promise<void>;
  private readonly pending = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private scheduled = false;
  private running = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  /** The last errors, newest last (bounded). */
  readonly errors: { key: string; error: unknown }[] = [];

  constructor(name: string, reconcile: (key: string) => void | Promise<void>) {
    this.name = name;
    this.reconcile = reconcile;
  }

  add(key: string): void {
    if (this.stopped) return;
    this.pending.add(key);
    this.schedule();
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.add(key);
    }, delayMs);
    this.timers.add(timer);
  }

  stop(): void {
    this.stopped = true;
    this.pending.clear();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.wakeIdle();
  }

  /** Resolves when nothing is pending or running (delayed retries aside). */
  idle(): Promise<void> {
    if (!this.running && this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (!this.stopped && this.pending.size > 0) {
      const key = this.pending.values().next().value!;
      this.pending.delete(key);
      try {
        await this.reconcile(key);
        this.failures.delete(key);
      } catch (error) {
        const count = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, count);
        this.errors.push({ key: `${this.name}/${key}`, error });
        if (this.errors.length > 100) this.errors.shift();
        this.addAfter(key, Math.min(1000, 10 * 2 ** (count - 1)));
      }
    }
    this.running = false;
    if (this.pending.size > 0 && !this.stopped) this.schedule();
    else this.wakeIdle();
  }
}
