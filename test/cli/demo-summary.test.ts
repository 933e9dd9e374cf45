import { describe, expect, test } from 'vitest';
import { zeroCounters, type FleetCounters } from '../../loadgen/counters.ts';
import { demoSummaryLines, type DemoSummary } from '../../cli/render/demo-summary.ts';
import { createStyle } from '../../cli/render/style.ts';

function summary(during: Partial<FleetCounters>, inFlight: { atStart: number; atEnd: number }): DemoSummary {
  const whole = { ...zeroCounters(), requests: 9_000, answered: 9_000, handshakes: 300, latencySumMs: 9_000 * 12, latencyMaxMs: 40 };
  return {
    type: 'demo-summary',
    updateCode: 'succeeded',
    updateDurationMs: 7_340,
    devices: 300,
    whole,
    during: { ...zeroCounters(), ...during },
    inFlight,
    unanswered: 0,
    sets: [{ set: 'relay-a', relays: 3, sessionsBefore: 300, sessionsAfter: null, handedOver: 300, bytes: 102_400, maxPauseMs: 14.2, received: 0, forwarded: 27 }],
    devicesNoticed: false,
    service: { address: '127.0.0.1', port: 5684 },
  };
}

/** The device table as rows of cells: label, whole run, during the update. */
function deviceRows(lines: string[]): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of lines) {
    const cells = line.trim().split(/ {2,}/);
    if (cells.length >= 2) rows.set(cells[0] as string, cells.slice(1));
  }
  return rows;
}

describe('the demo summary', () => {
  test('requests in flight as the update began and ended are counted apart, so answered < requests beside "no device noticed" adds up', () => {
    // 2 requests were waiting as the update began (answered in it), 6 were sent late and answered after it:
    // requests + in flight as it began = answered + errors + in flight as it ended.
    const lines = demoSummaryLines(summary({ requests: 1_000, answered: 996 }, { atStart: 2, atEnd: 6 }), createStyle(false));
    const rows = deviceRows(lines);
    expect(rows.get('requests')).toEqual(['9000', '1000']);
    expect(rows.get('in flight as it began')).toEqual(['2']);
    expect(rows.get('answered')).toEqual(['9000', '996']);
    expect(rows.get('in flight as it ended')).toEqual(['6']);
    expect(lines.at(-1)).toBe('the update succeeded in 7.3s and no device noticed: 0 handshakes and 0 errors during the update');
  });

  test('durations in the tables are Go-style', () => {
    const lines = demoSummaryLines(summary({ requests: 10, answered: 10, latencySumMs: 150, latencyMaxMs: 1_530 }, { atStart: 0, atEnd: 0 }), createStyle(false));
    const rows = deviceRows(lines);
    expect(rows.get('mean answer time')).toEqual(['12ms', '15ms']);
    expect(rows.get('slowest answer')).toEqual(['40ms', '1.5s']);
    expect(lines).toContainEqual(expect.stringMatching(/^relay-a +3 +300 +gone +300 +100\.0 kB +14ms +0 +27$/));
  });
});
