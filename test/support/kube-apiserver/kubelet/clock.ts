/**
 * The kubelet's sense of time. Every duration the kubelet waits (probe periods and initial delays, restart
 * back-off, image pull back-off, grace periods, preStop sleeps) goes through `after`, in kubelet milliseconds:
 *
 * - ScaledClock (default): real time, durations multiplied by `scale` (0.01 turns a 10 s probe period into 100 ms).
 * - ManualClock: time moves only when a test calls `advance`, which runs every timer that falls due, in order.
 *
 * Timestamps in statuses come from `now()` (real time for the scaled clock). Probe timeouts are real time in both:
 * they bound real I/O.
 */
export interface KubeletClock {
  now(): number;
  /** Calls `fn` after `ms` kubelet milliseconds; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void;
}

export class ScaledClock implements KubeletClock {
  private readonly scale: number;

  constructor(scale = 1) {
    if (!(scale > 0)) throw new Error(`timeScale must be a positive number, got ${scale}`);
    this.scale = scale;
  }

  now(): number {
    return Date.now();
  }

  after(ms: number, fn: () => void): () => void {
    const timer = setTimeout(fn, Math.max(0, ms * this.scale));
    return () => clearTimeout(timer);
  }
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

export class ManualClock implements KubeletClock {
  private current: number;
  private seq = 0;
  private timers: Timer[] = [];

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  after(ms: number, fn: () => void): () => void {
    const timer: Timer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Moves time forward by `ms`, running every timer due by then (including ones those timers schedule). */
  advance(ms: number): void {
    const until = this.current + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
    }
    this.current = until;
  }
}
