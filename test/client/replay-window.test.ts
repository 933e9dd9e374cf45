import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplayWindow } from '../../client/dtls/replay-window.ts';

/** Accept-and-record helper mirroring the client: check, then mark only what passed. */
function offer(window: ReplayWindow, sequence: number): boolean {
  if (window.isDuplicateOrStale(sequence)) return false;
  window.markReceived(sequence);
  return true;
}

describe('ReplayWindow', () => {
  it('accepts the first record whatever its number, then rejects its repetition', () => {
    const window = new ReplayWindow();
    expect(window.highestSequence).toBe(-1);
    expect(offer(window, 1000)).toBe(true);
    expect(offer(window, 1000)).toBe(false);
    expect(window.highestSequence).toBe(1000);
  });

  it('accepts late records inside the window once, and rejects those 64 or more behind', () => {
    const window = new ReplayWindow();
    offer(window, 100);
    expect(offer(window, 37)).toBe(true); // 63 behind: last slot of the window
    expect(offer(window, 37)).toBe(false);
    expect(offer(window, 36)).toBe(false); // 64 behind
    expect(offer(window, 99)).toBe(true);
    expect(offer(window, 68)).toBe(true); // 32 behind: first slot of the high word
    expect(offer(window, 68)).toBe(false);
  });

  it('does not move until a record is marked, so checking alone changes nothing', () => {
    const window = new ReplayWindow();
    offer(window, 5);
    expect(window.isDuplicateOrStale(500)).toBe(false);
    expect(window.highestSequence).toBe(5);
    expect(window.isDuplicateOrStale(4)).toBe(false);
  });

  it('keeps the history across shifts of 31, 32, 33, 63 and 64', () => {
    for (const shift of [1, 31, 32, 33, 63, 64, 65, 1000]) {
      const window = new ReplayWindow();
      offer(window, 1000);
      offer(window, 999);
      offer(window, 1000 + shift);
      // 1000 and 999 are now shift and shift+1 behind the top.
      expect(window.isDuplicateOrStale(1000), `shift ${shift}`).toBe(true);
      expect(window.isDuplicateOrStale(999), `shift ${shift}`).toBe(true);
      if (shift + 2 < 64) expect(window.isDuplicateOrStale(998), `shift ${shift}`).toBe(false);
    }
  });

  it('handles sequence numbers up to 2^48 - 1', () => {
    const window = new ReplayWindow();
    const top = 2 ** 48 - 1;
    expect(offer(window, top - 40)).toBe(true);
    expect(offer(window, top)).toBe(true);
    expect(offer(window, top - 40)).toBe(false);
    expect(offer(window, top - 41)).toBe(true);
  });

  it('agrees with a set-based model of RFC 6347 4.1.2.6 on random sequences', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 400 }), (sequences) => {
      const window = new ReplayWindow();
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
      expect(window.highestSequence).toBe(top);
    }), { numRuns: 300 });
  });
});
