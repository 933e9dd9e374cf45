import { generateKeyPairSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { AlertDescription, AlertLevel, ContentType } from '../../api/dtls/constants.ts';
import { DtlsClient, generateDeviceKey, type CloseInfo, type DtlsClientOptions } from '../../client/index.ts';
import { FakeDtlsServer, type FakeDtlsServerOptions } from './helpers/fake-dtls-server.ts';

const serverKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const device = generateDeviceKey();

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

async function startServer(options: Partial<FakeDtlsServerOptions> = {}): Promise<FakeDtlsServer> {
  const server = await FakeDtlsServer.start({ serverKey: serverKey.privateKey, ...options });
  cleanups.push(() => server.close());
  return server;
}

function newClient(server: FakeDtlsServer, options: Partial<DtlsClientOptions> = {}): DtlsClient {
  const client = new DtlsClient({
    host: '127.0.0.1',
    port: server.port,
    serverPublicKey: serverKey.publicKey,
    clientKey: device,
    retransmitInitialMs: 50,
    handshakeTimeoutMs: 5_000,
    ...options,
  });
  cleanups.push(() => client.close({ notify: false }));
  return client;
}

async function waitFor(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function nextMessage(client: DtlsClient): Promise<Buffer> {
  return once(client, 'message').then(([payload]) => payload as Buffer);
}

describe('DtlsClient handshake over loopback', () => {
  it('connects, authenticates with its raw public key and exchanges data', async () => {
    const server = await startServer();
    const client = newClient(server);
    await client.connect();
    expect(client.state).toBe('established');
    expect(client.session?.clientAuthenticated).toBe(true);
    expect(client.deviceId).toBe(device.id);
    expect(server.peer.handshake.clientSpki).toEqual(device.spki);

    const echoed = nextMessage(client);
    client.send(Buffer.from('ping'));
    expect((await echoed).toString()).toBe('ping');
    expect(client.stats).toMatchObject({
      handshakes: 1,
      handshakeRetransmissions: 0,
      // Two hellos, Certificate, ClientKeyExchange, CertificateVerify, CCS, Finished, then the data record.
      recordsOut: 8,
      // HelloVerifyRequest, four in flight 4, CCS, Finished, then the echo.
      recordsIn: 8,
      replaysDropped: 0,
      badRecordsDropped: 0,
      lastInboundSeq: 1,
      lastOutboundSeq: 1,
    });
  });

  it('connects without a key, then reports the relay refusing it as a peer close, not an error', async () => {
    const server = await startServer({ closeAfterHandshake: true });
    const client = newClient(server, { clientKey: null });
    const errors: unknown[] = [];
    client.on('error', (error) => errors.push(error));
    const closed = once(client, 'close');
    await client.connect();
    expect(client.session?.clientAuthenticated).toBe(false);
    const [info] = (await closed) as [CloseInfo];
    expect(info.reason).toBe('peer-closed');
    expect(info.alert).toBe('close_notify');
    expect(client.state).toBe('closed');
    expect(errors).toEqual([]);
    expect(() => client.send(Buffer.from('late'))).toThrow(expect.objectContaining({ code: 'ERR_DTLS_NOT_CONNECTED' }));
  });

  it('retransmits a lost ClientHello on its timer', async () => {
    const server = await startServer({ dropInbound: (_datagram, index) => index === 0 });
    const client = newClient(server);
    await client.connect();
    expect(client.stats.handshakeRetransmissions).toBe(1);
  });

  it('retransmits a lost flight 5 and the server answers the repeated Finished', async () => {
    // Datagrams 2..6 are Certificate, ClientKeyExchange, CertificateVerify, CCS and Finished.
    const server = await startServer({ dropInbound: (_datagram, index) => index === 6 });
    const client = newClient(server);
    await client.connect();
    expect(client.stats.handshakeRetransmissions).toBe(1);
    expect(client.stats.lastOutboundSeq).toBe(1);
  });

  it('resends flight 5 at once when the server repeats flight 4', async () => {
    const server = await startServer({ dropInbound: (_datagram, index) => index >= 2 && index <= 6 });
    // A long timer proves the resend came from the repeated flight, not from the timer.
    const client = newClient(server, { retransmitInitialMs: 10_000 });
    const connected = client.connect();
    await waitFor(() => server.received.length === 7);
    for (const datagram of server.peer.sent.slice(1, 5)) server.sendRaw(datagram);
    await connected;
    expect(client.stats.handshakeRetransmissions).toBe(1);
  });

  it('fails with ERR_DTLS_HANDSHAKE_TIMEOUT after the bounded retransmissions', async () => {
    const server = await startServer({ dropInbound: () => true });
    const client = newClient(server, { retransmitInitialMs: 10, maxRetransmissions: 3 });
    const closed = once(client, 'close');
    const started = Date.now();
    await expect(client.connect()).rejects.toMatchObject({ code: 'ERR_DTLS_HANDSHAKE_TIMEOUT' });
    // 10 + 20 + 40 + 80 ms of waiting with the doubling timer.
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(server.received).toHaveLength(4);
    expect(client.stats.handshakeRetransmissions).toBe(3);
    const [info] = (await closed) as [CloseInfo];
    expect(info).toMatchObject({ reason: 'handshake-failed', error: { code: 'ERR_DTLS_HANDSHAKE_TIMEOUT' } });
  });

  it('fails at the handshake deadline even while the retransmission timer is long', async () => {
    const server = await startServer({ dropInbound: () => true });
    const client = newClient(server, { retransmitInitialMs: 10_000, handshakeTimeoutMs: 100 });
    const started = Date.now();
    await expect(client.connect()).rejects.toMatchObject({ code: 'ERR_DTLS_HANDSHAKE_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('keeps retrying while nothing listens (ICMP errors are counted, not fatal)', async () => {
    const probe = createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    const port = probe.address().port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const client = new DtlsClient({
      host: '127.0.0.1', port, serverPublicKey: serverKey.publicKey, clientKey: null,
      retransmitInitialMs: 10, maxRetransmissions: 3,
    });
    await expect(client.connect()).rejects.toMatchObject({ code: 'ERR_DTLS_HANDSHAKE_TIMEOUT' });
    expect(client.stats.socketErrors).toBeGreaterThan(0);
  });

  it('rejects a server that does not hold the pinned key, and tells it with a fatal alert', async () => {
    const server = await startServer();
    const client = newClient(server, { serverPublicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey });
    await expect(client.connect()).rejects.toMatchObject({ code: 'ERR_DTLS_BAD_SERVER_SIGNATURE' });
    await waitFor(() => server.peer.alerts.length > 0);
    expect(server.peer.alerts).toEqual([{ level: AlertLevel.fatal, description: AlertDescription.decryptError }]);
  });

  it('rejects connect() when closed during the handshake', async () => {
    const server = await startServer({ dropInbound: () => true });
    const client = newClient(server, { retransmitInitialMs: 1_000 });
    const connecting = client.connect();
    await client.close();
    await expect(connecting).rejects.toMatchObject({ code: 'ERR_DTLS_CLOSED' });
    await expect(client.connect()).rejects.toMatchObject({ code: 'ERR_DTLS_CLOSED' });
  });

  it('binds the local address it is given', async () => {
    const server = await startServer();
    const client = newClient(server, { localAddress: '127.0.0.2' });
    await client.connect();
    expect(server.peer.address).toBe('127.0.0.2');
    expect(client.localAddress?.address).toBe('127.0.0.2');
  });

  it('uses udp6 for an IPv6 target', async (context) => {
    let server: FakeDtlsServer;
    try {
      server = await startServer({ type: 'udp6' });
    } catch {
      context.skip();
      return;
    }
    const client = newClient(server, { host: '::1' });
    await client.connect();
    const echoed = nextMessage(client);
    client.send(Buffer.from('over ipv6'));
    expect((await echoed).toString()).toBe('over ipv6');
  });
});

describe('DtlsClient records after the handshake', () => {
  async function connected(options: Partial<FakeDtlsServerOptions> = {}) {
    const server = await startServer({ echo: false, ...options });
    const client = newClient(server);
    await client.connect();
    const messages: string[] = [];
    client.on('message', (payload) => messages.push(payload.toString()));
    return { server, client, messages };
  }

  it('drops replays, forgeries, unknown epochs, plaintext and garbage, counting each', async () => {
    const { server, client, messages } = await connected();
    const first = server.sendApplicationData(Buffer.from('one'));
    await waitFor(() => messages.length === 1);

    server.sendRaw(first); // replay
    const tampered = Buffer.from(server.sendApplicationData(Buffer.from('two')));
    tampered[tampered.length - 1]! ^= 1;
    tampered.writeUIntBE(99, 5, 6); // fresh sequence number, so it is tried and fails authentication
    server.sendRaw(tampered);
    const wrongEpoch = Buffer.from(first);
    wrongEpoch.writeUInt16BE(2, 3);
    server.sendRaw(wrongEpoch);
    server.sendRaw(Buffer.from('17fefd0000000000000000000568656c6c6f', 'hex')); // epoch 0 application data
    server.sendRaw(Buffer.from('not a record at all'));
    server.sendApplicationData(Buffer.from('three'));

    await waitFor(() => messages.length === 3);
    expect(messages).toEqual(['one', 'two', 'three']);
    expect(client.stats).toMatchObject({ replaysDropped: 1, badRecordsDropped: 4, lastInboundSeq: 3 });
    expect(client.state).toBe('established');
  });

  it('counts handshake flights the server repeats after the handshake apart from bad records', async () => {
    const { server, client, messages } = await connected();
    // Flight 4 and the CCS of flight 6 again, in plaintext, then a protected handshake record.
    for (const datagram of server.peer.sent.slice(1, 6)) server.sendRaw(datagram);
    server.sendProtectedAt(server.peer.epoch1Sequence++, ContentType.handshake, Buffer.alloc(24));
    server.sendApplicationData(Buffer.from('after'));
    await waitFor(() => messages.length === 1);
    expect(client.stats).toMatchObject({ lateHandshakeRecords: 6, badRecordsDropped: 0, replaysDropped: 0 });
    expect(client.state).toBe('established');
  });

  it('accepts a jump ahead in sequence numbers and late records inside the window, once', async () => {
    const { server, client, messages } = await connected();
    const sequences: number[] = [];
    client.on('message', (_payload, sequence) => sequences.push(sequence));
    server.sendProtectedAt(1_000, ContentType.applicationData, Buffer.from('ahead'));
    await waitFor(() => messages.length === 1);
    const late = server.sendProtectedAt(990, ContentType.applicationData, Buffer.from('late'));
    await waitFor(() => messages.length === 2);
    server.sendRaw(late);
    server.sendProtectedAt(900, ContentType.applicationData, Buffer.from('too old'));
    server.sendProtectedAt(1_001, ContentType.applicationData, Buffer.from('next'));
    await waitFor(() => messages.length === 3);
    expect(messages).toEqual(['ahead', 'late', 'next']);
    expect(sequences).toEqual([1_000, 990, 1_001]);
    expect(client.stats).toMatchObject({ lastInboundSeq: 1_001, replaysDropped: 2 });
  });

  it('closes with the alert name on a fatal alert', async () => {
    const { server, client } = await connected();
    const closed = once(client, 'close');
    server.sendAlert(AlertLevel.fatal, AlertDescription.internalError);
    const [info] = (await closed) as [CloseInfo];
    expect(info).toMatchObject({ reason: 'fatal-alert', alert: 'internal_error', error: { code: 'ERR_DTLS_ALERT_RECEIVED' } });
  });

  it('ignores warning alerts other than close_notify', async () => {
    const { server, client, messages } = await connected();
    server.sendAlert(AlertLevel.warning, 100); // no_renegotiation
    server.sendApplicationData(Buffer.from('still here'));
    await waitFor(() => messages.length === 1);
    expect(client.state).toBe('established');
  });

  it('sends up to 800 bytes and refuses more', async () => {
    const { server, client } = await connected();
    client.send(Buffer.alloc(800, 1));
    client.send(Buffer.alloc(0));
    expect(() => client.send(Buffer.alloc(801))).toThrow(expect.objectContaining({ code: 'ERR_DTLS_PAYLOAD_TOO_LARGE' }));
    await waitFor(() => server.peer.applicationData.length === 2);
    expect(server.peer.applicationData.map((payload) => payload.length)).toEqual([800, 0]);
    expect(client.stats.lastOutboundSeq).toBe(2);
  });

  it('refuses to send before the handshake', () => {
    const client = new DtlsClient({ host: '127.0.0.1', port: 9, serverPublicKey: serverKey.publicKey, clientKey: null });
    expect(() => client.send(Buffer.from('early'))).toThrow(expect.objectContaining({ code: 'ERR_DTLS_NOT_CONNECTED' }));
  });

  it('sends close_notify on close() unless told not to', async () => {
    const { server, client } = await connected();
    const closed = once(client, 'close');
    await client.close();
    expect((await closed)[0]).toEqual({ reason: 'local' });
    await waitFor(() => server.peer.alerts.length === 1);
    expect(server.peer.alerts).toEqual([{ level: AlertLevel.warning, description: AlertDescription.closeNotify }]);

    const second = newClient(server, { localAddress: '127.0.0.3' });
    await second.connect();
    const received = server.received.length;
    await second.close({ notify: false });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(server.received.length).toBe(received);
  });
});

describe('DtlsClient options', () => {
  const base = { host: '127.0.0.1', port: 5684, serverPublicKey: serverKey.publicKey, clientKey: null };

  it('names the option that is wrong', () => {
    const invalid: Array<[Partial<DtlsClientOptions>, RegExp]> = [
      [{ port: 0 }, /port/],
      [{ host: '' }, /host/],
      [{ clientKey: undefined as unknown as null }, /clientKey/],
      [{ localAddress: 'localhost' }, /localAddress/],
      [{ retransmitInitialMs: 0 }, /retransmitInitialMs/],
      [{ maxRetransmissions: -1 }, /maxRetransmissions/],
    ];
    for (const [override, message] of invalid) {
      expect(() => new DtlsClient({ ...base, ...override } as DtlsClientOptions))
        .toThrow(expect.objectContaining({ code: 'ERR_DTLS_INVALID_OPTION', message: expect.stringMatching(message) }));
    }
  });

  it('accepts the pinned key as SPKI DER or PEM and the device key as PEM', () => {
    const spki = serverKey.publicKey.export({ type: 'spki', format: 'der' });
    const pem = serverKey.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const devicePem = device.privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    expect(new DtlsClient({ ...base, serverPublicKey: spki }).state).toBe('idle');
    expect(new DtlsClient({ ...base, serverPublicKey: pem, clientKey: devicePem }).deviceId).toBe(device.id);
    expect(() => new DtlsClient({ ...base, serverPublicKey: Buffer.from('nope') }))
      .toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_KEY' }));
  });
});
