import { describe, expect, test, vi } from 'vitest';
import { ManualClock, systemClock, withTimeout } from '../../orchestrator/clock.ts';

describe('ManualClock', () => {
  test('advance fires due timers in time order and lands exactly on the target', async () => {
    const clock = new ManualClock({ startMs: 1000 });
    const fired: string[] = [];
    void clock.sleep(300).then(() => fired.push(`b@${clock.now()}`));
    void clock.sleep(100).then(() => fired.push(`a@${clock.now()}`));
    void clock.sleep(900).then(() => fired.push(`c@${clock.now()}`));
    await clock.advance(500);
    expect(fired).toEqual(['a@1100', 'b@1300']);
    expect(clock.now()).toBe(1500);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(400);
    expect(fired).toEqual(['a@1100', 'b@1300', 'c@1900']);
  });

  test('timers scheduled by a continuation during advance still fire within it', async () => {
    const clock = new ManualClock({ startMs: 0 });
    const fired: number[] = [];
    void clock.sleep(10).then(async () => {
      fired.push(clock.now());
      await clock.sleep(10);
      fired.push(clock.now());
    });
    await clock.advance(25);
    expect(fired).toEqual([10, 20]);
  });

  test('an aborted sleep rejects with the reason and leaves no timer behind', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const sleeping = clock.sleep(1000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(sleeping).rejects.toThrow('stop');
    expect(clock.pendingTimers).toBe(0);
    await expect(clock.sleep(1, controller.signal)).rejects.toThrow('stop');
  });

  test('auto-advance runs an hour of concurrent sleeps in virtual order without real waiting', async () => {
    const clock = new ManualClock({ startMs: 0 });
    clock.setAutoAdvance(true);
    const order: string[] = [];
    const realTimers = vi.spyOn(globalThis, 'setTimeout');
    await Promise.all([
      clock.sleep(3600_000).then(() => order.push('hour')),
      (async () => {
        for (let minute = 1; minute <= 3; minute++) {
          await clock.sleep(60_000);
          order.push(`minute ${minute}`);
        }
      })(),
    ]);
    expect(order).toEqual(['minute 1', 'minute 2', 'minute 3', 'hour']);
    expect(clock.now()).toBe(3600_000);
    // No real waiting: not one real timer was set.
    expect(realTimers).not.toHaveBeenCalled();
    realTimers.mockRestore();
  });

  test('auto-advance gives up past its limit instead of spinning forever', async () => {
    const clock = new ManualClock({ startMs: 0, limitMs: 10_000 });
    clock.setAutoAdvance(true);
    await expect(clock.sleep(20_000)).rejects.toThrow(/virtual time limit/);
  });
});

describe('withTimeout', () => {
  test('returns the result and cancels its timer when the work wins', async () => {
    const clock = new ManualClock();
    clock.setAutoAdvance(true);
    await expect(withTimeout(clock, Promise.resolve(42), 1000, () => new Error('late'))).resolves.toBe(42);
    expect(clock.pendingTimers).toBe(0);
  });

  test('rejects with the timeout error when the work never answers', async () => {
    const clock = new ManualClock({ startMs: 0 });
    clock.setAutoAdvance(true);
    await expect(withTimeout(clock, new Promise(() => {}), 5000, () => new Error('late'))).rejects.toThrow('late');
    expect(clock.now()).toBe(5000);
  });

  test('rejects with the caller reason when its signal aborts', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const racing = withTimeout(clock, new Promise(() => {}), 5000, () => new Error('late'), controller.signal);
    controller.abort(new Error('interrupted'));
    await expect(racing).rejects.toThrow('interrupted');
  });
});

test('systemClock.sleep rejects with the abort reason, not a timers AbortError', async () => {
  const controller = new AbortController();
  const sleeping = systemClock.sleep(60_000, controller.signal);
  controller.abort(new Error('stop now'));
  await expect(sleeping).rejects.toThrow('stop now');
});
