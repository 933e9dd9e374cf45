import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RetransmitTimer, type RetransmitPolicy } from '../../client/dtls/retransmit-timer.ts';

function recorder(policy: RetransmitPolicy) {
  const events: string[] = [];
  const timer = new RetransmitTimer(policy, {
    retransmit: () => events.push(`retransmit@${Date.now()}`),
    timeout: (count) => events.push(`timeout@${Date.now()} after ${count}`),
  });
  return { timer, events };
}

describe('RetransmitTimer', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'], now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('doubles the delay on each retransmission and gives up after the bounded count', () => {
    const { timer, events } = recorder({ initialMs: 1_000, maxMs: 60_000, maxRetransmissions: 3, handshakeTimeoutMs: 100_000 });
    timer.begin();
    timer.flightSent();
    vi.advanceTimersByTime(100_000);
    expect(events).toEqual(['retransmit@1000', 'retransmit@3000', 'retransmit@7000', 'timeout@15000 after 3']);
  });

  it('caps the delay at maxMs', () => {
    const { timer, events } = recorder({ initialMs: 1_000, maxMs: 2_000, maxRetransmissions: 4, handshakeTimeoutMs: 100_000 });
    timer.begin();
    timer.flightSent();
    vi.advanceTimersByTime(100_000);
    expect(events).toEqual(['retransmit@1000', 'retransmit@3000', 'retransmit@5000', 'retransmit@7000', 'timeout@9000 after 4']);
  });

  it('restarts from the initial delay when a new flight goes out', () => {
    const { timer, events } = recorder({ initialMs: 1_000, maxMs: 60_000, maxRetransmissions: 6, handshakeTimeoutMs: 100_000 });
    timer.begin();
    timer.flightSent();
    vi.advanceTimersByTime(2_500); // retransmit at 1000, next due at 3000
    timer.flightSent(); // at 2500: next due at 3500
    vi.advanceTimersByTime(1_000);
    expect(events).toEqual(['retransmit@1000', 'retransmit@3500']);
  });

  it('ends at the overall deadline, even before the first flight', () => {
    const early = recorder({ initialMs: 1_000, maxMs: 60_000, maxRetransmissions: 6, handshakeTimeoutMs: 4_000 });
    early.timer.begin();
    vi.advanceTimersByTime(10_000);
    expect(early.events).toEqual(['timeout@4000 after 0']);

    vi.setSystemTime(0);
    const late = recorder({ initialMs: 1_000, maxMs: 60_000, maxRetransmissions: 6, handshakeTimeoutMs: 4_000 });
    late.timer.begin();
    late.timer.flightSent();
    vi.advanceTimersByTime(10_000);
    expect(late.events).toEqual(['retransmit@1000', 'retransmit@3000', 'timeout@4000 after 2']);
  });

  it('does nothing once stopped', () => {
    const { timer, events } = recorder({ initialMs: 1_000, maxMs: 60_000, maxRetransmissions: 6, handshakeTimeoutMs: 4_000 });
    timer.begin();
    timer.flightSent();
    timer.stop();
    vi.advanceTimersByTime(10_000);
    expect(events).toEqual([]);
  });
});
