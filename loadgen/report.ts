/**
 * What a benchmark prints: intervals (sums of consecutive load samples), the interval line in the format of
 * Californium's benchmark client (so figures compare line by line), the worst window of a run, and the summary.
 */
import { mergeCounters, zeroCounters, type FleetCounters } from './counters.ts';
import { LatencyHistogram, type LatencySummary } from './histogram.ts';
import type { LoadSample } from './generator.ts';

export interface Interval {
  /** Offsets from the start of the measured run, ms. */
  startMs: number;
  endMs: number;
  counters: FleetCounters;
  latency: LatencyHistogram;
  /** Devices with a session at the end of the interval. */
  clients: number;
  loopDelayMaxMs: number;
}

/** Adds up consecutive samples; `startAt` is when the first of them began (performance.now()), `origin` the run's start. */
export function intervalOf(samples: readonly LoadSample[], startAt: number, origin: number): Interval {
  let counters = zeroCounters();
  const latency = new LatencyHistogram();
  for (const sample of samples) {
    counters = mergeCounters(counters, sample.delta);
    latency.add(sample.latency);
  }
  counters.latencyMaxMs = latency.maxMs() ?? 0;
  const last = samples.at(-1);
  return {
    startMs: startAt - origin,
    endMs: (last?.at ?? startAt) - origin,
    counters,
    latency,
    clients: last?.clients ?? 0,
    loopDelayMaxMs: Math.max(0, ...samples.map((sample) => sample.loopDelayMaxMs)),
  };
}

/** Joins adjacent intervals into one. */
export function joinIntervals(parts: readonly Interval[]): Interval {
  let counters = zeroCounters();
  const latency = new LatencyHistogram();
  for (const part of parts) {
    counters = mergeCounters(counters, part.counters);
    latency.add(part.latency);
  }
  counters.latencyMaxMs = latency.maxMs() ?? 0;
  return {
    startMs: parts[0]?.startMs ?? 0,
    endMs: parts.at(-1)?.endMs ?? 0,
    counters,
    latency,
    clients: parts.at(-1)?.clients ?? 0,
    loopDelayMaxMs: Math.max(0, ...parts.map((part) => part.loopDelayMaxMs)),
  };
}

export function durationSeconds(interval: Pick<Interval, 'startMs' | 'endMs'>): number {
  return Math.max(0.001, (interval.endMs - interval.startMs) / 1000);
}

/** Answered requests per second. */
export function answeredRate(interval: Interval): number {
  return interval.counters.answered / durationSeconds(interval);
}

/**
 * `part` as a percentage of the requests answered, as Californium's client reports retransmissions and errors.
 * Null when nothing was answered but something went wrong (no finite share); 0 when nothing happened at all.
 */
export function shareOfAnswered(part: number, counters: FleetCounters): number | null {
  if (counters.answered > 0) return (100 * part) / counters.answered;
  return part === 0 ? 0 : null;
}

export function formatShare(share: number | null): string {
  return share === null ? 'n/a' : `${share.toFixed(2)}%`;
}

/**
 * `N requests (R reqs/s, n retransmissions (x%), e transmission errors (y%), h handshakes, C clients)`:
 * N answered requests, percentages of N (Californium's convention), h completed handshakes, C devices with a
 * session at the end of the interval.
 */
export function intervalLine(interval: Interval): string {
  const { counters } = interval;
  const rate = Math.round(answeredRate(interval));
  return `${counters.answered} requests (${rate} reqs/s, ${counters.retransmissions} retransmissions (${formatShare(shareOfAnswered(counters.retransmissions, counters))}), ` +
    `${counters.transmissionErrors} transmission errors (${formatShare(shareOfAnswered(counters.transmissionErrors, counters))}), ` +
    `${counters.handshakes} handshakes, ${interval.clients} clients)`;
}

/** Parses an interval line back (tests, and anyone post-processing stderr). */
export function parseIntervalLine(line: string): { requests: number; rate: number; retransmissions: number; transmissionErrors: number; handshakes: number; clients: number } | null {
  const match = /(\d+) requests \((\d+) reqs\/s, (\d+) retransmissions \((?:[\d.]+%|n\/a)\), (\d+) transmission errors \((?:[\d.]+%|n\/a)\), (\d+) handshakes, (\d+) clients\)/.exec(line);
  if (match === null) return null;
  const [requests, rate, retransmissions, transmissionErrors, handshakes, clients] = match.slice(1).map(Number) as [number, number, number, number, number, number];
  return { requests, rate, retransmissions, transmissionErrors, handshakes, clients };
}

/** How bad a window was: retransmissions and errors per answered request; a window with trouble and no answer is worst. */
function badness(interval: Interval): number {
  const trouble = interval.counters.retransmissions + interval.counters.transmissionErrors;
  if (interval.counters.answered === 0) return trouble === 0 ? 0 : Number.POSITIVE_INFINITY;
  return trouble / interval.counters.answered;
}

/**
 * The worst run of `span` consecutive ticks (1 s ticks: span 10 is the worst 10 s window): the most
 * retransmissions and errors per answered request, and among equals the fewest answers.
 */
export function worstWindow(ticks: readonly Interval[], span: number): Interval | null {
  if (ticks.length === 0) return null;
  const width = Math.min(span, ticks.length);
  let worst: Interval | null = null;
  for (let start = 0; start + width <= ticks.length; start++) {
    const window = joinIntervals(ticks.slice(start, start + width));
    if (worst === null) {
      worst = window;
      continue;
    }
    const [a, b] = [badness(window), badness(worst)];
    const trouble = (interval: Interval): number => interval.counters.retransmissions + interval.counters.transmissionErrors;
    // Among windows without answers, the one with the most trouble; otherwise the fewer answers.
    const tie = a === Number.POSITIVE_INFINITY ? trouble(window) > trouble(worst) : answeredRate(window) < answeredRate(worst);
    if (a > b || (a === b && tie)) worst = window;
  }
  return worst;
}

/** The run of `span` consecutive ticks with the fewest answers per second. */
export function slowestWindow(ticks: readonly Interval[], span: number): Interval | null {
  if (ticks.length === 0) return null;
  const width = Math.min(span, ticks.length);
  let slowest: Interval | null = null;
  for (let start = 0; start + width <= ticks.length; start++) {
    const window = joinIntervals(ticks.slice(start, start + width));
    if (slowest === null || answeredRate(window) < answeredRate(slowest)) slowest = window;
  }
  return slowest;
}

/** A window in one line: `5,012 reqs/s, 0.00% retransmissions (0), 0 transmission errors, at 12-13 s`. */
export function windowLine(window: Interval | null): string {
  if (window === null) return 'no data';
  const { counters } = window;
  const n = (value: number): string => value.toLocaleString('en-US');
  const share = shareOfAnswered(counters.retransmissions, counters);
  return `${n(Math.round(answeredRate(window)))} reqs/s answered, ${share === null ? `no answer and ${n(counters.retransmissions)} retransmissions` : `${formatShare(share)} retransmissions (${n(counters.retransmissions)})`}, ` +
    `${n(counters.transmissionErrors)} transmission errors, ${n(counters.handshakes)} handshakes (at ${(window.startMs / 1000).toFixed(0)}-${(window.endMs / 1000).toFixed(0)} s)`;
}

export function latencyLine(summary: LatencySummary): string {
  if (summary.count === 0) return 'no answers';
  const ms = (value: number | null): string => (value === null ? '?' : value < 10 ? `${value.toFixed(2)} ms` : value < 1000 ? `${value.toFixed(1)} ms` : `${(value / 1000).toFixed(2)} s`);
  return `p50 ${ms(summary.p50Ms)}, p90 ${ms(summary.p90Ms)}, p99 ${ms(summary.p99Ms)}, max ${ms(summary.maxMs)} (${summary.count.toLocaleString('en-US')} round trips)`;
}

/** The counts of a span as JSON, with the derived figures a reader would otherwise recompute (Californium's names). */
export function countsJson(counters: FleetCounters, durationMs: number) {
  return {
    requests: counters.answered,
    reqsPerSecond: Math.round(counters.answered / durationSeconds({ startMs: 0, endMs: durationMs })),
    sent: counters.requests,
    retransmissions: counters.retransmissions,
    retransmissionPercent: shareOfAnswered(counters.retransmissions, counters),
    transmissionErrors: counters.transmissionErrors,
    transmissionErrorPercent: shareOfAnswered(counters.transmissionErrors, counters),
    handshakes: counters.handshakes,
  };
}

/** An interval as JSON. */
export function intervalJson(interval: Interval): Record<string, unknown> {
  return {
    startMs: Math.round(interval.startMs),
    durationMs: Math.round(interval.endMs - interval.startMs),
    ...countsJson(interval.counters, interval.endMs - interval.startMs),
    clients: interval.clients,
    latency: interval.latency.summary(),
  };
}
