import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplayWindow } from '../../../api/dtls/replay-window.ts';

/** Accept-and-record helper mirroring both ends: check, then mark only what passed (epoch 1). */
function offer(window: ReplayWindow, sequence: number): boolean {
  if (!window.accepts(1, sequence)) return false;
  window.mark(1, sequence);
  return true;
}

describe('ReplayWindow', () => {
  it('accepts the first record whatever its number, then rejects its repetition', () => {
    const window = new ReplayWindow(1);
    expect(window.top).toBe(-1);
    expect(offer(window, 1000)).toBe(true);
    expect(offer(window, 1000)).toBe(false);
    expect(window.top).toBe(1000);
  });

  it('accepts late records inside the window once, and rejects those 64 or more behind', () => {
    const window = new ReplayWindow(1);
    offer(window, 100);
    expect(offer(window, 37)).toBe(true); // 63 behind: last slot of the window
    expect(offer(window, 37)).toBe(false);
    expect(offer(window, 36)).toBe(false); // 64 behind
    expect(offer(window, 99)).toBe(true);
    expect(offer(window, 68)).toBe(true); // 32 behind: first slot of the high word
    expect(offer(window, 68)).toBe(false);
  });

  it('does not move until a record is marked, so checking alone changes nothing', () => {
    const window = new ReplayWindow(1);
    offer(window, 5);
    expect(window.accepts(1, 500)).toBe(true);
    expect(window.top).toBe(5);
    expect(window.accepts(1, 4)).toBe(true);
  });

  it('keeps the history across shifts of 31, 32, 33, 63 and 64', () => {
    for (const shift of [1, 31, 32, 33, 63, 64, 65, 1000]) {
      const window = new ReplayWindow(1);
      offer(window, 1000);
      offer(window, 999);
      offer(window, 1000 + shift);
      // 1000 and 999 are now shift and shift+1 behind the top.
      expect(window.accepts(1, 1000), `shift ${shift}`).toBe(false);
      expect(window.accepts(1, 999), `shift ${shift}`).toBe(false);
      if (shift + 2 < 64) expect(window.accepts(1, 998), `shift ${shift}`).toBe(true);
    }
  });

  it('handles sequence numbers up to 2^48 - 1', () => {
    const window = new ReplayWindow(1);
    const top = 2 ** 48 - 1;
    expect(offer(window, top - 40)).toBe(true);
    expect(offer(window, top)).toBe(true);
    expect(offer(window, top - 40)).toBe(false);
    expect(offer(window, top - 41)).toBe(true);
  });

  it('agrees with a set-based model of RFC 6347 4.1.2.6 on random sequences', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 400 }), (sequences) => {
      const window = new ReplayWindow(1);
      const seen = new Set<number>();
      let top = -1;
      for (const sequence of sequences) {
        const expected = sequence > top || (top - sequence < 64 && !seen.has(sequence));
        expect(offer(window, sequence)).toBe(expected);
        if (expected) {
          seen.add(sequence);
          top = Math.max(top, sequence);
        }
      }
      expect(window.top).toBe(top);
    }), { numRuns: 300 });
  });

  it('round-trips through its 8-byte form (what a handover carries)', () => {
    const window = new ReplayWindow(1);
    for (const seq of [1, 2, 3, 40, 63, 64, 70]) window.mark(1, seq);
    const copy = ReplayWindow.fromBytes(window.epoch, window.top, window.toBytes());
    for (let seq = 0; seq <= 80; seq++) expect(copy.accepts(1, seq)).toBe(window.accepts(1, seq));
    expect(() => ReplayWindow.fromBytes(1, 0, Buffer.alloc(7))).toThrow(RangeError);
  });

  it('judges by epoch: older epochs are refused, a newer epoch restarts the window', () => {
    const window = new ReplayWindow(1);
    window.mark(1, 50);
    expect(window.accepts(0, 999)).toBe(false);
    expect(window.accepts(2, 0)).toBe(true);
    window.mark(0, 999);
    expect(window.top).toBe(50);
    window.mark(2, 0);
    expect(window.epoch).toBe(2);
    expect(window.accepts(2, 0)).toBe(false);
  });
});
