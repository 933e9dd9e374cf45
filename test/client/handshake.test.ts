import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ContentType, HandshakeType } from '../../api/dtls/constants.ts';
import { encodeHandshakeFragment, parseHandshakeFragments } from '../../client/dtls/handshake-messages.ts';
import { ClientHandshake, type HandshakeStep, type OutgoingRecord } from '../../client/dtls/handshake.ts';
import { generateDeviceKey } from '../../client/keys.ts';
import { FakeServerHandshake, type FakeServerOptions, type ServerRecord } from './helpers/fake-server-handshake.ts';

const serverKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const device = generateDeviceKey();

function newPair(options: { withKey?: boolean; server?: Partial<FakeServerOptions>; pinned?: typeof serverKey.publicKey } = {}) {
  const client = new ClientHandshake({
    serverPublicKey: options.pinned ?? serverKey.publicKey,
    clientCredential: options.withKey === false ? null : { privateKey: device.privateKey, spki: device.spki },
  });
  const server = new FakeServerHandshake({ serverKey: serverKey.privateKey, ...options.server });
  return { client, server };
}

function toServer(server: FakeServerHandshake, flight: readonly OutgoingRecord[]): ServerRecord[] {
  return flight.flatMap((record) => server.handleRecord(record.type, record.epoch, record.payload));
}

function toClient(client: ClientHandshake, records: readonly ServerRecord[]): HandshakeStep[] {
  return records.map((record) => client.handleRecord(record.type, record.epoch, record.payload));
}

function lastFlight(steps: HandshakeStep[]): readonly OutgoingRecord[] {
  const withFlight = steps.filter((step) => step.flight !== undefined);
  expect(withFlight.length).toBeGreaterThan(0);
  return withFlight.at(-1)!.flight!;
}

function messageTypes(flight: readonly OutgoingRecord[]): Array<string> {
  return flight.map((record) => (record.type === ContentType.handshake
    ? `${record.epoch}:hs${parseHandshakeFragments(record.payload)[0]!.msgType}`
    : `${record.epoch}:ct${record.type}`));
}

/** Runs the handshake up to the client's flight 5 and returns everything needed to continue. */
function runToFlight5(pair: ReturnType<typeof newPair>) {
  const { client, server } = pair;
  const helloVerify = toServer(server, client.start().flight!);
  const flight3 = lastFlight(toClient(client, helloVerify));
  const flight4 = toServer(server, flight3);
  const steps = toClient(client, flight4);
  return { flight4, flight5: lastFlight(steps), keys: steps.find((step) => step.keys)?.keys };
}

describe('ClientHandshake against the fake server', () => {
  it('runs the cookie exchange, then answers flight 4 with Certificate, ClientKeyExchange, CertificateVerify, CCS, Finished', () => {
    const pair = newPair();
    const { client, server } = pair;
    const flight1 = client.start().flight!;
    expect(client.phase).toBe('awaiting-server-hello');
    const helloVerify = toServer(server, flight1);
    expect(parseHandshakeFragments(helloVerify[0]!.payload)[0]!.msgType).toBe(HandshakeType.helloVerifyRequest);

    const flight3 = lastFlight(toClient(client, helloVerify));
    expect(server.clientHellos).toHaveLength(1);
    const flight4 = toServer(server, flight3);
    const [first, second] = server.clientHellos;
    expect(second!.cookie.length).toBeGreaterThan(0);
    // RFC 6347 4.2.1: the hello with the cookie repeats the first one's random.
    expect(second!.random.equals(first!.random)).toBe(true);

    const steps = toClient(client, flight4);
    expect(client.phase).toBe('awaiting-server-finished');
    expect(messageTypes(lastFlight(steps))).toEqual(['0:hs11', '0:hs16', '0:hs15', '0:ct20', '1:hs20']);
    expect(steps.find((step) => step.keys)).toBeDefined();
  });

  it('derives the same keys as the server, proves the key, and verifies the server Finished', () => {
    const pair = newPair();
    const { flight5, keys } = runToFlight5(pair);
    const flight6 = toServer(pair.server, flight5);
    expect(pair.server.clientSpki!.equals(device.spki)).toBe(true);
    expect(pair.server.clientVerified).toBe(true);
    expect(keys).toEqual(pair.server.keys);

    const steps = toClient(pair.client, flight6);
    expect(steps.some((step) => step.established)).toBe(true);
    expect(pair.client.phase).toBe('established');
    expect(pair.client.sessionInfo!.clientAuthenticated).toBe(true);
    expect(pair.client.lastFlight).toEqual([]);
  });

  it('sends an empty Certificate and no CertificateVerify without a key', () => {
    const pair = newPair({ withKey: false });
    const { flight5 } = runToFlight5(pair);
    expect(messageTypes(flight5)).toEqual(['0:hs11', '0:hs16', '0:ct20', '1:hs20']);
    expect(parseHandshakeFragments(flight5[0]!.payload)[0]!.fragment).toEqual(Buffer.alloc(3));
    toClient(pair.client, toServer(pair.server, flight5));
    expect(pair.server.clientSpki).toBeNull();
    expect(pair.client.phase).toBe('established');
    expect(pair.client.sessionInfo!.clientAuthenticated).toBe(false);
  });

  it('sends no Certificate when the server does not ask for one', () => {
    const pair = newPair({ server: { requestCertificate: false } });
    const { flight5 } = runToFlight5(pair);
    expect(messageTypes(flight5)).toEqual(['0:hs16', '0:ct20', '1:hs20']);
    toClient(pair.client, toServer(pair.server, flight5));
    expect(pair.client.phase).toBe('established');
  });

  it('works without a cookie exchange', () => {
    const pair = newPair({ server: { cookies: false } });
    const flight4 = toServer(pair.server, pair.client.start().flight!);
    const flight5 = lastFlight(toClient(pair.client, flight4));
    toClient(pair.client, toServer(pair.server, flight5));
    expect(pair.client.phase).toBe('established');
  });

  it('accepts flight 4 in reverse order and fragmented', () => {
    const pair = newPair();
    const { client, server } = pair;
    const flight3 = lastFlight(toClient(client, toServer(server, client.start().flight!)));
    const flight4 = toServer(server, flight3);
    // Split the ServerKeyExchange into three fragments, then deliver everything backwards.
    const records: ServerRecord[] = [];
    for (const record of flight4) {
      const [message] = parseHandshakeFragments(record.payload);
      if (message!.msgType !== HandshakeType.serverKeyExchange) {
        records.push(record);
        continue;
      }
      const body = message!.fragment;
      for (const [start, end] of [[0, 40], [40, 90], [90, body.length]] as const) {
        records.push({
          type: ContentType.handshake,
          epoch: 0,
          payload: encodeHandshakeFragment(message!.msgType, message!.messageSeq, body.length, start, body.subarray(start, end)),
        });
      }
    }
    const steps = toClient(client, records.reverse());
    const flight5 = lastFlight(steps);
    toClient(client, toServer(server, flight5));
    expect(client.phase).toBe('established');
  });

  it('asks for a resend when the server repeats the last message of its previous flight', () => {
    const pair = newPair();
    const { client, server } = pair;
    const helloVerify = toServer(server, client.start().flight!);
    toClient(client, helloVerify);
    // A repeated HelloVerifyRequest means our hello with the cookie was lost.
    expect(toClient(client, helloVerify)[0]).toMatchObject({ retransmit: true });

    const flight4 = toServer(server, client.lastFlight);
    toClient(client, flight4);
    expect(client.phase).toBe('awaiting-server-finished');
    const repeated = toClient(client, flight4);
    // Only the repeated ServerHelloDone triggers it, so a whole repeated flight costs one resend.
    expect(repeated.map((step) => step.retransmit === true)).toEqual([false, false, false, true]);
  });

  it('ignores a plaintext Finished once its own Finished is out', () => {
    const pair = newPair();
    const { flight5 } = runToFlight5(pair);
    const flight6 = toServer(pair.server, flight5);
    const finished = flight6.find((record) => record.type === ContentType.handshake)!;
    expect(pair.client.handleRecord(ContentType.handshake, 0, finished.payload)).toEqual({});
    expect(pair.client.phase).toBe('awaiting-server-finished');
    pair.client.handleRecord(ContentType.handshake, 1, finished.payload);
    expect(pair.client.phase).toBe('established');
  });

  it('rejects a ServerKeyExchange signed by another key than the pinned one', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pair = newPair({ pinned: other.publicKey });
    expect(() => runToFlight5(pair)).toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_SERVER_SIGNATURE', alert: 51 }));
    expect(pair.client.phase).toBe('failed');
  });

  it('rejects a corrupted ServerKeyExchange signature', () => {
    const pair = newPair({ server: { corruptSignature: true } });
    expect(() => runToFlight5(pair)).toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_SERVER_SIGNATURE' }));
  });

  it('rejects a ServerHello extension it did not offer', () => {
    const pair = newPair({ server: { extraServerHelloExtensions: [{ type: 0xff01, data: Buffer.of(0) }] } });
    expect(() => runToFlight5(pair)).toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_SERVER_HELLO', alert: 110 }));
  });

  it('rejects another cipher suite', () => {
    const pair = newPair({ server: { cipherSuite: 0xc0ac } });
    expect(() => runToFlight5(pair)).toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_SERVER_HELLO', alert: 47 }));
  });

  it('rejects a server Finished that does not match the transcript', () => {
    const pair = newPair({ server: { corruptFinished: true } });
    const { flight5 } = runToFlight5(pair);
    expect(() => toClient(pair.client, toServer(pair.server, flight5)))
      .toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_FINISHED', alert: 51 }));
  });

  it('rejects a message that does not belong in the flight', () => {
    const pair = newPair();
    const { client, server } = pair;
    const flight3 = lastFlight(toClient(client, toServer(server, client.start().flight!)));
    const [serverHello] = toServer(server, flight3);
    toClient(client, [serverHello!]);
    const certificate = encodeHandshakeFragment(HandshakeType.certificate, 2, 3, 0, Buffer.alloc(3));
    expect(() => client.handleRecord(ContentType.handshake, 0, certificate))
      .toThrow(expect.objectContaining({ code: 'ERR_DTLS_UNEXPECTED_MESSAGE', alert: 10 }));
  });

  it('gives up after too many HelloVerifyRequests', () => {
    const client = new ClientHandshake({
      serverPublicKey: serverKey.publicKey,
      clientCredential: null,
      maxHelloVerifyRequests: 2,
    });
    client.start();
    // HelloVerifyRequest body: version fefd, cookie of 2 bytes.
    const helloVerify = (seq: number) =>
      encodeHandshakeFragment(HandshakeType.helloVerifyRequest, seq, 5, 0, Buffer.from('fefd020102', 'hex'));
    client.handleRecord(ContentType.handshake, 0, helloVerify(0));
    client.handleRecord(ContentType.handshake, 0, helloVerify(1));
    expect(() => client.handleRecord(ContentType.handshake, 0, helloVerify(2)))
      .toThrow(expect.objectContaining({ code: 'ERR_DTLS_TOO_MANY_COOKIES' }));
  });

  it('produces a deterministic first ClientHello from injected randomness', () => {
    const client = new ClientHandshake({
      serverPublicKey: serverKey.publicKey,
      clientCredential: null,
      randomBytes: (size) => Buffer.alloc(size, 0xab),
    });
    const [record] = client.start().flight!;
    const expected = [
      '01', '000042', '0000', '000000', '000042', // handshake header: client_hello, length 66, message_seq 0
      'fefd', 'ab'.repeat(32), '00', '00', // version, random, empty session id, empty cookie
      '0002', 'c0ae', '01', '00', // one suite: TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, null compression
      '0016', // 22 bytes of extensions
      '000a', '0004', '0002', '0017', // supported_groups: secp256r1
      '000d', '0004', '0002', '0403', // signature_algorithms: ecdsa_secp256r1_sha256
      '0013', '0002', '01', '02', // client_certificate_type: RawPublicKey
    ].join('');
    expect(record!.payload.toString('hex')).toBe(expected);
    expect(record!.epoch).toBe(0);
  });
});
