import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

/**
 * Round-trip times in Node's HdrHistogram (perf_hooks.createHistogram), in whole microseconds with 3 significant
 * figures: any percentile is reported within 0.1% of a recorded value (the test measures it over the whole range).
 * Fixed buckets make histograms mergeable by adding counts: each worker thread records into its own, hands its
 * counts over (takeData) and the main thread adds them up, which exact samples or
 * averages of per-worker percentiles could not do.
 *
 * HdrHistogram reports the minimum, maximum and mean from its buckets; the exact ones are kept beside it (they
 * merge as min, max and sum), so a summary's max is the slowest answer itself and no percentile exceeds it.
 */

/**
 * Up to 2^27 µs (134 s): longer round trips are clamped (a request gives up after at most 93 s). The range sets the
 * size of every histogram (81 KiB at 3 figures; 136 KiB up to 2^32).
 */
export const MAX_VALUE_US = 2 ** 27;
const SIGNIFICANT_FIGURES = 3;

/** What crosses the thread boundary (structured clone). */
export interface HistogramData {
  buckets: RecordableHistogram;
  count: number;
  sumUs: number;
  minUs: number;
  maxUs: number;
}

function emptyBuckets(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: MAX_VALUE_US, figures: SIGNIFICANT_FIGURES });
}

export class LatencyHistogram {
  #buckets = emptyBuckets();
  #count = 0;
  #sumUs = 0;
  #minUs = Number.POSITIVE_INFINITY;
  #maxUs = 0;

  get count(): number {
    return this.#count;
  }

  recordMs(ms: number): void {
    this.record(ms * 1000);
  }

  record(valueUs: number): void {
    const value = Math.min(MAX_VALUE_US, Math.max(0, valueUs));
    // HdrHistogram takes whole values from 1: a sub-microsecond round trip counts as 1 µs there (and exactly in min/sum).
    this.#buckets.record(Math.max(1, Math.round(value)));
    this.#count++;
    this.#sumUs += value;
    if (value < this.#minUs) this.#minUs = value;
    if (value > this.#maxUs) this.#maxUs = value;
  }

  /** Adds another histogram's counts (a worker's, or an earlier interval's). */
  add(other: LatencyHistogram | HistogramData): this {
    const data = other instanceof LatencyHistogram ? other.#data() : other;
    if (data.count === 0) return this;
    this.#buckets.add(data.buckets);
    this.#count += data.count;
    this.#sumUs += data.sumUs;
    this.#minUs = Math.min(this.#minUs, data.minUs);
    this.#maxUs = Math.max(this.#maxUs, data.maxUs);
    return this;
  }

  /**
   * Hands the counts over (to send to another thread) and starts empty. A RecordableHistogram that crosses
   * postMessage (or structuredClone) shares its native counts with the original, so the one handed over is never
   * recorded into or reset again: this histogram records into a new one from now on.
   */
  takeData(): HistogramData {
    const data = this.#data();
    this.#buckets = emptyBuckets();
    this.#count = 0;
    this.#sumUs = 0;
    this.#minUs = Number.POSITIVE_INFINITY;
    this.#maxUs = 0;
    return data;
  }

  #data(): HistogramData {
    return { buckets: this.#buckets, count: this.#count, sumUs: this.#sumUs, minUs: this.#count === 0 ? 0 : this.#minUs, maxUs: this.#maxUs };
  }

  /**
   * The value below which `p` percent of the samples fall, in ms (null when empty). p = 100 is the exact maximum,
   * p = 0 the exact minimum, and no percentile is reported above it or below the exact minimum.
   */
  percentileMs(p: number): number | null {
    if (this.#count === 0) return null;
    if (p >= 100) return this.#maxUs / 1000;
    if (p <= 0) return this.#minUs / 1000;
    return Math.min(this.#maxUs, Math.max(this.#minUs, this.#buckets.percentile(p))) / 1000;
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
