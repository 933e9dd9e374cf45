import { describe, expect, test } from 'vitest';
import { diffCounters, mergeCounters, zeroCounters, type FleetCounters } from '../../loadgen/counters.ts';
import type { LoadSample } from '../../loadgen/generator.ts';
import { LatencyHistogram } from '../../loadgen/histogram.ts';
import { intervalLine, intervalOf, joinIntervals, parseIntervalLine, worstWindow, type Interval } from '../../loadgen/report.ts';

/** What the load generator adds up and prints: counters, intervals, the interval line, the worst window. */

function counters(values: Partial<FleetCounters>): FleetCounters {
  return { ...zeroCounters(), ...values };
}

function sample(at: number, delta: Partial<FleetCounters>, latenciesMs: number[] = [], clients = 10): LoadSample {
  const latency = new LatencyHistogram();
  for (const ms of latenciesMs) latency.recordMs(ms);
  return { at, delta: counters(delta), totals: counters(delta), latency, clients, inFlight: 0, loopDelayMaxMs: 1, loopDelayP99Ms: 1, utilization: [0.1] };
}

function tick(startMs: number, values: Partial<FleetCounters>): Interval {
  return { startMs, endMs: startMs + 1000, counters: counters(values), latency: new LatencyHistogram(), clients: 10, loopDelayMaxMs: 0 };
}

describe('counters and intervals', () => {
  test('samples add up into an interval; the slowest answer is the interval\'s own', () => {
    const interval = intervalOf([
      sample(2000, { requests: 100, answered: 98, retransmissions: 3, handshakes: 1 }, [1, 2, 40]),
      sample(3000, { requests: 120, answered: 119, transmissionErrors: 1 }, [5, 900], 11),
    ], 1000, 0);
    expect(interval).toMatchObject({ startMs: 1000, endMs: 3000, clients: 11 });
    expect(interval.counters).toMatchObject({ requests: 220, answered: 217, retransmissions: 3, transmissionErrors: 1, handshakes: 1 });
    expect(interval.counters.latencyMaxMs).toBe(900);
    expect(interval.latency.count).toBe(5);
  });

  test('counters of several workers add up (maxima take the larger) and subtract between snapshots', () => {
    const a = counters({ requests: 10, answered: 9, latencyMaxMs: 30 });
    const b = counters({ requests: 5, answered: 5, handshakes: 2, latencyMaxMs: 80 });
    const merged = [a, b].reduce(mergeCounters, zeroCounters());
    expect(merged).toEqual(counters({ requests: 15, answered: 14, handshakes: 2, latencyMaxMs: 80 }));
    // The maximum of a span cannot be subtracted: the later snapshot's stands (a FleetWindow has the true one).
    expect(diffCounters(merged, a)).toEqual(counters({ requests: 5, answered: 5, handshakes: 2, latencyMaxMs: 80 }));
  });

  test('the interval line has the format of Californium\'s benchmark client, with handshakes added', () => {
    const interval = intervalOf([sample(10_000, { requests: 50_012, answered: 50_000, retransmissions: 250, transmissionErrors: 2, handshakes: 3 }, [], 4000)], 0, 0);
    const line = intervalLine(interval);
    expect(line).toBe('50000 requests (5000 reqs/s, 250 retransmissions (0.50%), 2 transmission errors (0.00%), 3 handshakes, 4000 clients)');
    expect(parseIntervalLine(`   10 s  ${line}`)).toEqual({ requests: 50_000, rate: 5000, retransmissions: 250, transmissionErrors: 2, handshakes: 3, clients: 4000 });
    // Nothing answered but retransmissions: no finite share.
    expect(intervalLine(intervalOf([sample(1000, { retransmissions: 7 })], 0, 0))).toBe('0 requests (0 reqs/s, 7 retransmissions (n/a), 0 transmission errors (0.00%), 0 handshakes, 10 clients)');
  });

  test('the worst window has the most retransmissions per answer; a window without answers but with trouble is worst', () => {
    const ticks = [tick(0, { answered: 5000 }), tick(1000, { answered: 4000, retransmissions: 40 }), tick(2000, { answered: 5000, retransmissions: 10 }), tick(3000, { answered: 5000 })];
    expect(worstWindow(ticks, 1)).toMatchObject({ startMs: 1000, endMs: 2000 });
    expect(worstWindow(ticks, 2)).toMatchObject({ startMs: 1000, endMs: 3000 });
    expect(joinIntervals(ticks.slice(1, 3)).counters).toMatchObject({ answered: 9000, retransmissions: 50 });
    const outage = [...ticks, tick(4000, { retransmissions: 3 }), tick(5000, { retransmissions: 900 })];
    expect(worstWindow(outage, 1)).toMatchObject({ startMs: 5000 });
    expect(worstWindow([], 10)).toBeNull();
  });
});
