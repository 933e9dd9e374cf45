import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { CloseInfo, DtlsClientState, DtlsClientStats } from '../../client/index.ts';
import { zeroCounters, type FleetCounters } from '../../loadgen/counters.ts';
import { DeviceFleet, type DeviceClient, type FleetOptions, type Gate } from '../../loadgen/fleet.ts';

/**
 * The simulated devices on fake timers, with a stand-in for the relay behind their DTLS clients: what each device
 * sends and when, to the millisecond, and what the fleet counts. The DTLS client itself is tested in test/client;
 * DeviceFleet over real DTLS runs in the load generator's and the update's end-to-end tests.
 */

type RelayMode = 'echo' | 'silent';

/** The other end: answers each datagram after `delayMs` (echo), or never (silent); refuses handshakes when told. */
class StandInRelay {
  mode: RelayMode = 'echo';
  delayMs = 10;
  refuseHandshakes = false;
  /** Every datagram received: which client (by creation order), what, and when. */
  readonly received: { client: number; payload: string; at: number }[] = [];
  readonly clients: StandInClient[] = [];

  client(): StandInClient {
    const client = new StandInClient(this, this.clients.length);
    this.clients.push(client);
    return client;
  }

  receive(client: StandInClient, payload: Buffer): void {
    this.received.push({ client: client.id, payload: payload.toString().trim(), at: performance.now() });
    if (this.mode === 'echo') setTimeout(() => client.deliver(Buffer.from(payload)), this.delayMs);
  }
}

class StandInClient extends EventEmitter implements DeviceClient {
  state: DtlsClientState = 'idle';
  readonly stats: DtlsClientStats = { handshakes: 0, handshakeRetransmissions: 0, recordsIn: 0, recordsOut: 0, bytesIn: 0, bytesOut: 0, replaysDropped: 0, badRecordsDropped: 0, lateHandshakeRecords: 0, socketErrors: 0, lastInboundSeq: -1, lastOutboundSeq: -1 };
  readonly #relay: StandInRelay;
  readonly id: number;

  constructor(relay: StandInRelay, id: number) {
    super();
    this.#relay = relay;
    this.id = id;
  }

  async connect(): Promise<void> {
    if (this.#relay.refuseHandshakes) {
      this.state = 'closed';
      throw new Error('handshake refused');
    }
    this.state = 'established';
    this.stats.handshakes++;
  }

  send(payload: Buffer): void {
    if (this.state !== 'established') throw new Error('not established');
    this.stats.recordsOut++;
    this.#relay.receive(this, payload);
  }

  deliver(payload: Buffer): void {
    if (this.state !== 'established') return;
    this.stats.recordsIn++;
    this.emit('message', payload);
  }

  /** The relay ends the session (an alert). */
  lose(): void {
    this.state = 'closed';
    this.emit('close', { reason: 'fatal-alert', alert: 'internal_error' } satisfies CloseInfo);
  }

  async close(): Promise<void> {
    this.state = 'closed';
  }
}

function counters(values: Partial<FleetCounters>): FleetCounters {
  return { ...zeroCounters(), ...values };
}

describe('DeviceFleet', () => {
  let relay: StandInRelay;
  const fleets: DeviceFleet[] = [];

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'], now: 0 });
    relay = new StandInRelay();
  });

  afterEach(async () => {
    // Real timers first: stopping waits on a timer, and the devices' own fake ones are dropped with the fleet.
    vi.useRealTimers();
    for (const fleet of fleets.splice(0)) await fleet.close();
  });

  /** fleet.stop(graceMs) with the fake clock moved through the grace period. */
  async function stop(devices: DeviceFleet, graceMs: number): Promise<{ unanswered: number }> {
    const stopped = devices.stop(graceMs);
    await vi.advanceTimersByTimeAsync(graceMs);
    return stopped;
  }

  /** random() = 0.5: the first request halfway into the interval, think times of exactly the interval. */
  function fleet(options: Partial<FleetOptions> = {}): DeviceFleet {
    const made = new DeviceFleet({ host: 'stand-in', port: 0, serverPublicKey: Buffer.alloc(0), devices: 2, requestIntervalMs: 20, random: () => 0.5, newClient: () => relay.client(), ...options });
    fleets.push(made);
    return made;
  }

  /** What device `index` sent (its requests are tagged `index:sequence:`), with the times. */
  function sentBy(index: number): string[] {
    return relay.received.filter((datagram) => datagram.payload.startsWith(`${index}:`)).map((datagram) => `${datagram.payload}@${datagram.at}`);
  }

  test('each device sends its next request one think time after the answer; every round trip is counted', async () => {
    const devices = fleet();
    expect(await devices.connect()).toEqual({ connected: 2, failed: 0, lastError: null });
    devices.start();
    // First request at 10 ms (half an interval), answered at 20, the next 20 ms later: at 10, 40, 70, 100.
    await vi.advanceTimersByTimeAsync(100);
    expect(sentBy(0)).toEqual(['0:0:@10', '0:1:@40', '0:2:@70', '0:3:@100']);
    expect(sentBy(1)).toEqual(['1:0:@10', '1:1:@40', '1:2:@70', '1:3:@100']);
    expect(devices.inFlight).toBe(2);
    expect(await stop(devices, 1_000)).toEqual({ unanswered: 0 });
    expect(devices.snapshot()).toEqual(counters({ requests: 8, answered: 8, handshakes: 2, latencySumMs: 80, latencyMaxMs: 10 }));
    expect(devices.connected).toBe(2);
  });

  test('an unanswered request is sent 4 more times with doubling timeouts, then it is an error and the device handshakes again', async () => {
    relay.mode = 'silent';
    // random() = 0: the ACK timeout is exactly 20 ms (no random factor), and the next request follows half an interval after the error.
    const devices = fleet({ devices: 1, random: () => 0, exchange: { ackTimeoutMs: 20 } });
    await devices.connect();
    devices.start();
    await vi.advanceTimersByTimeAsync(619);
    // 0, then 20, 40, 80 and 160 ms later.
    expect(sentBy(0)).toEqual(['0:0:@0', '0:0:@20', '0:0:@60', '0:0:@140', '0:0:@300']);
    expect(devices.snapshot()).toEqual(counters({ requests: 1, retransmissions: 4, handshakes: 1 }));
    // The last wait (320 ms) ends at 620: given up. The device drops its session, thinks 10 ms, handshakes, asks again.
    await vi.advanceTimersByTimeAsync(1);
    expect(devices.snapshot()).toEqual(counters({ requests: 1, retransmissions: 4, transmissionErrors: 1, handshakes: 1 }));
    await vi.advanceTimersByTimeAsync(10);
    expect(devices.snapshot()).toEqual(counters({ requests: 2, retransmissions: 4, transmissionErrors: 1, handshakes: 2 }));
    expect(relay.received.at(-1)).toEqual({ client: 1, payload: '0:1:', at: 630 });
    expect(relay.clients[0]!.state).toBe('closed');
    expect(await stop(devices, 0)).toEqual({ unanswered: 1 });
  });

  test('a session the relay ends fails the request in flight at once; the device handshakes again', async () => {
    relay.delayMs = 50;
    const devices = fleet({ devices: 1 });
    await devices.connect();
    devices.start();
    await vi.advanceTimersByTimeAsync(20);
    expect(devices.inFlight).toBe(1);
    relay.clients[0]!.lose();
    expect(devices.snapshot()).toEqual(counters({ requests: 1, transmissionErrors: 1, sessionsLost: 1, handshakes: 1 }));
    // Think time (20 ms), then a new session and the next request on it.
    await vi.advanceTimersByTimeAsync(20);
    expect(relay.clients).toHaveLength(2);
    expect(relay.received.map((datagram) => `${datagram.client} ${datagram.payload}`)).toEqual(['0 0:0:', '1 0:1:']);
    expect(devices.snapshot()).toMatchObject({ handshakes: 2, requests: 2 });
  });

  test('a late answer to a request given up, or a second answer, counts as a duplicate', async () => {
    relay.delayMs = 30;
    const devices = fleet({ devices: 1, random: () => 0, exchange: { ackTimeoutMs: 20, maxRetransmit: 1 } });
    await devices.connect();
    devices.start();
    // Sent at 0, again at 20; the first answer (30) ends the exchange, the next request goes at 40, and the answer
    // to the retransmission (50) matches nothing in flight: a duplicate.
    await vi.advanceTimersByTimeAsync(50);
    expect(devices.snapshot()).toEqual(counters({ requests: 2, answered: 1, retransmissions: 1, duplicates: 1, handshakes: 1, latencySumMs: 30, latencyMaxMs: 30 }));
  });

  test('a window counts what happened between open and close, with its own slowest answer', async () => {
    const devices = fleet({ devices: 1 });
    await devices.connect();
    devices.start();
    relay.delayMs = 15;
    await vi.advanceTimersByTimeAsync(40);
    // Sent at 10 (answered at 25), the next at 45.
    const window = devices.openWindow();
    relay.delayMs = 5;
    await vi.advanceTimersByTimeAsync(30);
    // Sent at 45 (answered at 50), the next at 70, still in flight.
    expect(window.close()).toEqual(counters({ requests: 2, answered: 1, latencySumMs: 5, latencyMaxMs: 5 }));
    expect(devices.inFlight).toBe(1);
    expect(devices.snapshot().latencyMaxMs).toBe(15);
  });

  test('until() resolves on the counted event itself', async () => {
    const devices = fleet();
    await devices.connect();
    devices.start();
    let answered = -1;
    void devices.until('4 answers', (seen) => seen.answered >= 4).then(() => (answered = devices.snapshot().answered));
    // Two answers at 20, two at 50.
    await vi.advanceTimersByTimeAsync(49);
    expect(answered).toBe(-1);
    await vi.advanceTimersByTimeAsync(1);
    expect(answered).toBe(4);
    const never = devices.until('an error', (seen) => seen.transmissionErrors > 0, 1_000);
    const outcome = never.catch((error: Error) => error.message);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await outcome).toMatch(/^devices: an error did not happen within 1000 ms; counters \{"requests":/);
  });

  test('handshakes go through the start-up gate; requests wait for the request gate, retransmissions do not', async () => {
    const taken: string[] = [];
    const gate = (name: string): Gate => ({ take: () => void taken.push(`${name}@${performance.now()}`) });
    relay.mode = 'silent';
    const devices = fleet({ devices: 2, random: () => 0, exchange: { ackTimeoutMs: 20, maxRetransmit: 1 }, handshakeGate: gate('handshake'), requestGate: gate('request') });
    await devices.connect();
    devices.start();
    await vi.advanceTimersByTimeAsync(30);
    expect(taken).toEqual(['handshake@0', 'handshake@0', 'request@0', 'request@0']);
    expect(devices.snapshot()).toMatchObject({ requests: 2, retransmissions: 2 });
  });

  test('failed handshakes: connect() rejects naming the device, or with tolerateFailures counts them and the devices try again every second', async () => {
    relay.refuseHandshakes = true;
    await expect(fleet({ devices: 1 }).connect()).rejects.toThrow('device 0 could not handshake with stand-in:0: handshake refused');
    const devices = fleet({ devices: 2 });
    expect(await devices.connect({ tolerateFailures: true })).toMatchObject({ connected: 0, failed: 2, lastError: { message: 'handshake refused' } });
    devices.start();
    // At 10 ms each tries again and fails, then waits a second.
    await vi.advanceTimersByTimeAsync(1_009);
    expect(devices.snapshot()).toMatchObject({ handshakeFailures: 4, handshakes: 0, requests: 0 });
    relay.refuseHandshakes = false;
    await vi.advanceTimersByTimeAsync(1);
    expect(devices.snapshot()).toMatchObject({ handshakeFailures: 4, handshakes: 2, requests: 2 });
  });

  test('stop() gives requests in flight the grace period, then reports them unanswered; sessions() shows each device\'s session', async () => {
    relay.delayMs = 500;
    const devices = fleet();
    expect(devices.sessions()).toEqual([null, null]);
    await devices.connect();
    devices.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(await stop(devices, 100)).toEqual({ unanswered: 2 });
    expect(devices.snapshot()).toMatchObject({ requests: 2, answered: 0, transmissionErrors: 0 });
    expect(devices.sessions().map((session) => session?.recordsOut)).toEqual([1, 1]);
  });

  test('refuses a fleet of no devices', () => {
    expect(() => fleet({ devices: 0 })).toThrow(/devices: expected a whole number of at least 1, got 0/);
  });
});
