/**
 * The server side of the relay's handshake profile, pure and in memory, mirroring what node-mbed-dtls does on
 * the wire (HelloVerifyRequest, no server Certificate, CertificateRequest for a raw public key). Test double
 * only: knobs let tests make it misbehave.
 */
import {
  createECDH,
  createHash,
  createHmac,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
  createPublicKey,
  type KeyObject,
} from 'node:crypto';
import {
  CERTIFICATE_TYPE_RAW_PUBLIC_KEY,
  CIPHER_SUITE_ECDHE_ECDSA_AES_128_CCM_8,
  CLIENT_CERTIFICATE_TYPE_ECDSA_SIGN,
  ContentType,
  DTLS_1_2,
  ExtensionType,
  HandshakeType,
  NAMED_CURVE_SECP256R1,
  SIGNATURE_ECDSA_SECP256R1_SHA256,
} from '../../../api/dtls/constants.ts';
import {
  encodeCertificateRequest,
  encodeHandshakeMessage,
  encodeHelloVerifyRequest,
  encodeServerEcdhParams,
  encodeServerHello,
  encodeServerKeyExchange,
  parseCertificateVerify,
  parseClientHello,
  parseClientKeyExchange,
  parseFinished,
  parseHandshakeFragments,
  parseRawPublicKeyCertificate,
  serverKeyExchangeSignedData,
  type ClientHello,
  type Extension,
} from '../../../client/dtls/handshake-messages.ts';
import { deriveMasterSecret, deriveTrafficKeys, finishedVerifyData, type TrafficKeys } from '../../../api/dtls/prf.ts';

export interface FakeServerOptions {
  readonly serverKey: KeyObject;
  /** Send a HelloVerifyRequest first (default true, like the real server). */
  readonly cookies?: boolean;
  /** Send a CertificateRequest (default true). */
  readonly requestCertificate?: boolean;
  /** Flip a byte of the ServerKeyExchange signature. */
  readonly corruptSignature?: boolean;
  /** Flip a byte of the server Finished. */
  readonly corruptFinished?: boolean;
  /** Extra ServerHello extensions, e.g. one the client never offered. */
  readonly extraServerHelloExtensions?: readonly Extension[];
  /** Cipher suite to choose instead of the profile's. */
  readonly cipherSuite?: number;
}

export interface ServerRecord {
  readonly type: number;
  readonly epoch: 0 | 1;
  readonly payload: Buffer;
}

export type FakeServerPhase = 'hello' | 'client-flight' | 'established';

export class FakeServerHandshake {
  readonly #options: FakeServerOptions;
  readonly #cookieSecret = randomBytes(16);
  readonly #serverRandom = randomBytes(32);
  readonly #ecdh = createECDH('prime256v1');
  #phase: FakeServerPhase = 'hello';
  #clientHello: ClientHello | null = null;
  #transcript: Buffer[] = [];
  #nextSendSeq = 0;
  #nextReceiveSeq = 0;
  #master: Buffer | null = null;
  #keys: TrafficKeys | null = null;
  #clientSpki: Buffer | null = null;
  #clientVerified = false;
  #lastFlight: ServerRecord[] = [];
  /** Every ClientHello seen, for assertions. */
  readonly clientHellos: ClientHello[] = [];

  constructor(options: FakeServerOptions) {
    this.#options = options;
    this.#ecdh.generateKeys();
  }

  get phase(): FakeServerPhase {
    return this.#phase;
  }

  get keys(): TrafficKeys | null {
    return this.#keys;
  }

  get clientSpki(): Buffer | null {
    return this.#clientSpki;
  }

  /** True when the client proved possession of the key it sent. */
  get clientVerified(): boolean {
    return this.#clientVerified;
  }

  get lastFlight(): readonly ServerRecord[] {
    return this.#lastFlight;
  }

  /** Handles one client record (epoch 1 already decrypted); returns the records to send back. */
  handleRecord(type: number, epoch: number, payload: Buffer): ServerRecord[] {
    if (type !== ContentType.handshake) return [];
    const out: ServerRecord[] = [];
    for (const fragment of parseHandshakeFragments(payload)) {
      const whole = encodeHandshakeMessage(fragment.msgType, fragment.messageSeq, fragment.fragment);
      out.push(...this.#handleMessage(fragment.msgType, fragment.messageSeq, fragment.fragment, whole, epoch));
    }
    return out;
  }

  #handleMessage(type: number, seq: number, body: Buffer, whole: Buffer, epoch: number): ServerRecord[] {
    if (type === HandshakeType.clientHello) return this.#onClientHello(seq, body, whole);
    // The client resent its flight: answer its Finished with ours again, skip what was processed.
    if (this.#phase === 'established') return type === HandshakeType.finished ? this.#lastFlight : [];
    if (this.#phase !== 'client-flight' || seq < this.#nextReceiveSeq) return [];
    this.#nextReceiveSeq = seq + 1;
    switch (type) {
      case HandshakeType.certificate:
        this.#transcript.push(whole);
        this.#clientSpki = parseRawPublicKeyCertificate(body);
        return [];
      case HandshakeType.clientKeyExchange: {
        this.#transcript.push(whole);
        const clientHello = this.#clientHello!;
        const premaster = this.#ecdh.computeSecret(parseClientKeyExchange(body));
        this.#master = deriveMasterSecret(premaster, clientHello.random, this.#serverRandom);
        this.#keys = deriveTrafficKeys(this.#master, clientHello.random, this.#serverRandom);
        return [];
      }
      case HandshakeType.certificateVerify: {
        const signed = parseCertificateVerify(body);
        const publicKey = createPublicKey({ key: this.#clientSpki!, format: 'der', type: 'spki' });
        this.#clientVerified = signed.signatureAlgorithm === SIGNATURE_ECDSA_SECP256R1_SHA256
          && verify('sha256', Buffer.concat(this.#transcript), { key: publicKey, dsaEncoding: 'der' }, signed.signature);
        if (!this.#clientVerified) throw new Error('CertificateVerify does not verify');
        this.#transcript.push(whole);
        return [];
      }
      case HandshakeType.finished: {
        if (epoch !== 1) throw new Error('client Finished must be protected');
        const expected = finishedVerifyData(this.#master!, 'client finished', sha256(this.#transcript));
        if (!timingSafeEqual(parseFinished(body), expected)) throw new Error('client Finished does not verify');
        this.#transcript.push(whole);
        const verifyData = finishedVerifyData(this.#master!, 'server finished', sha256(this.#transcript));
        if (this.#options.corruptFinished === true) verifyData[0]! ^= 0xff;
        this.#phase = 'established';
        this.#lastFlight = [
          { type: ContentType.changeCipherSpec, epoch: 0, payload: Buffer.of(1) },
          { type: ContentType.handshake, epoch: 1, payload: encodeHandshakeMessage(HandshakeType.finished, this.#nextSendSeq++, verifyData) },
        ];
        return this.#lastFlight;
      }
      default:
        throw new Error(`fake server got unexpected message ${type}`);
    }
  }

  #onClientHello(seq: number, body: Buffer, whole: Buffer): ServerRecord[] {
    const hello = parseClientHello(body);
    this.clientHellos.push(hello);
    if (this.#phase !== 'hello') return this.#lastFlight; // a retransmitted hello: repeat our flight
    const cookie = createHmac('sha256', this.#cookieSecret).update(hello.random).digest().subarray(0, 16);
    if (this.#options.cookies !== false && !hello.cookie.equals(cookie)) {
      // Like mbedtls: the HelloVerifyRequest carries the ClientHello's message_seq, and no state is kept.
      return [{
        type: ContentType.handshake,
        epoch: 0,
        payload: encodeHandshakeMessage(HandshakeType.helloVerifyRequest, seq,
          encodeHelloVerifyRequest({ version: DTLS_1_2, cookie })),
      }];
    }
    this.#clientHello = hello;
    this.#nextSendSeq = seq;
    this.#nextReceiveSeq = seq + 1;
    this.#transcript = [whole];
    const messages: Buffer[] = [];
    const add = (type: number, messageBody: Buffer): void => {
      const message = encodeHandshakeMessage(type, this.#nextSendSeq++, messageBody);
      this.#transcript.push(message);
      messages.push(message);
    };
    add(HandshakeType.serverHello, encodeServerHello({
      version: DTLS_1_2,
      random: this.#serverRandom,
      sessionId: randomBytes(32),
      cipherSuite: this.#options.cipherSuite ?? CIPHER_SUITE_ECDHE_ECDSA_AES_128_CCM_8,
      compressionMethod: 0,
      extensions: [
        { type: ExtensionType.clientCertificateType, data: Buffer.of(CERTIFICATE_TYPE_RAW_PUBLIC_KEY) },
        ...(this.#options.extraServerHelloExtensions ?? []),
      ],
    }));
    const params = encodeServerEcdhParams(NAMED_CURVE_SECP256R1, this.#ecdh.getPublicKey());
    const signature = sign('sha256', serverKeyExchangeSignedData(hello.random, this.#serverRandom, params),
      { key: this.#options.serverKey, dsaEncoding: 'der' });
    if (this.#options.corruptSignature === true) signature[signature.length - 1]! ^= 0x01;
    add(HandshakeType.serverKeyExchange, encodeServerKeyExchange(params, SIGNATURE_ECDSA_SECP256R1_SHA256, signature));
    if (this.#options.requestCertificate !== false) {
      add(HandshakeType.certificateRequest, encodeCertificateRequest({
        certificateTypes: [CLIENT_CERTIFICATE_TYPE_ECDSA_SIGN],
        signatureAlgorithms: [SIGNATURE_ECDSA_SECP256R1_SHA256],
        certificateAuthorities: Buffer.alloc(0),
      }));
    }
    add(HandshakeType.serverHelloDone, Buffer.alloc(0));
    this.#phase = 'client-flight';
    this.#lastFlight = messages.map((payload) => ({ type: ContentType.handshake, epoch: 0, payload }));
    return this.#lastFlight;
  }
}

function sha256(messages: readonly Buffer[]): Buffer {
  const hash = createHash('sha256');
  for (const message of messages) hash.update(message);
  return hash.digest();
}
