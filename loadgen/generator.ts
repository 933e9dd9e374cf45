/**
 * The load generator's main-thread side: it splits the devices, the request rate and the handshake rate over
 * worker threads (worker.ts), one per core by default, so that encrypting, decrypting and timing requests is
 * not held up by one event loop. It samples them together and adds their counters and histograms up.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { diffCounters, mergeCounters, zeroCounters, type FleetCounters } from './counters.ts';
import type { ExchangeParams } from './fleet.ts';
import { LatencyHistogram } from './histogram.ts';
import type { FromWorker, HandshakeErrorInfo, ToWorker, WorkerSample, WorkerSetup } from './messages.ts';

export interface LoadOptions {
  host: string;
  port: number;
  serverPublicKey: Buffer;
  clients: number;
  payloadBytes: number;
  /** Requests per second over all devices; null: no cap (each device sends when its answer came). */
  requestsPerSecond: number | null;
  handshakesPerSecond: number;
  /** Default: one per core, never more than devices. */
  workers?: number;
  exchange?: Partial<ExchangeParams>;
  /** Node flags of the worker threads (e.g. --cpu-prof to profile them). */
  workerExecArgv?: string[];
}

/** The load generator at one moment: what happened since the previous sample, and in total. */
export interface LoadSample {
  /** performance.now() of the main thread when every worker had answered. */
  at: number;
  /** Since the previous sample; latencyMaxMs is this interval's slowest answer. */
  delta: FleetCounters;
  /** Since the workers began (start-up included). */
  totals: FleetCounters;
  latency: LatencyHistogram;
  clients: number;
  inFlight: number;
  /** The worst worker's event-loop delay in this interval. */
  loopDelayMaxMs: number;
  loopDelayP99Ms: number;
  /** Busy share of each worker's event loop in this interval (0..1). */
  utilization: number[];
}

export interface StartupResult {
  connected: number;
  failed: number;
  durationMs: number;
  lastError: HandshakeErrorInfo | null;
}

type Reply<T extends FromWorker['type']> = Extract<FromWorker, { type: T }>;

/** One worker thread and the replies it owes, by type (a sample may overtake a slow connect). */
class WorkerHandle {
  readonly worker: Worker;
  readonly #waiting = new Map<FromWorker['type'], { resolve(message: FromWorker): void; reject(error: Error): void }[]>();
  #failure: Error | null = null;
  readonly exited: Promise<void>;

  constructor(setup: WorkerSetup, execArgv: string[] | undefined) {
    this.worker = new Worker(new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url), { workerData: setup, ...(execArgv === undefined ? {} : { execArgv: [...process.execArgv, ...execArgv] }) });
    this.worker.on('message', (message: FromWorker) => {
      if (message.type === 'failed') {
        this.#fail(new Error(`load generator worker ${setup.index}: ${message.message}`));
        return;
      }
      this.#waiting.get(message.type)?.shift()?.resolve(message);
    });
    this.worker.on('error', (error) => this.#fail(new Error(`load generator worker ${setup.index} crashed: ${error.message}`, { cause: error })));
    this.exited = new Promise((resolve) => this.worker.once('exit', () => {
      this.#fail(new Error(`load generator worker ${setup.index} exited`));
      resolve();
    }));
  }

  expect<T extends FromWorker['type']>(type: T): Promise<Reply<T>> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const queue = this.#waiting.get(type) ?? [];
      queue.push({ resolve: resolve as (message: FromWorker) => void, reject });
      this.#waiting.set(type, queue);
    });
  }

  ask<T extends FromWorker['type']>(message: ToWorker, reply: T): Promise<Reply<T>> {
    const answer = this.expect(reply);
    if (this.#failure === null) this.worker.postMessage(message);
    return answer;
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const queue of this.#waiting.values()) for (const waiter of queue.splice(0)) waiter.reject(this.#failure);
  }
}

export class LoadGenerator {
  readonly #workers: WorkerHandle[];
  readonly #previous: FleetCounters[];
  readonly clients: number;
  #closed = false;

  private constructor(workers: WorkerHandle[], clients: number) {
    this.#workers = workers;
    this.#previous = workers.map(() => zeroCounters());
    this.clients = clients;
  }

  get workers(): number {
    return this.#workers.length;
  }

  /** Starts the worker threads (each makes its devices' keys) and waits until they are ready. */
  static async start(options: LoadOptions): Promise<LoadGenerator> {
    const count = Math.max(1, Math.min(options.clients, options.workers ?? availableParallelism()));
    const handles: WorkerHandle[] = [];
    for (let index = 0; index < count; index++) {
      // Devices split as evenly as possible; each worker's rates in proportion to its devices.
      const devices = Math.floor(options.clients / count) + (index < options.clients % count ? 1 : 0);
      const share = devices / options.clients;
      handles.push(new WorkerHandle({
        index,
        host: options.host,
        port: options.port,
        serverPublicKey: new Uint8Array(options.serverPublicKey),
        devices,
        payloadBytes: options.payloadBytes,
        requestsPerSecond: options.requestsPerSecond === null ? null : options.requestsPerSecond * share,
        handshakesPerSecond: options.handshakesPerSecond * share,
        ...(options.exchange === undefined ? {} : { exchange: options.exchange }),
      }, options.workerExecArgv));
    }
    const load = new LoadGenerator(handles, options.clients);
    try {
      await Promise.all(handles.map((handle) => handle.expect('ready')));
    } catch (error) {
      await load.close();
      throw error;
    }
    return load;
  }

  /** The start-up: every device handshakes, paced. Failed devices try again once the run starts. */
  async connect(): Promise<StartupResult> {
    const started = performance.now();
    const results = await Promise.all(this.#workers.map((handle) => handle.ask({ type: 'connect' }, 'connected')));
    return {
      connected: results.reduce((sum, result) => sum + result.connected, 0),
      failed: results.reduce((sum, result) => sum + result.failed, 0),
      durationMs: performance.now() - started,
      lastError: results.find((result) => result.lastError !== null)?.lastError ?? null,
    };
  }

  /** Every device starts its request loop. */
  async run(): Promise<void> {
    await Promise.all(this.#workers.map((handle) => handle.ask({ type: 'start' }, 'started')));
  }

  async sample(): Promise<LoadSample> {
    const replies = await Promise.all(this.#workers.map((handle) => handle.ask({ type: 'sample' }, 'sample')));
    return this.#merge(replies.map((reply) => reply.sample));
  }

  /** No new requests; those in flight get `graceMs` to be answered or given up. */
  async stop(graceMs: number): Promise<{ unanswered: number; sample: LoadSample }> {
    const replies = await Promise.all(this.#workers.map((handle) => handle.ask({ type: 'stop', graceMs }, 'stopped')));
    return { unanswered: replies.reduce((sum, reply) => sum + reply.unanswered, 0), sample: this.#merge(replies.map((reply) => reply.sample)) };
  }

  /** Closes every device's socket and ends the threads. Idempotent; never throws. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#workers.map(async (handle) => {
      // A worker that does not say goodbye within a few seconds is ended anyway.
      const timer = setTimeout(() => void handle.worker.terminate(), 5_000);
      await handle.ask({ type: 'close' }, 'closed').catch(() => undefined);
      clearTimeout(timer);
      await handle.worker.terminate().catch(() => undefined);
      await handle.exited;
    }));
  }

  #merge(samples: WorkerSample[]): LoadSample {
    let delta = zeroCounters();
    let totals = zeroCounters();
    const latency = new LatencyHistogram();
    samples.forEach((sample, index) => {
      delta = mergeCounters(delta, diffCounters(sample.counters, this.#previous[index]!));
      totals = mergeCounters(totals, sample.counters);
      this.#previous[index] = sample.counters;
      latency.add(sample.latency);
    });
    delta.latencyMaxMs = latency.maxMs() ?? 0;
    return {
      at: performance.now(),
      delta,
      totals,
      latency,
      clients: samples.reduce((sum, sample) => sum + sample.clients, 0),
      inFlight: samples.reduce((sum, sample) => sum + sample.inFlight, 0),
      loopDelayMaxMs: Math.max(...samples.map((sample) => sample.loopDelayMaxMs)),
      loopDelayP99Ms: Math.max(...samples.map((sample) => sample.loopDelayP99Ms)),
      utilization: samples.map((sample) => sample.utilization),
    };
  }
}
