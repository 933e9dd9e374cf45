import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DtlsClient, spkiDer } from '../../client/index.ts';
import { ManagementClient } from '../../api/management-client.ts';
import { DEVICE_FINGERPRINT_BYTES, deviceFingerprint } from '../../api/device-identity.ts';
import { ensureLocalPki } from '../../orchestrator/platform/local/pki.ts';
import { UpstreamEcho } from '../../orchestrator/platform/local/upstream-echo.ts';
import { closeAll, connectDevices, generateDeviceKey, request } from '../support/devices.ts';
import { metricValue, startRelay, testPki, type RelayProcess } from '../support/relayd.ts';

type Env = Awaited<ReturnType<typeof testPki>>;

function sendRaw(port: number, datagram: Buffer, from?: dgram.Socket): Promise<void> {
  const socket = from ?? dgram.createSocket('udp4');
  return new Promise((resolve) => socket.send(datagram, port, '127.0.0.1', () => {
    if (from === undefined) socket.close();
    resolve();
  }));
}

describe('relayd', () => {
  let env: Env;
  let echo: UpstreamEcho;
  let upstream: string;
  let relay: RelayProcess;

  beforeAll(async () => {
    env = await testPki();
    echo = new UpstreamEcho();
    const address = await echo.listen();
    upstream = `127.0.0.1:${address.port}`;
    relay = await startRelay(env.pki, { name: 'relay-a-0', upstream });
  });

  afterAll(async () => {
    await relay?.stop();
    await echo?.close();
    await env?.cleanup();
  });

  it('terminates many DTLS sessions at once and round-trips through the upstream service', async () => {
    const clients = await connectDevices({ port: relay.dtlsPort, serverPublicKey: env.pki.dtls.publicKeyDer, count: 120 });
    try {
      const rounds = 5;
      for (let round = 0; round < rounds; round++) {
        const replies = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`device ${i} round ${round}`))));
        replies.forEach((r, i) => expect(r.reply.toString()).toBe(`device ${i} round ${round}`));
      }
      for (const client of clients) {
        expect(client.stats.handshakes).toBe(1);
        expect(client.stats.replaysDropped).toBe(0);
        expect(client.stats.badRecordsDropped).toBe(0);
      }
      // The first devices of this relay: exactly theirs.
      const status = await env.operator.status(relay.mgmtUrl);
      expect(status.sessions.total).toBe(120);
    } finally {
      await closeAll(clients);
    }
  });

  it('carries a payload of the largest record size both ways', async () => {
    const [client] = await connectDevices({ port: relay.dtlsPort, serverPublicKey: env.pki.dtls.publicKeyDer, count: 1 });
    try {
      const big = Buffer.alloc(DtlsClient.maxPayloadLength, 0x5a);
      const { reply } = await request(client!, big);
      expect(reply.length).toBe(DtlsClient.maxPayloadLength);
    } finally {
      await closeAll([client]);
    }
  });

  it('refuses a device that sends no public key', async () => {
    const client = new DtlsClient({ host: '127.0.0.1', port: relay.dtlsPort, serverPublicKey: env.pki.dtls.publicKeyDer, clientKey: null });
    const closed = new Promise<string>((resolve) => client.once('close', (info) => resolve(info.reason)));
    await client.connect().catch(() => undefined);
    expect(await closed).toBe('peer-closed');
    const metrics = await env.operator.metrics(relay.mgmtUrl);
    expect(metrics).toMatch(/relay_handshake_failures_total\{reason="no-client-key"\} [1-9]/);
  });

  it('survives oversized and garbage datagrams to new and established addresses', async () => {
    const [client] = await connectDevices({ port: relay.dtlsPort, serverPublicKey: env.pki.dtls.publicKeyDer, count: 1 });
    try {
      const before = await env.operator.metrics(relay.mgmtUrl);
      // New addresses: sizes that crash the native receive path (9,000: SIGSEGV; 1,500: silent corruption).
      for (const size of [838, 1_500, 9_000, 60_000]) await sendRaw(relay.dtlsPort, Buffer.alloc(size, 0x17));
      // A DTLS-looking header claiming an application record, followed by junk.
      const fake = Buffer.alloc(900, 0);
      fake.set([23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0x03, 0x77]);
      await sendRaw(relay.dtlsPort, fake);
      for (const junk of [Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.from('GET / HTTP/1.1\r\n\r\n'), fake.subarray(0, 200)]) await sendRaw(relay.dtlsPort, junk);
      // One socket takes them in order: the junk was handled before the request that follows it is answered.
      const { reply } = await request(client!, Buffer.from('still here'));
      expect(reply.toString()).toBe('still here');
      const after = await env.operator.metrics(relay.mgmtUrl);
      expect(metricValue(after, 'relay_drops_total{reason="oversized"}') - metricValue(before, 'relay_drops_total{reason="oversized"}')).toBe(5);
      expect(relay.child.exitCode).toBeNull();
    } finally {
      await closeAll([client]);
    }
  });

  it('drops oversized and garbage datagrams from an established session address and keeps serving it', async () => {
    // A one-socket UDP proxy plays the device's address, so junk can come from exactly the ip:port
    // of an established session.
    const proxy = dgram.createSocket('udp4');
    let device: { address: string; port: number } | null = null;
    proxy.on('message', (datagram, rinfo) => {
      if (rinfo.port === relay.dtlsPort) {
        if (device !== null) proxy.send(datagram, device.port, device.address);
      } else {
        device = rinfo;
        proxy.send(datagram, relay.dtlsPort, '127.0.0.1');
      }
    });
    await new Promise<void>((resolve) => proxy.bind(0, '127.0.0.1', () => resolve()));
    const client = new DtlsClient({ host: '127.0.0.1', port: proxy.address().port, serverPublicKey: env.pki.dtls.publicKeyDer, clientKey: generateDeviceKey() });
    await client.connect();
    try {
      expect((await request(client, Buffer.from('before junk'))).reply.toString()).toBe('before junk');
      const before = await env.operator.metrics(relay.mgmtUrl);
      for (const size of [838, 1_500, 9_000, 60_000]) await sendRaw(relay.dtlsPort, Buffer.alloc(size, 0x17), proxy);
      const lookalike = Buffer.alloc(837, 0);
      lookalike.set([23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0x03, 0x38]);
      await sendRaw(relay.dtlsPort, lookalike, proxy);
      await sendRaw(relay.dtlsPort, Buffer.from([23, 0xfe, 0xfd]), proxy);
      // One socket takes them in order: the junk was handled before the request that follows it is answered.
      const { reply } = await request(client, Buffer.from('after junk'));
      expect(reply.toString()).toBe('after junk');
      const after = await env.operator.metrics(relay.mgmtUrl);
      const drops = (text: string, reason: string): number => metricValue(text, `relay_drops_total{reason="${reason}"}`);
      expect(drops(after, 'oversized') - drops(before, 'oversized')).toBe(4);
      expect(drops(after, 'malformed') + drops(after, 'rejected') - drops(before, 'malformed') - drops(before, 'rejected')).toBe(2);
      expect(relay.child.exitCode).toBeNull();
    } finally {
      await closeAll([client]);
      proxy.close();
    }
  });

  it('enforces mutual TLS on the management API', async () => {
    const url = new URL('/v1/status', relay.mgmtUrl);
    const attempt = (options: https.RequestOptions): Promise<number> => new Promise((resolve, reject) => {
      const req = https.request(url, { ...options, servername: env.pki.servername }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    // No client certificate: the TLS handshake fails.
    await expect(attempt({ ca: env.pki.ca.cert })).rejects.toThrow();
    // A certificate from another CA: refused as well.
    const otherDir = await mkdtemp(join(tmpdir(), 'relayctl-other-ca-'));
    try {
      const other = await ensureLocalPki(otherDir);
      await expect(attempt({ ca: env.pki.ca.cert, cert: other.operator.cert, key: other.operator.key })).rejects.toThrow();
      const wrongCa = new ManagementClient({ ca: env.pki.ca.cert, cert: other.operator.cert, key: other.operator.key, servername: env.pki.servername });
      await expect(wrongCa.status(relay.mgmtUrl)).rejects.toMatchObject({ code: 'ERR_MGMT_UNREACHABLE' });
      await wrongCa.close();
    } finally {
      await rm(otherDir, { recursive: true, force: true });
    }
    // The operator certificate works.
    expect(await attempt({ ca: env.pki.ca.cert, cert: env.pki.operator.cert, key: env.pki.operator.key })).toBe(200);
  });

  it('reports readiness, status and metrics that move with traffic', async () => {
    const ready = await env.operator.readyz(relay.mgmtUrl);
    expect(ready).toEqual({ ready: true, state: 'serving', reason: null });
    const status = await env.operator.status(relay.mgmtUrl);
    expect(status).toMatchObject({ pod: 'relay-a-0', state: 'serving', ready: true, version: expect.any(String) });
    expect(status.dtls.port).toBe(relay.dtlsPort);
    expect(status.uptimeSeconds).toBeGreaterThanOrEqual(0);

    const before = await env.operator.metrics(relay.mgmtUrl);
    const [client] = await connectDevices({ port: relay.dtlsPort, serverPublicKey: env.pki.dtls.publicKeyDer, count: 1 });
    for (let i = 0; i < 10; i++) await request(client!, Buffer.from(`m${i}`));
    const after = await env.operator.metrics(relay.mgmtUrl);
    // The session view: counters and sequence numbers as both ends saw them, and no secret.
    const page = await env.operator.sessions(relay.mgmtUrl, { limit: 1_000 });
    const mine = page.sessions.find((s) => s.deviceId === client!.deviceId);
    expect(mine).toMatchObject({ recordsIn: 10, recordsOut: 10, parked: false, viaPredecessor: false });
    expect(mine!.inbound).toEqual({ epoch: 1, sequence: client!.stats.lastOutboundSeq });
    expect(mine!.outbound).toEqual({ epoch: 1, sequence: client!.stats.lastInboundSeq });
    expect(JSON.stringify(page)).not.toMatch(/master|random/i);
    await expect(env.operator.sessions(relay.mgmtUrl, { limit: 5_000 })).rejects.toMatchObject({ status: 400 });
    await closeAll([client]);
    const delta = (name: string): number => metricValue(after, name) - metricValue(before, name);
    expect(delta('relay_handshakes_total')).toBe(1);
    expect(delta('relay_datagrams_total{direction="upstream_out"}')).toBe(10);
    expect(delta('relay_datagrams_total{direction="upstream_in"}')).toBe(10);
    expect(delta('relay_datagrams_total{direction="device_in"}')).toBeGreaterThanOrEqual(10 + 5);
    expect(delta('relay_bytes_total{direction="upstream_out"}')).toBe(20);
    expect(after).toContain('nodejs_eventloop_lag_seconds');
    expect(metricValue(after, 'relay_sessions{state="live"}')).toBeGreaterThanOrEqual(1);
  });

  it('answers unknown routes and methods with JSON errors', async () => {
    await expect(env.operator.restore(relay.mgmtUrl, { from: 'not a url' })).rejects.toMatchObject({ code: 'ERR_MGMT_HTTP', status: 400, remoteCode: 'ERR_BAD_REQUEST' });
  });
});

describe('relayd with --client-keys and --upstream-identity', () => {
  let env: Env;
  let relay: RelayProcess;
  let upstreamSocket: dgram.Socket;
  const seen: Buffer[] = [];
  const allowed = generateDeviceKey();
  const stranger = generateDeviceKey();
  let keysDir: string;

  beforeAll(async () => {
    env = await testPki();
    keysDir = await mkdtemp(join(tmpdir(), 'relayctl-keys-'));
    const pem = allowed.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    await writeFile(join(keysDir, 'device-1.pem'), pem);
    // An upstream that records what it gets and echoes it.
    upstreamSocket = dgram.createSocket('udp4');
    upstreamSocket.on('message', (datagram, rinfo) => {
      seen.push(datagram);
      upstreamSocket.send(datagram, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve) => upstreamSocket.bind(0, '127.0.0.1', () => resolve()));
    relay = await startRelay(env.pki, {
      name: 'relay-keys',
      upstream: `127.0.0.1:${upstreamSocket.address().port}`,
      args: ['--client-keys', keysDir, '--upstream-identity'],
    });
  });

  afterAll(async () => {
    await relay?.stop();
    upstreamSocket?.close();
    await rm(keysDir, { recursive: true, force: true });
    await env?.cleanup();
  });

  it('refuses a device whose key is not in --client-keys', async () => {
    const client = new DtlsClient({ host: '127.0.0.1', port: relay.dtlsPort, serverPublicKey: env.pki.dtls.publicKeyDer, clientKey: stranger });
    const closed = new Promise<string>((resolve) => client.once('close', (info) => resolve(info.reason)));
    await client.connect().catch(() => undefined);
    expect(await closed).toBe('peer-closed');
    expect(await env.operator.metrics(relay.mgmtUrl)).toMatch(/relay_handshake_failures_total\{reason="key-not-allowed"\} 1/);
  });

  it('accepts an allowed device and prefixes its upstream datagrams with its fingerprint', async () => {
    const [client] = await connectDevices({ port: relay.dtlsPort, serverPublicKey: env.pki.dtls.publicKeyDer, count: 1, keys: [allowed] });
    try {
      const { reply } = await request(client!, Buffer.from('identify me'));
      expect(reply.toString()).toBe('identify me');
      const datagram = seen.at(-1)!;
      expect(datagram.subarray(0, DEVICE_FINGERPRINT_BYTES).equals(deviceFingerprint(spkiDer(allowed.publicKey)))).toBe(true);
      expect(datagram.subarray(DEVICE_FINGERPRINT_BYTES).toString()).toBe('identify me');
    } finally {
      await closeAll([client]);
    }
  });

  it('stops cleanly on SIGTERM, within its own deadline', async () => {
    const code = await relay.stop('SIGTERM');
    // relayd exits 1 ("did not stop in time") when stopping outlasts its deadline: 0 is the deadline kept.
    expect(code).toBe(0);
    // Two loggers write these lines (the signal handler's and the relay's): their order on stdout is not theirs.
    expect(relay.logs.map((entry) => entry.msg)).toEqual(expect.arrayContaining(['stopping', 'relay stopped']));
  });
});
