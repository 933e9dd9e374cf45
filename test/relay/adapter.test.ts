import { createPrivateKey } from 'node:crypto';
import dgram from 'node:dgram';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DtlsClient, generateDeviceKey } from '../../client/index.ts';
import { NONCE_FENCE } from '../../relay/handover/fence.ts';
import { ImportStage } from '../../relay/handover/staged-import.ts';
import { writeRecordHeader } from '../../api/dtls/record.ts';
import { adapterOnLoopback, deviceFlow, dtlsKeys, guardedBinding } from '../support/adapter-harness.ts';
import { request } from '../support/devices.ts';

type Harness = Awaited<ReturnType<typeof adapterOnLoopback>>;

describe('DTLS adapter (in process, real node-mbed-dtls)', () => {
  let serverKey: Buffer;
  let publicKey: Buffer;
  const open: Array<{ close(): unknown }> = [];

  beforeAll(async () => {
    ({ serverKey, publicKey } = await dtlsKeys());
  });

  const harnesses: Harness[] = [];

  afterEach(async () => {
    for (const item of open.splice(0)) await item.close();
    // Every test runs on the watched binding: none may have reached a trap of node-mbed-dtls.
    for (const h of harnesses.splice(0)) expect(h.violations).toEqual([]);
  });

  async function harness(options: Parameters<typeof adapterOnLoopback>[1] = {}): Promise<Harness> {
    const h = await adapterOnLoopback(serverKey, options);
    open.push(h);
    harnesses.push(h);
    return h;
  }

  async function device(port: number): Promise<DtlsClient> {
    const client = new DtlsClient({ host: '127.0.0.1', port, serverPublicKey: publicKey, clientKey: generateDeviceKey() });
    open.push({ close: () => client.close({ notify: false }) });
    await client.connect();
    return client;
  }

  it('keeps no native socket for a ClientHello answered with a HelloVerifyRequest (stateless cookie)', async () => {
    const h = await harness();
    const client = await device(h.port);
    expect(h.adapter.handshakeCount).toBe(0);
    expect(h.adapter.sessionCount).toBe(1);
    // A lone first ClientHello from 200 spoofed-looking sources: nothing stays behind.
    const hello = await captureFirstHello();
    const senders = await Promise.all(Array.from({ length: 200 }, () => bound()));
    await Promise.all(senders.map((s) => new Promise<void>((resolve) => s.send(hello, h.port, '127.0.0.1', () => resolve()))));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(h.adapter.handshakeCount).toBe(0);
    senders.forEach((s) => s.close());
    expect((await request(client, Buffer.from('ok'), { retransmit: false })).reply.toString()).toBe('ok');
  });

  it('limits new handshakes per source address', async () => {
    const h = await harness({ limits: { handshakesPerSourcePerSecond: 1, handshakeBurstPerSource: 2 } });
    // Each handshake takes two ClientHellos (without and with cookie): a burst of 2 allows one device.
    await device(h.port);
    const second = new DtlsClient({ host: '127.0.0.1', port: h.port, serverPublicKey: publicKey, clientKey: generateDeviceKey(), handshakeTimeoutMs: 500, retransmitInitialMs: 100 });
    await expect(second.connect()).rejects.toThrow();
    expect(h.drops.get('handshake-rate')).toBeGreaterThan(0);
  });

  it('times out half-open handshakes in its sweep', async () => {
    let now = 1_000_000;
    const h = await harness({ now: () => now, limits: { handshakeTimeoutMs: 5_000 } });
    const socket = await halfOpenHandshake(h);
    now += 5_001;
    h.adapter.sweep();
    expect(h.adapter.handshakeCount).toBe(0);
    expect(h.failures).toContain('timeout');
    socket.close();
  });

  it('parks idle sessions and resumes them on their next datagram', async () => {
    const h = await harness();
    const client = await device(h.port);
    await request(client, Buffer.from('one'), { retransmit: false });
    expect(h.adapter.liveCount).toBe(1);
    h.adapter.parkAll();
    expect(h.adapter.liveCount).toBe(0);
    expect(h.adapter.sessionCount).toBe(1);
    expect((await request(client, Buffer.from('two'), { retransmit: false })).reply.toString()).toBe('two');
    expect(h.adapter.liveCount).toBe(1);
    expect(client.stats.handshakes).toBe(1);
    expect(client.stats.replaysDropped).toBe(0);
  });

  it('exports a session that another adapter imports and serves, with the fence applied', async () => {
    const a = await harness();
    const b = await harness();
    // The device talks to A through a flow that can be re-pointed at B with the same source address.
    const flow = await deviceFlow(a.port);
    open.push(flow);
    const client = await device(flow.peer.port);
    await request(client, Buffer.from('on A'), { retransmit: false });
    const lastFromA = client.stats.lastInboundSeq;
    const exported = a.adapter.exportSession([...a.adapter.allSessions()][0]!)!;
    expect(exported.dtls.master.length).toBe(48);
    const stage = new ImportStage(b.adapter);
    stage.add({ ...exported, upstream: { identity: null } });
    stage.commit();
    a.adapter.discard([...a.adapter.allSessions()]);
    expect(b.adapter.liveCount).toBe(0);
    flow.moveTo(b.port);
    expect((await request(client, Buffer.from('on B'), { retransmit: false })).reply.toString()).toBe('on B');
    expect(client.stats.handshakes).toBe(1);
    expect(client.stats.lastInboundSeq).toBeGreaterThan(lastFromA + NONCE_FENCE - 1);
  });

  it('watches the binding: each trap of node-mbed-dtls is caught and recorded, not hit', async () => {
    const { binding, violations } = guardedBinding();
    const slotless = (): void => undefined;
    const socket = new binding.DtlsSocket(new binding.DtlsServer(derKey(serverKey), 0), 'test', slotless, slotless, slotless, slotless);
    void (socket as unknown as { publicKey: unknown }).publicKey;
    void socket.session;
    socket.receiveData(Buffer.alloc(838));
    socket.send(Buffer.alloc(801));
    const wrap = new binding.SessionWrap();
    wrap.master = new Uint8Array(48) as Buffer;
    wrap.randbytes = Buffer.alloc(65);
    expect(violations).toEqual([
      'publicKey read (it crashes on resumed and certificate-less sockets)',
      'session read before the handshake completed',
      'receiveData of 838 bytes',
      'send of 801 bytes',
      'SessionWrap.master set to a Uint8Array, not a Buffer',
      'SessionWrap.randbytes set to 65 bytes',
    ]);
  });

  it('never hands the native receive path a datagram over 837 bytes, from a new or an established address', async () => {
    const h = await harness();
    const flow = await deviceFlow(h.port);
    open.push(flow);
    const client = await device(flow.peer.port);
    await request(client, Buffer.from('before'), { retransmit: false });
    // Well-formed records one byte too long: only the size guard stands between them and the heap overflow.
    const hello = record(22, 0, 0, Buffer.concat([Buffer.from([1]), Buffer.alloc(838 - 14)]));
    const data = record(23, 1, 1_000, Buffer.alloc(838 - 13, 7));
    expect([hello.length, data.length]).toEqual([838, 838]);
    const stranger = await bound();
    await new Promise<void>((resolve) => stranger.send(hello, h.port, '127.0.0.1', () => resolve()));
    await flow.sendFromDevice(data);
    await request(client, Buffer.from('after'), { retransmit: false });
    expect(h.drops.get('oversized')).toBe(2);
    stranger.close();
  });

  it('refuses a device without a key without reading the key from the native socket', async () => {
    const h = await harness();
    const client = new DtlsClient({ host: '127.0.0.1', port: h.port, serverPublicKey: publicKey, clientKey: null });
    open.push({ close: () => client.close({ notify: false }) });
    const closed = new Promise((resolve) => client.once('close', resolve));
    await client.connect().catch(() => undefined);
    await closed;
    expect(h.failures).toEqual(['no-client-key']);
    expect(h.adapter.sessionCount).toBe(0);
  });

  it('reads session state only from established sockets: exports and parks leave half-open handshakes alone', async () => {
    let now = 1_000_000;
    const h = await harness({ now: () => now, limits: { parkAfterIdleMs: 1_000, handshakeTimeoutMs: 20_000 } });
    const client = await device(h.port);
    // A handshake left half-open beside the established session.
    const socket = await halfOpenHandshake(h);
    const [session] = [...h.adapter.allSessions()];
    expect(h.adapter.exportSession(session!)?.dtls.master.length).toBe(48);
    now += 1_000;
    h.adapter.sweep();
    expect(h.adapter.liveCount).toBe(0);
    expect(h.adapter.handshakeCount).toBe(1);
    expect(h.adapter.exportSession(session!)?.dtls.master.length).toBe(48);
    expect((await request(client, Buffer.from('resumed'), { retransmit: false })).reply.toString()).toBe('resumed');
    socket.close();
  });

  it('resumes an imported session from Buffers of the exact sizes, whatever types the import held', async () => {
    const a = await harness();
    const b = await harness();
    const flow = await deviceFlow(a.port);
    open.push(flow);
    const client = await device(flow.peer.port);
    await request(client, Buffer.from('on A'), { retransmit: false });
    const exported = a.adapter.exportSession([...a.adapter.allSessions()][0]!)!;
    a.adapter.discard([...a.adapter.allSessions()]);
    // What a decoder might hand over: plain Uint8Arrays, not Buffers.
    const plain = (bytes: Buffer): Buffer => new Uint8Array(bytes) as Buffer;
    const stage = new ImportStage(b.adapter);
    stage.add({
      ...exported,
      dtls: { ...exported.dtls, randoms: plain(exported.dtls.randoms), master: plain(exported.dtls.master), sessionId: plain(exported.dtls.sessionId) },
      upstream: { identity: null },
    });
    stage.commit();
    flow.moveTo(b.port);
    expect((await request(client, Buffer.from('on B'), { retransmit: false })).reply.toString()).toBe('on B');
    expect(client.stats.handshakes).toBe(1);
  });

  it('gives a parked session\'s real secrets to an export that outlives the session', async () => {
    const h = await harness();
    await device(h.port);
    const [session] = [...h.adapter.allSessions()];
    const live = h.adapter.exportSession(session!)!;
    h.adapter.parkAll();
    const parked = h.adapter.exportSession(session!)!;
    h.adapter.discard([session!]);
    expect(parked.dtls.master).toEqual(live.dtls.master);
    expect(parked.dtls.master.equals(Buffer.alloc(48))).toBe(false);
    expect(parked.dtls.randoms).toEqual(live.dtls.randoms);
  });

  it('drops an oversized reply instead of failing the session', async () => {
    const h = await harness({ echo: false });
    const client = await device(h.port);
    const [session] = [...h.adapter.allSessions()];
    expect(h.adapter.send(session!, Buffer.alloc(801))).toBe(false);
    expect(h.drops.get('oversized-reply')).toBe(1);
    expect(h.adapter.send(session!, Buffer.alloc(800, 1))).toBe(true);
    const got = await new Promise<Buffer>((resolve) => client.once('message', resolve));
    expect(got.length).toBe(800);
  });
});

function record(type: number, epoch: number, sequence: number, fragment: Buffer): Buffer {
  const header = Buffer.alloc(13);
  writeRecordHeader(header, 0, type, epoch, sequence, fragment.length);
  return Buffer.concat([header, fragment]);
}

function derKey(pem: Buffer): Buffer {
  return createPrivateKey(pem).export({ format: 'der', type: 'sec1' });
}

/**
 * A client that sends its first flight and goes silent: the hello, then the hello with the cookie.
 * Resolves once the adapter holds the half-open handshake; the socket is the client's.
 */
async function halfOpenHandshake(h: Harness): Promise<dgram.Socket> {
  const hello = await captureFirstHello();
  const socket = await bound();
  const hvr = await new Promise<Buffer>((resolve) => {
    socket.once('message', resolve);
    socket.send(hello, h.port, '127.0.0.1');
  });
  socket.send(withCookie(hello, cookieOf(hvr)), h.port, '127.0.0.1');
  for (let turn = 0; h.adapter.handshakeCount === 0; turn++) {
    if (turn === 10_000) throw new Error('the hello with the cookie never reached the adapter');
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(h.adapter.handshakeCount).toBe(1);
  return socket;
}

async function bound(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return socket;
}

/** The first ClientHello a real client sends, caught by a socket posing as the server. */
async function captureFirstHello(): Promise<Buffer> {
  const fake = await bound();
  const client = new DtlsClient({ host: '127.0.0.1', port: fake.address().port, serverPublicKey: (await import('node:crypto')).generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey, clientKey: generateDeviceKey(), handshakeTimeoutMs: 1_000 });
  const hello = new Promise<Buffer>((resolve) => fake.once('message', resolve));
  client.connect().catch(() => undefined);
  const datagram = await hello;
  await client.close({ notify: false });
  fake.close();
  return datagram;
}

// ClientHello body layout: record header 13 | handshake header 12 | version 2 | random 32 | session id (1+n) | cookie (1+n) | ...
function cookieOf(helloVerifyRequest: Buffer): Buffer {
  const offset = 13 + 12 + 2;
  return helloVerifyRequest.subarray(offset + 1, offset + 1 + helloVerifyRequest[offset]!);
}

function withCookie(hello: Buffer, cookie: Buffer): Buffer {
  const body = 13 + 12;
  const sessionIdLength = hello[body + 34]!;
  const cookieAt = body + 35 + sessionIdLength;
  const out = Buffer.concat([hello.subarray(0, cookieAt), Buffer.from([cookie.length]), cookie, hello.subarray(cookieAt + 1 + hello[cookieAt]!)]);
  const grow = cookie.length - hello[cookieAt]!;
  out.writeUInt16BE(hello.readUInt16BE(11) + grow, 11);
  const length = hello.readUIntBE(14, 3) + grow;
  out.writeUIntBE(length, 14, 3);
  out.writeUIntBE(length, 22, 3);
  return out;
}
