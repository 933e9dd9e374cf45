import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { DeviceFleet, diffCounters, mergeCounters, zeroCounters } from '../../cli/devices/fleet.ts';
import { generateDtlsKeyPair } from '../../pki/certificates.ts';
import { adapterOnLoopback } from '../helpers/adapter-harness.ts';

/** The simulated devices against the relay's DTLS adapter on loopback (in process, real node-mbed-dtls). */

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('DeviceFleet', () => {
  let serverKey: Buffer;
  let publicKey: Buffer;
  const open: { close(): unknown }[] = [];

  beforeAll(async () => {
    const pair = await generateDtlsKeyPair();
    serverKey = Buffer.from(pair.privateKeyPkcs8Pem);
    publicKey = pair.publicKeySpkiDer;
  });

  afterEach(async () => {
    for (const item of open.splice(0).reverse()) await item.close();
  });

  async function fleetAgainst(echo: boolean, devices: number, exchange = {}): Promise<DeviceFleet> {
    const server = await adapterOnLoopback(serverKey, { echo });
    open.push(server);
    const fleet = new DeviceFleet({ host: '127.0.0.1', port: server.port, serverPublicKey: publicKey, devices, requestIntervalMs: 20, exchange });
    open.push(fleet);
    return fleet;
  }

  test('each device sends its next request when the answer came; everything is counted', async () => {
    const fleet = await fleetAgainst(true, 5);
    await fleet.connect();
    expect(fleet.connected).toBe(5);
    fleet.start();
    await sleep(400);
    const { unanswered } = await fleet.stop(2000);
    const counters = fleet.snapshot();
    expect(unanswered).toBe(0);
    expect(counters.requests).toBeGreaterThan(25);
    expect(counters).toMatchObject({ answered: counters.requests, retransmissions: 0, transmissionErrors: 0, handshakes: 5, handshakeFailures: 0, sessionsLost: 0 });
    expect(counters.latencyMaxMs).toBeGreaterThan(0);
  });

  test('an unanswered request is retransmitted 4 times with doubling timeouts, then counted as a transmission error, and the device handshakes again', async () => {
    // 20 ms ACK timeout: the whole exchange gives up after 20..30 ms x (1+2+4+8+16), well under a second.
    const fleet = await fleetAgainst(false, 2, { ackTimeoutMs: 20 });
    await fleet.connect();
    fleet.start();
    await sleep(1500);
    const { unanswered } = await fleet.stop(0);
    const counters = fleet.snapshot();
    expect(counters.transmissionErrors).toBeGreaterThanOrEqual(2);
    expect(counters.answered).toBe(0);
    // Four retransmissions per request given up; the ones still in flight add a few.
    expect(counters.retransmissions).toBeGreaterThanOrEqual(4 * counters.transmissionErrors);
    expect(counters.retransmissions).toBeLessThanOrEqual(4 * (counters.transmissionErrors + unanswered));
    // Each give-up starts a new handshake; at stop, up to one per device may still be under way.
    expect(counters.handshakes).toBeGreaterThanOrEqual(counters.transmissionErrors);
    expect(counters.handshakes).toBeLessThanOrEqual(2 + counters.transmissionErrors);
    expect(counters.requests).toBe(counters.transmissionErrors + unanswered);
  });

  test('a window reports what happened between open and close, with its own slowest answer', async () => {
    const fleet = await fleetAgainst(true, 3);
    await fleet.connect();
    fleet.start();
    await sleep(200);
    const window = fleet.openWindow();
    const atOpen = fleet.snapshot();
    await sleep(200);
    const seen = window.close();
    await fleet.stop(2000);
    expect(seen.requests).toBeGreaterThan(0);
    expect(seen.handshakes).toBe(0);
    expect(seen.latencyMaxMs).toBeLessThanOrEqual(fleet.snapshot().latencyMaxMs);
    expect(seen.requests).toBeLessThanOrEqual(fleet.snapshot().requests - atOpen.requests);
  });

  test('counters add up across fleets (worker threads) and subtract between snapshots', () => {
    const a = { ...zeroCounters(), requests: 10, answered: 9, latencyMaxMs: 30 };
    const b = { ...zeroCounters(), requests: 5, answered: 5, handshakes: 2, latencyMaxMs: 80 };
    expect(mergeCounters(a, b)).toMatchObject({ requests: 15, answered: 14, handshakes: 2, latencyMaxMs: 80 });
    expect(diffCounters(mergeCounters(a, b), a)).toMatchObject({ requests: 5, answered: 5, handshakes: 2 });
  });

  test('refuses a fleet of no devices', () => {
    expect(() => new DeviceFleet({ host: '127.0.0.1', port: 1, serverPublicKey: Buffer.alloc(0), devices: 0 })).toThrow(/devices: expected a whole number of at least 1, got 0/);
  });
});
