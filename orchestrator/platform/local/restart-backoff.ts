/**
 * The kubelet's restart back-off for a relay whose process exited (CrashLoopBackOff), as client-go's
 * flowcontrol.Backoff keeps it per container: the first exit is restarted at once; an exit within the current
 * delay of the last restart waits out that delay, which doubles on every restart up to the cap; an entry not
 * touched for twice the cap (10 min by default: the relay ran that long) starts over. Pure: times are passed in.
 */

export interface RestartBackoffTimings {
  /** First delay. Kubernetes: 10 s. */
  initialMs: number;
  /** Cap of the doubling; an entry idle for twice this long is forgotten. Kubernetes: 5 min. */
  maxMs: number;
}

export const KUBELET_RESTART_BACKOFF: Readonly<RestartBackoffTimings> = Object.freeze({ initialMs: 10_000, maxMs: 300_000 });

/** One pod's entry (kept in its record, so a restarted service process goes on where the last one was). */
export interface RestartBackoff {
  delayMs: number;
  /** When the relay was last started again. */
  lastUpdate: number;
}

/** The kubelet's timings multiplied by `factor` (tests run them in milliseconds). */
export function scaledRestartBackoff(factor: number): RestartBackoffTimings {
  if (!Number.isFinite(factor) || factor <= 0) throw new RangeError(`restart back-off scale must be a positive number, got ${factor}`);
  return { initialMs: KUBELET_RESTART_BACKOFF.initialMs * factor, maxMs: KUBELET_RESTART_BACKOFF.maxMs * factor };
}

function forgotten(entry: RestartBackoff, now: number, timings: RestartBackoffTimings): boolean {
  return now - entry.lastUpdate > 2 * timings.maxMs;
}

/** The entry after a restart at `now`: the initial delay the first time (or after a quiet spell), else doubled. */
export function nextRestartBackoff(entry: RestartBackoff | null, now: number, timings: RestartBackoffTimings): RestartBackoff {
  if (entry === null || forgotten(entry, now, timings)) return { delayMs: timings.initialMs, lastUpdate: now };
  return { delayMs: Math.min(entry.delayMs * 2, timings.maxMs), lastUpdate: now };
}

/**
 * When a relay that exited at `now` may be started again: `now` itself, or the end of the current delay when it
 * exited within it.
 */
export function restartAllowedAt(entry: RestartBackoff | null, now: number, timings: RestartBackoffTimings): number {
  if (entry === null || forgotten(entry, now, timings)) return now;
  return Math.max(now, entry.lastUpdate + entry.delayMs);
}
