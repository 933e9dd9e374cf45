/**
 * The client side of the DTLS 1.2 handshake for the relay's profile, as a pure state machine: records in,
 * flights out. No sockets and no timers; client.ts owns retransmission and record protection.
 *
 *   C: ClientHello (seq 0, no cookie)                 -> flight 1
 *   S: HelloVerifyRequest (seq 0)                     <- flight 2
 *   C: ClientHello (seq 1, cookie)                    -> flight 3   transcript starts here
 *   S: ServerHello, ServerKeyExchange,
 *      CertificateRequest, ServerHelloDone            <- flight 4   (no server Certificate: the key is pinned)
 *   C: Certificate (raw public key or empty),
 *      ClientKeyExchange, [CertificateVerify],
 *      ChangeCipherSpec, Finished (epoch 1)           -> flight 5
 *   S: ChangeCipherSpec, Finished (epoch 1)           <- flight 6
 */
import {
  createECDH,
  createHash,
  randomBytes as cryptoRandomBytes,
  sign,
  timingSafeEqual,
  verify,
  type ECDH,
  type KeyObject,
} from 'node:crypto';
import {
  AlertDescription,
  CERTIFICATE_TYPE_RAW_PUBLIC_KEY,
  CIPHER_SUITE_ECDHE_ECDSA_AES_128_CCM_8,
  CLIENT_CERTIFICATE_TYPE_ECDSA_SIGN,
  COMPRESSION_NULL,
  ContentType,
  DTLS_1_0,
  DTLS_1_2,
  ExtensionType,
  HandshakeType,
  NAMED_CURVE_SECP256R1,
  P256_POINT_LENGTH,
  RANDOM_LENGTH,
  SIGNATURE_ECDSA_SECP256R1_SHA256,
} from '../../api/dtls/constants.ts';
import { DtlsClientError, type DtlsErrorCode } from './errors.ts';
import {
  encodeCertificateVerify,
  encodeClientHello,
  encodeClientKeyExchange,
  encodeHandshakeMessage,
  encodeRawPublicKeyCertificate,
  parseCertificateRequest,
  parseFinished,
  parseHandshakeFragments,
  parseHelloVerifyRequest,
  parseServerHello,
  parseServerHelloDone,
  parseServerKeyExchange,
  profileClientHello,
  serverKeyExchangeSignedData,
  type CertificateRequest,
  type ServerHello,
} from './handshake-messages.ts';
import { HandshakeReassembler, type HandshakeMessage } from './handshake-reassembly.ts';
import { deriveMasterSecret, deriveTrafficKeys, finishedVerifyData, type TrafficKeys } from '../../api/dtls/prf.ts';

export interface ClientCredential {
  readonly privateKey: KeyObject;
  /** SubjectPublicKeyInfo DER of the private key's public half, sent as the RFC 7250 Certificate. */
  readonly spki: Buffer;
}

export interface ClientHandshakeOptions {
  /** The relay's pinned public key: it verifies the ServerKeyExchange signature. */
  readonly serverPublicKey: KeyObject;
  /** null sends an empty Certificate: the server then completes the handshake unauthenticated. */
  readonly clientCredential: ClientCredential | null;
  /** Randomness source, injectable so tests can be deterministic. */
  readonly randomBytes?: (size: number) => Buffer;
  /** Fixed ECDHE private key (32 bytes), for deterministic tests only. */
  readonly ecdhPrivateKey?: Buffer;
  /** How many HelloVerifyRequests to follow before giving up (a server restart changes its cookie secret). */
  readonly maxHelloVerifyRequests?: number;
}

export interface OutgoingRecord {
  readonly type: number;
  readonly epoch: 0 | 1;
  /** Record plaintext: handshake message(s), ChangeCipherSpec, or alert. */
  readonly payload: Buffer;
}

export interface HandshakeStep {
  /** A new flight to send now; it also becomes the flight to retransmit. */
  readonly flight?: readonly OutgoingRecord[];
  /** The server repeated its previous flight, so ours was lost: resend it (RFC 6347 4.2.4). */
  readonly retransmit?: boolean;
  /** Epoch 1 traffic keys, given together with the flight that first needs them. */
  readonly keys?: TrafficKeys;
  /** The server's Finished verified: the session is established. */
  readonly established?: boolean;
}

export type HandshakePhase =
  | 'idle'
  | 'awaiting-server-hello'
  | 'awaiting-server-hello-done'
  | 'awaiting-server-finished'
  | 'established'
  | 'failed';

export interface EstablishedSessionInfo {
  readonly sessionId: Buffer;
  readonly clientRandom: Buffer;
  readonly serverRandom: Buffer;
  /** True when the client sent its raw public key and proved possession with CertificateVerify. */
  readonly clientAuthenticated: boolean;
}

const EMPTY_STEP: HandshakeStep = Object.freeze({});
const CHANGE_CIPHER_SPEC_PAYLOAD = Buffer.of(1);

export class ClientHandshake {
  readonly #serverPublicKey: KeyObject;
  readonly #credential: ClientCredential | null;
  readonly #randomBytes: (size: number) => Buffer;
  readonly #ecdhPrivateKey: Buffer | undefined;
  readonly #maxHelloVerifyRequests: number;
  readonly #reassembler = new HandshakeReassembler();

  #phase: HandshakePhase = 'idle';
  readonly #clientRandom: Buffer;
  #nextSendSeq = 0;
  /** The latest ClientHello as hashed: the one the server answers with ServerHello opens the transcript. */
  #currentHello: Buffer = Buffer.alloc(0);
  #helloVerifyRequests = 0;
  /** message_seq of the last message of the server's previous flight; its repetition triggers a resend. */
  #previousServerFlightEnd = -1;
  #lastFlight: readonly OutgoingRecord[] = [];
  #transcript: Buffer[] = [];

  #serverHello: ServerHello | null = null;
  #rawPublicKeyAgreed = false;
  #serverEcdhPublicKey: Buffer | null = null;
  #certificateRequest: CertificateRequest | null = null;
  #expectedServerVerifyData: Buffer | null = null;
  #clientAuthenticated = false;

  constructor(options: ClientHandshakeOptions) {
    this.#serverPublicKey = options.serverPublicKey;
    this.#credential = options.clientCredential;
    this.#randomBytes = options.randomBytes ?? cryptoRandomBytes;
    this.#ecdhPrivateKey = options.ecdhPrivateKey;
    this.#maxHelloVerifyRequests = options.maxHelloVerifyRequests ?? 4;
    this.#clientRandom = this.#randomBytes(RANDOM_LENGTH);
  }

  get phase(): HandshakePhase {
    return this.#phase;
  }

  /** The flight to resend when the retransmission timer fires. */
  get lastFlight(): readonly OutgoingRecord[] {
    return this.#lastFlight;
  }

  get sessionInfo(): EstablishedSessionInfo | null {
    if (this.#phase !== 'established' || this.#serverHello === null) return null;
    return {
      sessionId: this.#serverHello.sessionId,
      clientRandom: this.#clientRandom,
      serverRandom: this.#serverHello.random,
      clientAuthenticated: this.#clientAuthenticated,
    };
  }

  start(): HandshakeStep {
    if (this.#phase !== 'idle') throw new Error('handshake already started');
    this.#phase = 'awaiting-server-hello';
    return { flight: this.#setFlight([this.#nextClientHello(Buffer.alloc(0))]) };
  }

  /**
   * Feeds one handshake or ChangeCipherSpec record: epoch 0 as received, epoch 1 already decrypted.
   * Throws DtlsClientError (with the alert to send) when the handshake must fail; the phase is then 'failed'.
   */
  handleRecord(type: number, epoch: number, payload: Buffer): HandshakeStep {
    if (this.#phase === 'idle' || this.#phase === 'established' || this.#phase === 'failed') return EMPTY_STEP;
    try {
      if (type === ContentType.changeCipherSpec) {
        // Only a signal: the server Finished is read in epoch 1 whether or not its CCS arrived first.
        return EMPTY_STEP;
      }
      if (type !== ContentType.handshake) return EMPTY_STEP;
      return this.#handleHandshakeRecord(epoch, payload);
    } catch (error) {
      this.#fail();
      throw error;
    }
  }

  #handleHandshakeRecord(epoch: number, payload: Buffer): HandshakeStep {
    const awaitingFinished = this.#phase === 'awaiting-server-finished';
    let flight: readonly OutgoingRecord[] | undefined;
    let keys: TrafficKeys | undefined;
    let retransmit = false;
    let established = false;

    for (const fragment of parseHandshakeFragments(payload)) {
      // Before our Finished is out nothing protected can come. After it, the only new message is the
      // protected server Finished: new plaintext ones are forged, old ones may be a repeated flight 4.
      if (epoch !== 0 && !awaitingFinished) continue;
      if (epoch === 0 && awaitingFinished && fragment.messageSeq >= this.#reassembler.nextSeq) continue;

      const disposition = this.#reassembler.add(fragment);
      if (disposition === 'old' && fragment.messageSeq === this.#previousServerFlightEnd) retransmit = true;

      for (let message = this.#reassembler.take(); message !== undefined; message = this.#reassembler.take()) {
        const step = this.#handleMessage(message);
        if (step.flight !== undefined) {
          flight = step.flight;
          retransmit = false;
        }
        keys ??= step.keys;
        established ||= step.established === true;
        if (this.#phase === 'established') break;
      }
      if (this.#phase === 'established') break;
    }

    if (flight === undefined && !retransmit && keys === undefined && !established) return EMPTY_STEP;
    return { flight, retransmit, keys, established };
  }

  #handleMessage(message: HandshakeMessage): HandshakeStep {
    switch (this.#phase) {
      case 'awaiting-server-hello':
        if (message.msgType === HandshakeType.helloVerifyRequest) return this.#onHelloVerifyRequest(message);
        if (message.msgType === HandshakeType.serverHello) return this.#onServerHello(message);
        break;
      case 'awaiting-server-hello-done':
        this.#transcript.push(encodeHandshakeMessage(message.msgType, message.messageSeq, message.body));
        if (message.msgType === HandshakeType.serverKeyExchange && this.#serverEcdhPublicKey === null) {
          return this.#onServerKeyExchange(message);
        }
        if (message.msgType === HandshakeType.certificateRequest && this.#serverEcdhPublicKey !== null
          && this.#certificateRequest === null) {
          this.#certificateRequest = parseCertificateRequest(message.body);
          return EMPTY_STEP;
        }
        if (message.msgType === HandshakeType.serverHelloDone && this.#serverEcdhPublicKey !== null) {
          parseServerHelloDone(message.body);
          this.#previousServerFlightEnd = message.messageSeq;
          return this.#sendClientKeyExchangeFlight();
        }
        break;
      case 'awaiting-server-finished':
        if (message.msgType === HandshakeType.finished) return this.#onServerFinished(message);
        break;
      default:
        break;
    }
    throw new DtlsClientError('ERR_DTLS_UNEXPECTED_MESSAGE',
      `unexpected handshake message type ${message.msgType} (message_seq ${message.messageSeq}) in phase ${this.#phase}`,
      { alert: AlertDescription.unexpectedMessage });
  }

  #onHelloVerifyRequest(message: HandshakeMessage): HandshakeStep {
    const request = parseHelloVerifyRequest(message.body);
    if (request.version !== DTLS_1_2 && request.version !== DTLS_1_0) {
      throw failure('ERR_DTLS_BAD_SERVER_HELLO', `HelloVerifyRequest version ${hex(request.version)}`,
        AlertDescription.protocolVersion);
    }
    if (request.cookie.length === 0) {
      throw failure('ERR_DTLS_BAD_SERVER_HELLO', 'HelloVerifyRequest with an empty cookie', AlertDescription.illegalParameter);
    }
    if (++this.#helloVerifyRequests > this.#maxHelloVerifyRequests) {
      throw failure('ERR_DTLS_TOO_MANY_COOKIES', `more than ${this.#maxHelloVerifyRequests} HelloVerifyRequests`,
        AlertDescription.handshakeFailure);
    }
    this.#previousServerFlightEnd = message.messageSeq;
    return { flight: this.#setFlight([this.#nextClientHello(Buffer.from(request.cookie))]) };
  }

  #onServerHello(message: HandshakeMessage): HandshakeStep {
    const hello = parseServerHello(message.body);
    if (hello.version !== DTLS_1_2) {
      throw failure('ERR_DTLS_BAD_SERVER_HELLO', `server chose version ${hex(hello.version)}`, AlertDescription.protocolVersion);
    }
    if (hello.cipherSuite !== CIPHER_SUITE_ECDHE_ECDSA_AES_128_CCM_8) {
      throw failure('ERR_DTLS_BAD_SERVER_HELLO', `server chose cipher suite ${hex(hello.cipherSuite)}`,
        AlertDescription.illegalParameter);
    }
    if (hello.compressionMethod !== COMPRESSION_NULL) {
      throw failure('ERR_DTLS_BAD_SERVER_HELLO', `server chose compression ${hello.compressionMethod}`,
        AlertDescription.illegalParameter);
    }
    for (const extension of hello.extensions) {
      // RFC 5246 7.4.1.4: a server may only answer extensions the client offered.
      if (extension.type !== ExtensionType.clientCertificateType) {
        throw failure('ERR_DTLS_BAD_SERVER_HELLO', `server sent extension ${extension.type} that was not offered`,
          AlertDescription.unsupportedExtension);
      }
      // RFC 7250 4.2: the server answers with one certificate type, not a list.
      if (extension.data.length !== 1 || extension.data[0] !== CERTIFICATE_TYPE_RAW_PUBLIC_KEY) {
        throw failure('ERR_DTLS_BAD_SERVER_HELLO', 'server chose a client certificate type other than RawPublicKey',
          AlertDescription.unsupportedCertificate);
      }
      this.#rawPublicKeyAgreed = true;
    }
    this.#serverHello = hello;
    this.#transcript = [this.#currentHello, encodeHandshakeMessage(message.msgType, message.messageSeq, message.body)];
    this.#phase = 'awaiting-server-hello-done';
    return EMPTY_STEP;
  }

  #onServerKeyExchange(message: HandshakeMessage): HandshakeStep {
    const exchange = parseServerKeyExchange(message.body);
    if (exchange.namedCurve !== NAMED_CURVE_SECP256R1) {
      throw failure('ERR_DTLS_BAD_SERVER_KEY_EXCHANGE', `server chose curve ${exchange.namedCurve}`,
        AlertDescription.illegalParameter);
    }
    if (exchange.publicKey.length !== P256_POINT_LENGTH || exchange.publicKey[0] !== 0x04) {
      throw failure('ERR_DTLS_BAD_SERVER_KEY_EXCHANGE', 'server ECDH key is not an uncompressed P-256 point',
        AlertDescription.illegalParameter);
    }
    if (exchange.signatureAlgorithm !== SIGNATURE_ECDSA_SECP256R1_SHA256) {
      throw failure('ERR_DTLS_BAD_SERVER_KEY_EXCHANGE', `server signed with algorithm ${hex(exchange.signatureAlgorithm)}`,
        AlertDescription.illegalParameter);
    }
    const signed = serverKeyExchangeSignedData(this.#clientRandom, this.#serverHello!.random, exchange.params);
    let valid = false;
    try {
      valid = verify('sha256', signed, { key: this.#serverPublicKey, dsaEncoding: 'der' }, exchange.signature);
    } catch {
      valid = false;
    }
    if (!valid) {
      throw failure('ERR_DTLS_BAD_SERVER_SIGNATURE',
        'ServerKeyExchange signature does not verify with the pinned server key', AlertDescription.decryptError);
    }
    this.#serverEcdhPublicKey = Buffer.from(exchange.publicKey);
    return EMPTY_STEP;
  }

  #sendClientKeyExchangeFlight(): HandshakeStep {
    const serverHello = this.#serverHello!;
    const ecdh = this.#createEcdh();
    let premaster: Buffer;
    try {
      premaster = ecdh.computeSecret(this.#serverEcdhPublicKey!);
    } catch (cause) {
      throw new DtlsClientError('ERR_DTLS_BAD_SERVER_KEY_EXCHANGE', 'server ECDH key is not a point on P-256',
        { alert: AlertDescription.illegalParameter, cause });
    }

    const records: OutgoingRecord[] = [];
    const addMessage = (msgType: number, body: Buffer): void => {
      const encoded = encodeHandshakeMessage(msgType, this.#nextSendSeq++, body);
      this.#transcript.push(encoded);
      records.push({ type: ContentType.handshake, epoch: 0, payload: encoded });
    };

    const request = this.#certificateRequest;
    const credential = request !== null && this.#canAuthenticate(request) ? this.#credential : null;
    if (request !== null) addMessage(HandshakeType.certificate, encodeRawPublicKeyCertificate(credential?.spki ?? null));
    addMessage(HandshakeType.clientKeyExchange, encodeClientKeyExchange(ecdh.getPublicKey()));
    if (credential !== null) {
      const signature = sign('sha256', Buffer.concat(this.#transcript), { key: credential.privateKey, dsaEncoding: 'der' });
      addMessage(HandshakeType.certificateVerify,
        encodeCertificateVerify({ signatureAlgorithm: SIGNATURE_ECDSA_SECP256R1_SHA256, signature }));
      this.#clientAuthenticated = true;
    }
    records.push({ type: ContentType.changeCipherSpec, epoch: 0, payload: CHANGE_CIPHER_SPEC_PAYLOAD });

    const master = deriveMasterSecret(premaster, this.#clientRandom, serverHello.random);
    const keys = deriveTrafficKeys(master, this.#clientRandom, serverHello.random);
    const clientVerifyData = finishedVerifyData(master, 'client finished', transcriptHash(this.#transcript));
    const finished = encodeHandshakeMessage(HandshakeType.finished, this.#nextSendSeq++, clientVerifyData);
    this.#transcript.push(finished);
    records.push({ type: ContentType.handshake, epoch: 1, payload: finished });
    // The server Finished covers everything up to ours, so it can be computed now and the transcript dropped.
    this.#expectedServerVerifyData = finishedVerifyData(master, 'server finished', transcriptHash(this.#transcript));
    this.#transcript = [];
    this.#phase = 'awaiting-server-finished';
    return { flight: this.#setFlight(records), keys };
  }

  #onServerFinished(message: HandshakeMessage): HandshakeStep {
    const verifyData = parseFinished(message.body);
    if (!timingSafeEqual(verifyData, this.#expectedServerVerifyData!)) {
      throw failure('ERR_DTLS_BAD_FINISHED', 'server Finished does not match the handshake', AlertDescription.decryptError);
    }
    this.#phase = 'established';
    this.#lastFlight = [];
    this.#reassembler.clear();
    this.#expectedServerVerifyData = null;
    return { established: true };
  }

  /** RFC 5246 7.4.6: without an acceptable key type the client answers with an empty Certificate. */
  #canAuthenticate(request: CertificateRequest): boolean {
    return this.#credential !== null
      && this.#rawPublicKeyAgreed
      && request.certificateTypes.includes(CLIENT_CERTIFICATE_TYPE_ECDSA_SIGN)
      && request.signatureAlgorithms.includes(SIGNATURE_ECDSA_SECP256R1_SHA256);
  }

  #nextClientHello(cookie: Buffer): OutgoingRecord {
    const body = encodeClientHello(profileClientHello(this.#clientRandom, cookie));
    this.#currentHello = encodeHandshakeMessage(HandshakeType.clientHello, this.#nextSendSeq++, body);
    return { type: ContentType.handshake, epoch: 0, payload: this.#currentHello };
  }

  #createEcdh(): ECDH {
    const ecdh = createECDH('prime256v1');
    if (this.#ecdhPrivateKey !== undefined) ecdh.setPrivateKey(this.#ecdhPrivateKey);
    else ecdh.generateKeys();
    return ecdh;
  }

  #setFlight(records: readonly OutgoingRecord[]): readonly OutgoingRecord[] {
    this.#lastFlight = records;
    return records;
  }

  #fail(): void {
    this.#phase = 'failed';
    this.#lastFlight = [];
    this.#transcript = [];
    this.#reassembler.clear();
  }
}

function transcriptHash(messages: readonly Buffer[]): Buffer {
  const hash = createHash('sha256');
  for (const message of messages) hash.update(message);
  return hash.digest();
}

function failure(code: DtlsErrorCode, message: string, alert: number): DtlsClientError {
  return new DtlsClientError(code, message, { alert });
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(4, '0')}`;
}
