import type { KeyObject } from 'node:crypto';
import { DtlsClient, generateDeviceKey, type CloseInfo, type DeviceKey, type DtlsClientState, type DtlsClientStats } from '../client/index.ts';
import { diffCounters, zeroCounters, type FleetCounters } from './counters.ts';

/**
 * Simulated devices, as Californium's benchmark client runs them: each device keeps one DTLS session and sends
 * a confirmable-style request, then the next one when the answer came (after a think time). An unanswered
 * request is retransmitted after the CoAP ACK timeout (2 s times a random factor up to 1.5, doubling), at most 4
 * times; after the last timeout it is a transmission error, and the device, assuming its session is lost,
 * handshakes again.
 *
 * Everything the devices saw is counted in plain numbers (counters.ts), so a load generator (generator.ts) runs
 * one DeviceFleet per worker thread and sums them. A load generator also caps the request rate and paces the
 * start-up handshakes (gates), and records every round trip in its own histogram (a recorder).
 */

/** CoAP transmission parameters (RFC 7252, 4.8). */
export interface ExchangeParams {
  ackTimeoutMs: number;
  ackRandomFactor: number;
  maxRetransmit: number;
}

export const COAP_EXCHANGE: Readonly<ExchangeParams> = Object.freeze({ ackTimeoutMs: 2000, ackRandomFactor: 1.5, maxRetransmit: 4 });

/** A rate cap (pacer.ts): undefined means go now, a promise resolves when it is the caller's turn. */
export interface Gate {
  take(): Promise<void> | undefined;
}

/** Where every answered request's round trip goes (a histogram per worker thread). */
export interface LatencyRecorder {
  recordMs(ms: number): void;
}

/** What a device needs of its DTLS client: DtlsClient, or a stand-in in tests of the fleet itself. */
export interface DeviceClient {
  readonly state: DtlsClientState;
  readonly stats: Readonly<DtlsClientStats>;
  connect(): Promise<void>;
  send(payload: Buffer): void;
  close(options: { notify: boolean }): Promise<void>;
  on(event: 'message', listener: (payload: Buffer) => void): unknown;
  on(event: 'close', listener: (info: CloseInfo) => void): unknown;
}

export interface FleetOptions {
  host: string;
  port: number;
  /** The relay's DTLS public key (SPKI DER or KeyObject): devices pin it. */
  serverPublicKey: Buffer | KeyObject;
  devices: number;
  /** Handshakes in flight while connecting, so the relays' handshake CPU is not swamped. Default 16. */
  connectConcurrency?: number;
  /** Pause between an answer and the next request, jittered by +-50% so devices do not march in step. Default 1 s. */
  requestIntervalMs?: number;
  /** Request size; the echo returns the same bytes. Default 32. */
  payloadBytes?: number;
  exchange?: Partial<ExchangeParams>;
  handshakeTimeoutMs?: number;
  /** Uniform [0, 1); swappable for reproducible tests. */
  random?: () => number;
  /** Monotonic milliseconds, for latencies. */
  now?: () => number;
  /** Every request waits for it before its first transmission (retransmissions do not): a rate cap. */
  requestGate?: Gate;
  /** connect() starts each handshake only when it lets it (start-up pacing); later re-handshakes are not paced. */
  handshakeGate?: Gate;
  latency?: LatencyRecorder;
  /** Makes each session's client (default: a DtlsClient to host:port pinning serverPublicKey). */
  newClient?: (key: DeviceKey) => DeviceClient;
}

export interface ConnectResult {
  connected: number;
  failed: number;
  /** The last handshake failure (a DtlsClientError, whose code says why), or null. */
  lastError: Error | null;
}

/** Counters from open() to close(), with the true maximum latency of that span. */
export interface FleetWindow {
  close(): FleetCounters;
}

type Outcome = 'answered' | 'error' | 'stopped';

interface Device {
  readonly index: number;
  readonly key: DeviceKey;
  client: DeviceClient | null;
  sequence: number;
  /** The request waiting for its answer. */
  pending: { payload: Buffer; finish(outcome: Outcome): void } | null;
}

export interface StopResult {
  /** Requests still waiting for an answer when the grace period ended (neither answered nor given up). */
  unanswered: number;
}

export class DeviceFleet {
  readonly #options: Required<Omit<FleetOptions, 'exchange' | 'requestGate' | 'handshakeGate' | 'latency' | 'newClient'>> & { exchange: ExchangeParams };
  readonly #newClient: (key: DeviceKey) => DeviceClient;
  readonly #requestGate: Gate | null;
  readonly #handshakeGate: Gate | null;
  readonly #latency: LatencyRecorder | null;
  #lastHandshakeError: Error | null = null;
  readonly #devices: Device[];
  readonly #counters = zeroCounters();
  readonly #windows = new Set<{ max: number }>();
  /** until() callers, checked whenever a counter changes. */
  readonly #watchers = new Set<{ test(counters: FleetCounters): boolean; resolve(): void }>();
  #running = false;
  #loops: Promise<void>[] = [];
  /**
   * Devices that are thinking, waiting for the gate or waiting to reconnect, woken when the fleet stops. A plain
   * set rather than listeners on an AbortSignal: a listener per request cost the load generator a fifth of its CPU.
   */
  readonly #sleepers = new Set<() => void>();

  constructor(options: FleetOptions) {
    if (!Number.isInteger(options.devices) || options.devices < 1) throw new RangeError(`devices: expected a whole number of at least 1, got ${options.devices}`);
    this.#options = {
      host: options.host,
      port: options.port,
      serverPublicKey: options.serverPublicKey,
      devices: options.devices,
      connectConcurrency: options.connectConcurrency ?? 16,
      requestIntervalMs: options.requestIntervalMs ?? 1000,
      payloadBytes: Math.max(16, options.payloadBytes ?? 32),
      exchange: { ...COAP_EXCHANGE, ...options.exchange },
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 20_000,
      random: options.random ?? Math.random,
      now: options.now ?? (() => performance.now()),
    };
    const { host, port, serverPublicKey, handshakeTimeoutMs } = this.#options;
    this.#newClient = options.newClient ?? ((clientKey) => new DtlsClient({ host, port, serverPublicKey, clientKey, handshakeTimeoutMs }));
    this.#requestGate = options.requestGate ?? null;
    this.#handshakeGate = options.handshakeGate ?? null;
    this.#latency = options.latency ?? null;
    this.#devices = Array.from({ length: options.devices }, (_, index) => ({ index, key: generateDeviceKey(), client: null, sequence: 0, pending: null }));
  }

  get size(): number {
    return this.#devices.length;
  }

  /** Devices with an established session now. */
  get connected(): number {
    return this.#devices.filter((device) => device.client?.state === 'established').length;
  }

  /** Requests waiting for their answer now. */
  get inFlight(): number {
    return this.#devices.filter((device) => device.pending !== null).length;
  }

  /** Cumulative counters since the fleet was made. */
  snapshot(): FleetCounters {
    return { ...this.#counters };
  }

  /** Each device's current session as its DTLS client counts it (sequence numbers, replays dropped); null before its first handshake. */
  sessions(): (Readonly<DtlsClientStats> | null)[] {
    return this.#devices.map((device) => (device.client === null ? null : { ...device.client.stats }));
  }

  openWindow(): FleetWindow {
    const start = this.snapshot();
    const window = { max: 0 };
    this.#windows.add(window);
    return {
      close: () => {
        this.#windows.delete(window);
        return { ...diffCounters(this.snapshot(), start), latencyMaxMs: window.max };
      },
    };
  }

  /**
   * Resolves as soon as the counters satisfy `test` (checked now and after every change): wait for what the
   * devices did, not for time to pass. Rejects after `timeoutMs` of real time, saying what it waited for.
   */
  until(what: string, test: (counters: FleetCounters) => boolean, timeoutMs = 30_000): Promise<void> {
    if (test(this.#counters)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const watcher = {
        test,
        resolve: () => {
          clearTimeout(timer);
          this.#watchers.delete(watcher);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#watchers.delete(watcher);
        reject(new Error(`devices: ${what} did not happen within ${timeoutMs} ms; counters ${JSON.stringify(this.#counters)}`));
      }, timeoutMs);
      this.#watchers.add(watcher);
    });
  }

  /** Why the last handshake failed (a DtlsClientError), or null. */
  get lastHandshakeError(): Error | null {
    return this.#lastHandshakeError;
  }

  /**
   * Handshakes every device, a few at a time (and no faster than the handshake gate lets). Rejects when a device
   * cannot connect: the relays are not there. With `tolerateFailures` it goes on instead and reports how many
   * failed; those devices handshake again from their request loop once the fleet starts.
   */
  async connect(options: { tolerateFailures?: boolean } = {}): Promise<ConnectResult> {
    let next = 0;
    let failed = 0;
    const worker = async (): Promise<void> => {
      while (next < this.#devices.length) {
        const device = this.#devices[next++] as Device;
        await this.#handshakeGate?.take();
        if (await this.#handshake(device)) continue;
        failed++;
        if (!options.tolerateFailures) {
          const cause = this.#lastHandshakeError;
          throw new Error(`device ${device.index} could not handshake with ${this.#options.host}:${this.#options.port}${cause === null ? '' : `: ${cause.message}`}`, { cause });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#options.connectConcurrency, this.#devices.length) }, worker));
    return { connected: this.#devices.length - failed, failed, lastError: this.#lastHandshakeError };
  }

  /** Starts every device's request loop. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loops = this.#devices.map((device) => this.#loop(device));
  }

  /**
   * No new requests; requests in flight get `graceMs` to be answered or given up, then are cancelled and
   * reported as unanswered.
   */
  async stop(graceMs: number): Promise<StopResult> {
    this.#running = false;
    for (const wake of [...this.#sleepers]) wake();
    this.#sleepers.clear();
    const all = Promise.all(this.#loops).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([all, new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)))]);
    clearTimeout(timer);
    let unanswered = 0;
    if (!finished) {
      for (const device of this.#devices) {
        if (device.pending !== null) {
          unanswered++;
          device.pending.finish('stopped');
        }
      }
      await all;
    }
    this.#loops = [];
    return { unanswered };
  }

  /** Closes every session without close_notify (the devices just go away). */
  async close(): Promise<void> {
    if (this.#running) await this.stop(0);
    await Promise.all(this.#devices.map((device) => device.client?.close({ notify: false }).catch(() => undefined)));
  }

  async #loop(device: Device): Promise<void> {
    // Spread the first requests over one interval.
    await this.#pause(this.#options.random() * this.#options.requestIntervalMs);
    while (this.#running) {
      if (device.client?.state !== 'established') {
        if (!(await this.#handshake(device))) {
          await this.#pause(1000);
          continue;
        }
      }
      if (this.#requestGate !== null && !(await this.#waitTurn(this.#requestGate))) return;
      const outcome = await this.#exchange(device);
      if (outcome === 'stopped') return;
      if (outcome === 'error') {
        // A device that got no answer assumes its session is gone and starts a new one.
        await device.client?.close({ notify: false }).catch(() => undefined);
      }
      await this.#pause(this.#options.requestIntervalMs * (0.5 + this.#options.random()));
    }
  }

  /** A counter changed: wakes the until() callers it satisfies. */
  #counted(): void {
    if (this.#watchers.size === 0) return;
    for (const watcher of [...this.#watchers]) if (watcher.test(this.#counters)) watcher.resolve();
  }

  async #handshake(device: Device): Promise<boolean> {
    await device.client?.close({ notify: false }).catch(() => undefined);
    const client = this.#newClient(device.key);
    device.client = client;
    try {
      await client.connect();
    } catch (error) {
      this.#counters.handshakeFailures++;
      this.#lastHandshakeError = error as Error;
      this.#counted();
      return false;
    }
    this.#counters.handshakes++;
    this.#counted();
    client.on('message', (reply) => {
      const pending = device.pending;
      if (pending !== null && reply.equals(pending.payload)) pending.finish('answered');
      else {
        this.#counters.duplicates++;
        this.#counted();
      }
    });
    client.on('close', (info) => {
      if (info.reason === 'local') return;
      this.#counters.sessionsLost++;
      this.#counted();
      // The request in flight cannot be answered on this session any more.
      device.pending?.finish('error');
    });
    return true;
  }

  #exchange(device: Device): Promise<Outcome> {
    const client = device.client as DeviceClient;
    const { ackTimeoutMs, ackRandomFactor, maxRetransmit } = this.#options.exchange;
    const payload = Buffer.alloc(this.#options.payloadBytes, 0x20);
    payload.write(`${device.index}:${device.sequence++}:`);
    this.#counters.requests++;
    const startedAt = this.#options.now();
    return new Promise<Outcome>((resolve) => {
      let retransmissions = 0;
      let timeoutMs = ackTimeoutMs * (1 + this.#options.random() * (ackRandomFactor - 1));
      let timer: NodeJS.Timeout | undefined;
      const finish = (outcome: Outcome): void => {
        if (device.pending !== pending) return;
        clearTimeout(timer);
        device.pending = null;
        if (outcome === 'answered') {
          const latency = this.#options.now() - startedAt;
          this.#counters.answered++;
          this.#counters.latencySumMs += latency;
          this.#counters.latencyMaxMs = Math.max(this.#counters.latencyMaxMs, latency);
          this.#latency?.recordMs(latency);
          for (const window of this.#windows) window.max = Math.max(window.max, latency);
        } else if (outcome === 'error') {
          this.#counters.transmissionErrors++;
        }
        this.#counted();
        resolve(outcome);
      };
      const pending = { payload, finish };
      const transmit = (): boolean => {
        try {
          client.send(payload);
          return true;
        } catch {
          finish('error');
          return false;
        }
      };
      const arm = (): void => {
        timer = setTimeout(() => {
          if (retransmissions >= maxRetransmit) {
            finish('error');
            return;
          }
          retransmissions++;
          this.#counters.retransmissions++;
          this.#counted();
          timeoutMs *= 2;
          if (transmit()) arm();
        }, timeoutMs);
      };
      device.pending = pending;
      this.#counted();
      if (transmit()) arm();
    });
  }

  /** Waits for the gate; false when the fleet stopped meanwhile. */
  async #waitTurn(gate: Gate): Promise<boolean> {
    const turn = gate.take();
    if (turn !== undefined && this.#running) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.#sleepers.delete(wake);
          resolve();
        };
        this.#sleepers.add(wake);
        void turn.then(wake);
      });
    }
    return this.#running;
  }

  /** Sleeps, or returns early when the fleet stops. */
  #pause(ms: number): Promise<void> {
    if (!this.#running || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }
}
