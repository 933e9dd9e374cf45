import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { Pacer } from '../../loadgen/pacer.ts';

/** The rate cap, on fake timers: when each caller is let through, to the millisecond. */

describe('Pacer', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'], now: 0 });
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  /** `callers` take a turn at once; returns when each was let through, in the order they got through. */
  function takeAll(pacer: Pacer, callers: number): { grants: { caller: number; at: number }[] } {
    const grants: { caller: number; at: number }[] = [];
    for (let caller = 0; caller < callers; caller++) {
      const turn = pacer.take();
      if (turn === undefined) grants.push({ caller, at: performance.now() });
      else void turn.then(() => grants.push({ caller, at: performance.now() }));
    }
    return { grants };
  }

  test('at 200/s: one grant every 5 ms after a burst of 5 ms, in arrival order, one timer for the queue', async () => {
    const pacer = new Pacer(200);
    const { grants } = takeAll(pacer, 60);
    // The first caller starts the schedule; the burst allowance lets the second go at once too.
    expect(grants).toEqual([{ caller: 0, at: 0 }, { caller: 1, at: 0 }]);
    expect(pacer.waiting).toBe(58);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(290);
    expect(grants.map((grant) => grant.caller)).toEqual(Array.from({ length: 60 }, (_, index) => index));
    expect(grants.map((grant) => grant.at)).toEqual([0, 0, ...Array.from({ length: 58 }, (_, index) => 5 * (index + 1))]);
    expect(pacer.waiting).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('turns missed while the event loop was stalled are made up at once, but no more than 250 ms worth', async () => {
    let stalledMs = 0;
    const pacer = new Pacer(200, { now: () => performance.now() + stalledMs });
    const { grants } = takeAll(pacer, 200);
    expect(grants).toHaveLength(2);
    // The timer for the third caller (due at 5 ms) fires 100 ms late: its turn and the 20 missed since are granted at once.
    stalledMs = 100;
    await vi.advanceTimersByTimeAsync(5);
    expect(grants).toHaveLength(2 + 21);
    // Then the steady 5 ms again.
    await vi.advanceTimersByTimeAsync(5);
    expect(grants).toHaveLength(24);
    // A stall of a second makes up only 250 ms: the turn that was due, 50 turns, and the 5 ms burst; not a flood.
    stalledMs = 1100;
    await vi.advanceTimersByTimeAsync(5);
    expect(grants).toHaveLength(24 + 1 + 50 + 1);
  });

  test('refuses a rate that is not a positive number', () => {
    for (const rate of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => new Pacer(rate)).toThrow(/perSecond: expected a positive number/);
  });
});
