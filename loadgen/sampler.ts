import type { LoadGenerator, LoadSample } from './generator.ts';

/**
 * Samples the load generator every `tickMs`, on a grid anchored at start() so ticks do not drift; a tick that
 * comes while the previous sample is still being collected (workers busy) is skipped, not queued. Each sample
 * covers the time since the previous one, whatever its length, so nothing is lost when a tick is skipped.
 */
export class Sampler {
  readonly #load: LoadGenerator;
  readonly #tickMs: number;
  readonly #onSample: (sample: LoadSample, previousAt: number) => void;
  readonly #onError: (error: Error) => void;
  #origin = 0;
  #tick = 0;
  #previousAt = 0;
  #timer: NodeJS.Timeout | null = null;
  #inFlight: Promise<void> | null = null;
  #stopped = false;

  constructor(load: LoadGenerator, tickMs: number, onSample: (sample: LoadSample, previousAt: number) => void, onError: (error: Error) => void) {
    this.#load = load;
    this.#tickMs = tickMs;
    this.#onSample = onSample;
    this.#onError = onError;
  }

  /** `previousAt`: when the span the first sample covers began (the last sample taken before, if any). */
  start(previousAt: number = performance.now()): void {
    this.#origin = performance.now();
    this.#previousAt = previousAt;
    this.#schedule();
  }

  /** Stops ticking and waits for a sample in progress; returns when the last sample was delivered. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    await this.#inFlight;
  }

  /** When the span of the next sample begins (the last sample's time). */
  get lastAt(): number {
    return this.#previousAt;
  }

  #schedule(): void {
    if (this.#stopped) return;
    const now = performance.now();
    this.#tick = Math.max(this.#tick + 1, Math.ceil((now - this.#origin) / this.#tickMs));
    this.#timer = setTimeout(this.#take, Math.max(0, this.#origin + this.#tick * this.#tickMs - now));
  }

  readonly #take = (): void => {
    this.#timer = null;
    this.#inFlight = this.#load.sample().then(
      (sample) => {
        const previousAt = this.#previousAt;
        this.#previousAt = sample.at;
        // Delivered even when stopping: the load generator already counted it as taken.
        try {
          this.#onSample(sample, previousAt);
        } catch (error) {
          this.#onError(error as Error);
        }
      },
      (error: unknown) => {
        if (!this.#stopped) this.#onError(error as Error);
      },
    ).finally(() => {
      this.#inFlight = null;
      this.#schedule();
    });
  };
}
