import dgram from 'node:dgram';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DtlsClient, generateDeviceKey } from '../../client/index.ts';
import { generateDtlsKeyPair } from '../../orchestrator/platform/local/pki.ts';
import { NONCE_FENCE } from '../../relay/handover/fence.ts';
import { ImportStage } from '../../relay/handover/staged-import.ts';
import { adapterOnLoopback } from '../helpers/adapter-harness.ts';
import { request } from '../helpers/devices.ts';

type Harness = Awaited<ReturnType<typeof adapterOnLoopback>>;

describe('DTLS adapter (in process, real node-mbed-dtls)', () => {
  let serverKey: Buffer;
  let publicKey: Buffer;
  const open: Array<{ close(): unknown }> = [];

  beforeAll(async () => {
    const pair = await generateDtlsKeyPair();
    serverKey = Buffer.from(pair.privateKeyPkcs8Pem);
    publicKey = pair.publicKeySpkiDer;
  });

  afterEach(async () => {
    for (const item of open.splice(0)) await item.close();
  });

  async function harness(options: Parameters<typeof adapterOnLoopback>[1] = {}): Promise<Harness> {
    const h = await adapterOnLoopback(serverKey, options);
    open.push(h);
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
    // A client that sends its first flight and goes silent: the hello, then the hello with the cookie.
    const hello = await captureFirstHello();
    const socket = await bound();
    const hvr = await new Promise<Buffer>((resolve) => {
      socket.once('message', resolve);
      socket.send(hello, h.port, '127.0.0.1');
    });
    socket.send(withCookie(hello, cookieOf(hvr)), h.port, '127.0.0.1');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(h.adapter.handshakeCount).toBe(1);
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
    // The device talks to A through a relay-less proxy, so it can be re-pointed at B with the same source address.
    const proxy = await bound();
    let target = a.port;
    let deviceAddress: dgram.RemoteInfo | null = null;
    proxy.on('message', (datagram, rinfo) => {
      if (rinfo.port === a.port || rinfo.port === b.port) {
        if (deviceAddress !== null) proxy.send(datagram, deviceAddress.port, deviceAddress.address);
      } else {
        deviceAddress = rinfo;
        proxy.send(datagram, target, '127.0.0.1');
      }
    });
    const client = await device(proxy.address().port);
    await request(client, Buffer.from('on A'), { retransmit: false });
    const lastFromA = client.stats.lastInboundSeq;
    const exported = a.adapter.exportSession([...a.adapter.allSessions()][0]!)!;
    expect(exported.dtls.master.length).toBe(48);
    const stage = new ImportStage(b.adapter);
    stage.add({ ...exported, upstream: { identity: null } });
    stage.commit();
    a.adapter.discard([...a.adapter.allSessions()]);
    expect(b.adapter.liveCount).toBe(0);
    target = b.port;
    expect((await request(client, Buffer.from('on B'), { retransmit: false })).reply.toString()).toBe('on B');
    expect(client.stats.handshakes).toBe(1);
    expect(client.stats.lastInboundSeq).toBeGreaterThan(lastFromA + NONCE_FENCE - 1);
    proxy.close();
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
