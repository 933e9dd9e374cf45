import { describe, expect, it } from 'vitest';
import { ReplayWindow } from '../../relay/dtls/replay-window.ts';

describe('ReplayWindow', () => {
  it('accepts anything new before the first record', () => {
    const window = new ReplayWindow(1);
    expect(window.accepts(1, 0)).toBe(true);
    expect(window.accepts(1, 123_456)).toBe(true);
  });

  it('refuses a record seen before and keeps accepting unseen ones below the top', () => {
    const window = new ReplayWindow(1);
    for (const seq of [5, 7, 6, 10]) window.mark(1, seq);
    expect(window.top).toBe(10);
    for (const seq of [5, 6, 7, 10]) expect(window.accepts(1, seq)).toBe(false);
    for (const seq of [8, 9, 4, 11]) expect(window.accepts(1, seq)).toBe(true);
  });

  it('refuses records 64 or more below the top', () => {
    const window = new ReplayWindow(1);
    window.mark(1, 100);
    expect(window.accepts(1, 37)).toBe(true);
    expect(window.accepts(1, 36)).toBe(false);
  });

  it('slides across both 32-bit halves exactly', () => {
    const window = new ReplayWindow(1);
    const seen = new Set<number>();
    // Deterministic pseudo-random walk around a moving top.
    let x = 12345;
    for (let i = 0; i < 5_000; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const seq = Math.max(0, Math.floor(i * 1.5) - (x % 80));
      const expected = !seen.has(seq) && (window.top < 0 || seq > window.top - 64);
      expect(window.accepts(1, seq)).toBe(expected);
      if (expected) {
        window.mark(1, seq);
        seen.add(seq);
      }
    }
  });

  it('round-trips through its 8-byte form', () => {
    const window = new ReplayWindow(1);
    for (const seq of [1, 2, 3, 40, 63, 64, 70]) window.mark(1, seq);
    const copy = ReplayWindow.fromBytes(window.epoch, window.top, window.toBytes());
    for (let seq = 0; seq <= 80; seq++) expect(copy.accepts(1, seq)).toBe(window.accepts(1, seq));
  });

  it('judges by epoch: older epochs are refused, a newer epoch restarts the window', () => {
    const window = new ReplayWindow(1);
    window.mark(1, 50);
    expect(window.accepts(0, 999)).toBe(false);
    expect(window.accepts(2, 0)).toBe(true);
    window.mark(2, 0);
    expect(window.epoch).toBe(2);
    expect(window.accepts(2, 0)).toBe(false);
  });

  it('handles 48-bit sequence numbers exactly', () => {
    const window = new ReplayWindow(1);
    const high = 2 ** 48 - 10;
    window.mark(1, high);
    expect(window.accepts(1, high)).toBe(false);
    expect(window.accepts(1, high + 1)).toBe(true);
    expect(window.accepts(1, high - 1)).toBe(true);
  });
});
