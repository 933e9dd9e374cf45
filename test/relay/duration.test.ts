import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../api/duration.ts';

describe('Go-style durations', () => {
  it('parses units and combinations', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('0')).toBe(0);
  });

  it('refuses bare numbers and unknown units, naming the input', () => {
    expect(() => parseDuration('10', '--timeout')).toThrow(/--timeout: "10" is not a duration/);
    expect(() => parseDuration('5 min')).toThrow(/expected e\.g\. 500ms/);
    expect(() => parseDuration('3d')).toThrow(/not a duration/);
  });

  it('formats for people', () => {
    expect(formatDuration(420)).toBe('420ms');
    expect(formatDuration(12_000)).toBe('12s');
    expect(formatDuration(90_000)).toBe('1m30s');
  });
});
