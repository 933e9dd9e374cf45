import { describe, expect, it } from 'vitest';
import { formatDuration, formatMeasured, parseDuration } from '../../lib/duration.ts';

describe('Go-style durations', () => {
  it('parses units and combinations', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1m30.5s')).toBe(90_500);
    expect(parseDuration('0')).toBe(0);
  });

  it('refuses bare numbers and unknown units, naming the input', () => {
    expect(() => parseDuration('10', '--timeout')).toThrow(/--timeout: "10" is not a duration/);
    expect(() => parseDuration('5 min')).toThrow(/expected e\.g\. 500ms/);
    expect(() => parseDuration('3d')).toThrow(/not a duration/);
  });

  it('formats as Go does, leaving out units that are zero', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(420)).toBe('420ms');
    expect(formatDuration(1_500)).toBe('1.5s');
    expect(formatDuration(12_000)).toBe('12s');
    expect(formatDuration(90_000)).toBe('1m30s');
    expect(formatDuration(90_500)).toBe('1m30.5s');
    expect(formatDuration(3_600_000)).toBe('1h');
    expect(formatDuration(3_605_000)).toBe('1h5s');
    expect(formatDuration(24 * 3_600_000)).toBe('24h');
    expect(formatDuration(-2_000)).toBe('-2s');
  });

  it('rounds to a resolution', () => {
    expect(formatDuration(1_234, 100)).toBe('1.2s');
    expect(formatDuration(999.6)).toBe('1s');
    expect(formatDuration(61_499, 1000)).toBe('1m1s');
  });

  it('measured durations keep two or three significant figures', () => {
    expect(formatMeasured(14.4)).toBe('14ms');
    expect(formatMeasured(1_749)).toBe('1.7s');
    expect(formatMeasured(7_300)).toBe('7.3s');
    expect(formatMeasured(42_400)).toBe('42s');
    expect(formatMeasured(125_000)).toBe('2m5s');
  });

  it('what it prints parses back to the same value', () => {
    for (const ms of [0, 1, 250, 999, 1_000, 1_500, 59_999, 60_000, 90_500, 3_600_000, 5_400_000, 86_400_000, 90_061_001]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});
