/**
 * Who may start a handshake: at most `maxHandshakes` half-open at once, and per source IP a token
 * bucket of `handshakeBurstPerSource` tokens refilled at `handshakesPerSourcePerSecond`. Every
 * ClientHello that would start a native socket takes a token, so a handshake takes two: the cookie
 * exchange (a socket freed right after its HelloVerifyRequest) and the real one. No I/O; time comes in.
 */
export interface AdmissionLimits {
  readonly maxHandshakes: number;
  readonly handshakesPerSourcePerSecond: number;
  readonly handshakeBurstPerSource: number;
}

export type AdmissionRefusal = 'handshake-capacity' | 'handshake-rate';

interface Bucket {
  tokens: number;
  refilledAt: number;
}

export class HandshakeAdmission {
  private readonly limits: AdmissionLimits;
  private readonly buckets = new Map<string, Bucket>();

  constructor(limits: AdmissionLimits) {
    this.limits = limits;
  }

  /** Sources with a bucket that is not full. */
  get trackedSources(): number {
    return this.buckets.size;
  }

  /**
   * Null when a new handshake from `address` may start now, with `halfOpen` handshakes already in
   * progress (a token is taken); otherwise why not (and nothing is taken).
   */
  admit(address: string, halfOpen: number, now: number): AdmissionRefusal | null {
    if (halfOpen >= this.limits.maxHandshakes) return 'handshake-capacity';
    const { handshakesPerSourcePerSecond: rate, handshakeBurstPerSource: burst } = this.limits;
    let bucket = this.buckets.get(address);
    if (bucket === undefined) {
      bucket = { tokens: burst, refilledAt: now };
      this.buckets.set(address, bucket);
    } else {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.refilledAt) * rate) / 1000);
      bucket.refilledAt = now;
    }
    if (bucket.tokens < 1) return 'handshake-rate';
    bucket.tokens -= 1;
    return null;
  }

  /** Forgets buckets that have had time to fill up again: a full bucket and no bucket are the same. */
  sweep(now: number): void {
    const refillMs = (1000 * this.limits.handshakeBurstPerSource) / this.limits.handshakesPerSourcePerSecond;
    for (const [address, bucket] of this.buckets) {
      if (now - bucket.refilledAt >= refillMs) this.buckets.delete(address);
    }
  }

  clear(): void {
    this.buckets.clear();
  }
}
