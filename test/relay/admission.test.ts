import { describe, expect, it } from 'vitest';
import { HandshakeAdmission } from '../../relay/dtls/admission.ts';

describe('HandshakeAdmission', () => {
  const limits = { maxHandshakes: 10, handshakesPerSourcePerSecond: 2, handshakeBurstPerSource: 4 };

  it('lets a source start a burst of handshakes, then as many as its rate refills', () => {
    const admission = new HandshakeAdmission(limits);
    const t = 1_000;
    for (let i = 0; i < 4; i++) expect(admission.admit('192.0.2.1', 0, t)).toBeNull();
    expect(admission.admit('192.0.2.1', 0, t)).toBe('handshake-rate');
    // 2 per second: one token after 500 ms, not before.
    expect(admission.admit('192.0.2.1', 0, t + 499)).toBe('handshake-rate');
    expect(admission.admit('192.0.2.1', 0, t + 500)).toBeNull();
    expect(admission.admit('192.0.2.1', 0, t + 500)).toBe('handshake-rate');
    // Another source has its own bucket.
    expect(admission.admit('192.0.2.2', 0, t + 500)).toBeNull();
  });

  it('refuses any source while the half-open table is full, without taking a token', () => {
    const admission = new HandshakeAdmission(limits);
    expect(admission.admit('192.0.2.1', 10, 0)).toBe('handshake-capacity');
    for (let i = 0; i < 4; i++) expect(admission.admit('192.0.2.1', 9, 0)).toBeNull();
  });

  it('never holds more than the burst, however long a source stayed away', () => {
    const admission = new HandshakeAdmission(limits);
    admission.admit('192.0.2.1', 0, 0);
    for (let i = 0; i < 4; i++) expect(admission.admit('192.0.2.1', 0, 3_600_000)).toBeNull();
    expect(admission.admit('192.0.2.1', 0, 3_600_000)).toBe('handshake-rate');
  });

  it('forgets a source once its bucket had time to fill up again', () => {
    const admission = new HandshakeAdmission(limits);
    admission.admit('192.0.2.1', 0, 0);
    admission.admit('192.0.2.2', 0, 1_000);
    // A full refill takes burst / rate = 2 s.
    admission.sweep(1_999);
    expect(admission.trackedSources).toBe(2);
    admission.sweep(2_000);
    expect(admission.trackedSources).toBe(1);
    admission.clear();
    expect(admission.trackedSources).toBe(0);
  });
});
