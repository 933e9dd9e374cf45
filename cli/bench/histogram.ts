/**
 * Round-trip times in a log-linear histogram (HdrHistogram's layout, simplified): microseconds 0..255 each get
 * a bucket of their own, and every power of two above gets 128 equal buckets, so a bucket is at most 1/128 of
 * its value wide and the value reported for it (its midpoint) is within 0.4% of any sample in it.
 *
 * Fixed buckets make histograms mergeable by adding counts: each worker thread records into its own and the
 * main thread adds them up, which exact samples (or averages of per-worker percentiles) could not do.
 *
 *   index:  0 .. 255 | 256 .. 383  | 384 .. 511  | ...
 *   value:  0 .. 255 | 256 .. 511  | 512 .. 1023 | ...   (step 1 | 2 | 4 | ...)
 */

const LINEAR = 256;
const SUB_BUCKETS = 128;
/** Up to 2^32 µs (71 minutes): longer round trips are clamped (a request gives up after about 93 s). */
const MAX_VALUE_US = 2 ** 32 - 1;
const BUCKETS = LINEAR + (32 - 8) * SUB_BUCKETS;

/** What crosses the thread boundary: only the buckets that hold something, as [index, count, index, count, ...]. */
export interface HistogramData {
  buckets: number[];
  count: number;
  sumUs: number;
  minUs: number;
  maxUs: number;
}

export function bucketIndex(valueUs: number): number {
  const value = Math.min(MAX_VALUE_US, Math.max(0, Math.round(valueUs)));
  if (value < LINEAR) return value;
  // Position of the highest set bit: 8 for 256..511.
  const magnitude = 31 - Math.clz32(value);
  const shift = magnitude - 7;
  return LINEAR + (shift - 1) * SUB_BUCKETS + ((value >>> shift) - SUB_BUCKETS);
}

/** The value a bucket stands for: its midpoint (exact below 256 µs). */
export function bucketValue(index: number): number {
  if (index < LINEAR) return index;
  const shift = Math.floor((index - LINEAR) / SUB_BUCKETS) + 1;
  const low = ((index - LINEAR) % SUB_BUCKETS + SUB_BUCKETS) * 2 ** shift;
  return low + (2 ** shift - 1) / 2;
}

export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sumUs = 0;
  #minUs = Number.POSITIVE_INFINITY;
  #maxUs = 0;

  static from(data: HistogramData): LatencyHistogram {
    return new LatencyHistogram().add(data);
  }

  get count(): number {
    return this.#count;
  }

  recordMs(ms: number): void {
    this.record(ms * 1000);
  }

  record(valueUs: number): void {
    const value = Math.min(MAX_VALUE_US, Math.max(0, valueUs));
    this.#counts[bucketIndex(value)]!++;
    this.#count++;
    this.#sumUs += value;
    if (value < this.#minUs) this.#minUs = value;
    if (value > this.#maxUs) this.#maxUs = value;
  }

  /** Adds another histogram's counts (a worker's, or an earlier interval's). */
  add(other: LatencyHistogram | HistogramData): this {
    const data = other instanceof LatencyHistogram ? other.toData() : other;
    for (let at = 0; at + 1 < data.buckets.length; at += 2) this.#counts[data.buckets[at]!]! += data.buckets[at + 1]!;
    if (data.count > 0) {
      this.#count += data.count;
      this.#sumUs += data.sumUs;
      this.#minUs = Math.min(this.#minUs, data.minUs);
      this.#maxUs = Math.max(this.#maxUs, data.maxUs);
    }
    return this;
  }

  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#sumUs = 0;
    this.#minUs = Number.POSITIVE_INFINITY;
    this.#maxUs = 0;
  }

  toData(): HistogramData {
    const buckets: number[] = [];
    for (let index = 0; index < BUCKETS; index++) {
      const count = this.#counts[index]!;
      if (count > 0) buckets.push(index, count);
    }
    return { buckets, count: this.#count, sumUs: this.#sumUs, minUs: this.#count === 0 ? 0 : this.#minUs, maxUs: this.#maxUs };
  }

  /**
   * The value below which `p` percent of the samples fall, in ms (null when empty). p = 100 is the exact maximum,
   * and no percentile is reported above it or below the exact minimum.
   */
  percentileMs(p: number): number | null {
    if (this.#count === 0) return null;
    if (p >= 100) return this.#maxUs / 1000;
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    let seen = 0;
    for (let index = 0; index < BUCKETS; index++) {
      seen += this.#counts[index]!;
      if (seen >= rank) return Math.min(this.#maxUs, Math.max(this.#minUs, bucketValue(index))) / 1000;
    }
    return this.#maxUs / 1000;
  }

  meanMs(): number | null {
    return this.#count === 0 ? null : this.#sumUs / this.#count / 1000;
  }

  maxMs(): number | null {
    return this.#count === 0 ? null : this.#maxUs / 1000;
  }

  /** p50, p90, p99 and max in ms, as the summaries print them. */
  summary(): LatencySummary {
    return {
      count: this.#count,
      p50Ms: this.percentileMs(50),
      p90Ms: this.percentileMs(90),
      p99Ms: this.percentileMs(99),
      maxMs: this.maxMs(),
      meanMs: this.meanMs(),
    };
  }
}

export interface LatencySummary {
  count: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  meanMs: number | null;
}
