import type { FleetCounters } from './counters.ts';
import type { ExchangeParams } from './fleet.ts';
import type { HistogramData } from './histogram.ts';

/** What the main thread and a load-generator worker (worker.ts) say to each other. Plain data: structured clone. */

export interface WorkerSetup {
  index: number;
  host: string;
  port: number;
  /** SPKI DER of the relays' DTLS key. */
  serverPublicKey: Uint8Array;
  devices: number;
  payloadBytes: number;
  /** This worker's share of --rate; null: no cap. */
  requestsPerSecond: number | null;
  /** This worker's share of --handshake-rate. */
  handshakesPerSecond: number;
  exchange?: Partial<ExchangeParams>;
}

export type ToWorker =
  | { type: 'connect' }
  | { type: 'start' }
  | { type: 'sample' }
  | { type: 'stop'; graceMs: number }
  | { type: 'close' };

export interface WorkerSample {
  /** Cumulative since the worker began (start-up included). */
  counters: FleetCounters;
  /** Round trips answered since the previous sample. */
  latency: HistogramData;
  /** Devices with an established session now. */
  clients: number;
  /** Requests waiting for their answer now. */
  inFlight: number;
  /** The worker's event-loop delay since the previous sample: how late its timers and sockets were served. */
  loopDelayMaxMs: number;
  loopDelayP99Ms: number;
  /** Share of wall time the worker's event loop was busy since the previous sample (0..1). */
  utilization: number;
}

export interface HandshakeErrorInfo {
  code: string | null;
  message: string;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'connected'; connected: number; failed: number; lastError: HandshakeErrorInfo | null }
  | { type: 'started' }
  | { type: 'sample'; sample: WorkerSample }
  | { type: 'stopped'; unanswered: number; sample: WorkerSample }
  | { type: 'closed' }
  | { type: 'failed'; message: string };
