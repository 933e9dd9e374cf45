/**
 * Encoders and parsers for the DTLS 1.2 handshake messages of the relay's profile (RFC 6347 4.3.2,
 * RFC 5246 7.4, RFC 8422 5, RFC 7250 3). Pure functions over Buffers: both directions are here so the
 * tests and the fake server speak the same codec the client uses.
 */
import { ByteReader, uint16, uint24, vector } from './byte-reader.ts';
import {
  CERTIFICATE_TYPE_RAW_PUBLIC_KEY,
  CIPHER_SUITE_ECDHE_ECDSA_AES_128_CCM_8,
  COMPRESSION_NULL,
  DTLS_1_2,
  EC_CURVE_TYPE_NAMED,
  ExtensionType,
  HANDSHAKE_HEADER_LENGTH,
  NAMED_CURVE_SECP256R1,
  RANDOM_LENGTH,
  SIGNATURE_ECDSA_SECP256R1_SHA256,
  VERIFY_DATA_LENGTH,
} from '../../api/dtls/constants.ts';

// ---------------------------------------------------------------- handshake header

/** One handshake fragment as carried in a record: the 12-byte DTLS header plus its slice of the body. */
export interface HandshakeFragment {
  readonly msgType: number;
  /** Length of the whole message body. */
  readonly length: number;
  readonly messageSeq: number;
  readonly fragmentOffset: number;
  readonly fragment: Buffer;
}

/** A record may carry several handshake fragments back to back. */
export function parseHandshakeFragments(recordPayload: Buffer): HandshakeFragment[] {
  const reader = new ByteReader(recordPayload, 'handshake record');
  const fragments: HandshakeFragment[] = [];
  while (reader.remaining > 0) {
    const msgType = reader.uint8();
    const length = reader.uint24();
    const messageSeq = reader.uint16();
    const fragmentOffset = reader.uint24();
    const fragment = reader.vector(3);
    if (fragmentOffset + fragment.length > length) reader.fail('fragment beyond message length');
    fragments.push({ msgType, length, messageSeq, fragmentOffset, fragment });
  }
  return fragments;
}

/** A whole message with offset 0 and fragment_length = length: the form sent and hashed into the transcript. */
export function encodeHandshakeMessage(msgType: number, messageSeq: number, body: Uint8Array): Buffer {
  return encodeHandshakeFragment(msgType, messageSeq, body.length, 0, body);
}

export function encodeHandshakeFragment(
  msgType: number,
  messageSeq: number,
  length: number,
  fragmentOffset: number,
  fragment: Uint8Array,
): Buffer {
  const message = Buffer.allocUnsafe(HANDSHAKE_HEADER_LENGTH + fragment.length);
  message[0] = msgType;
  message.writeUIntBE(length, 1, 3);
  message.writeUInt16BE(messageSeq, 4);
  message.writeUIntBE(fragmentOffset, 6, 3);
  message.writeUIntBE(fragment.length, 9, 3);
  message.set(fragment, HANDSHAKE_HEADER_LENGTH);
  return message;
}

// ---------------------------------------------------------------- extensions

export interface Extension {
  readonly type: number;
  readonly data: Buffer;
}

function encodeExtensions(extensions: readonly Extension[]): Buffer {
  if (extensions.length === 0) return Buffer.alloc(0);
  return vector(2, ...extensions.flatMap((extension) => [uint16(extension.type), vector(2, extension.data)]));
}

/** The extensions block is optional at the end of both hellos. */
function parseExtensions(reader: ByteReader): Extension[] {
  if (reader.remaining === 0) return [];
  const list = reader.nested(2, 'extensions');
  const extensions: Extension[] = [];
  const seen = new Set<number>();
  while (list.remaining > 0) {
    const type = list.uint16();
    if (seen.has(type)) list.fail(`duplicate extension ${type}`);
    seen.add(type);
    extensions.push({ type, data: list.vector(2) });
  }
  return extensions;
}

/**
 * Exactly what the server needs (docs/node-mbed-dtls.md): supported_groups {secp256r1},
 * signature_algorithms {ecdsa_secp256r1_sha256}, client_certificate_type {RawPublicKey}.
 */
export function profileClientHelloExtensions(): Extension[] {
  return [
    { type: ExtensionType.supportedGroups, data: vector(2, uint16(NAMED_CURVE_SECP256R1)) },
    { type: ExtensionType.signatureAlgorithms, data: vector(2, uint16(SIGNATURE_ECDSA_SECP256R1_SHA256)) },
    { type: ExtensionType.clientCertificateType, data: vector(1, Buffer.of(CERTIFICATE_TYPE_RAW_PUBLIC_KEY)) },
  ];
}

// ---------------------------------------------------------------- ClientHello

export interface ClientHello {
  readonly version: number;
  readonly random: Buffer;
  readonly sessionId: Buffer;
  readonly cookie: Buffer;
  readonly cipherSuites: readonly number[];
  readonly compressionMethods: readonly number[];
  readonly extensions: readonly Extension[];
}

export function profileClientHello(random: Buffer, cookie: Buffer): ClientHello {
  return {
    version: DTLS_1_2,
    random,
    sessionId: Buffer.alloc(0),
    cookie,
    cipherSuites: [CIPHER_SUITE_ECDHE_ECDSA_AES_128_CCM_8],
    compressionMethods: [COMPRESSION_NULL],
    extensions: profileClientHelloExtensions(),
  };
}

export function encodeClientHello(hello: ClientHello): Buffer {
  return Buffer.concat([
    uint16(hello.version),
    hello.random,
    vector(1, hello.sessionId),
    vector(1, hello.cookie),
    vector(2, ...hello.cipherSuites.map(uint16)),
    vector(1, Buffer.from(hello.compressionMethods)),
    encodeExtensions(hello.extensions),
  ]);
}

export function parseClientHello(body: Buffer): ClientHello {
  const reader = new ByteReader(body, 'ClientHello');
  const version = reader.uint16();
  const random = reader.bytes(RANDOM_LENGTH);
  const sessionId = reader.vector(1);
  const cookie = reader.vector(1);
  const suites = reader.nested(2, 'cipher suites');
  const cipherSuites: number[] = [];
  while (suites.remaining > 0) cipherSuites.push(suites.uint16());
  const compressionMethods = [...reader.vector(1)];
  const extensions = parseExtensions(reader);
  reader.expectEnd();
  return { version, random, sessionId, cookie, cipherSuites, compressionMethods, extensions };
}

// ---------------------------------------------------------------- HelloVerifyRequest

export interface HelloVerifyRequest {
  readonly version: number;
  readonly cookie: Buffer;
}

export function encodeHelloVerifyRequest(request: HelloVerifyRequest): Buffer {
  return Buffer.concat([uint16(request.version), vector(1, request.cookie)]);
}

export function parseHelloVerifyRequest(body: Buffer): HelloVerifyRequest {
  const reader = new ByteReader(body, 'HelloVerifyRequest');
  const version = reader.uint16();
  const cookie = reader.vector(1);
  reader.expectEnd();
  return { version, cookie };
}

// ---------------------------------------------------------------- ServerHello

export interface ServerHello {
  readonly version: number;
  readonly random: Buffer;
  readonly sessionId: Buffer;
  readonly cipherSuite: number;
  readonly compressionMethod: number;
  readonly extensions: readonly Extension[];
}

export function encodeServerHello(hello: ServerHello): Buffer {
  return Buffer.concat([
    uint16(hello.version),
    hello.random,
    vector(1, hello.sessionId),
    uint16(hello.cipherSuite),
    Buffer.of(hello.compressionMethod),
    encodeExtensions(hello.extensions),
  ]);
}

export function parseServerHello(body: Buffer): ServerHello {
  const reader = new ByteReader(body, 'ServerHello');
  const version = reader.uint16();
  const random = reader.bytes(RANDOM_LENGTH);
  const sessionId = reader.vector(1);
  if (sessionId.length > 32) reader.fail('session id longer than 32 bytes');
  const cipherSuite = reader.uint16();
  const compressionMethod = reader.uint8();
  const extensions = parseExtensions(reader);
  reader.expectEnd();
  return { version, random, sessionId, cipherSuite, compressionMethod, extensions };
}

// ---------------------------------------------------------------- ServerKeyExchange (ECDHE_ECDSA)

export interface ServerKeyExchange {
  readonly namedCurve: number;
  /** Uncompressed ECPoint. */
  readonly publicKey: Buffer;
  readonly signatureAlgorithm: number;
  /** DER ECDSA signature. */
  readonly signature: Buffer;
  /** ServerECDHParams exactly as received: curve_type | named_curve | point. Part of the signed data. */
  readonly params: Buffer;
}

export function encodeServerEcdhParams(namedCurve: number, publicKey: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(EC_CURVE_TYPE_NAMED), uint16(namedCurve), vector(1, publicKey)]);
}

export function encodeServerKeyExchange(params: Buffer, signatureAlgorithm: number, signature: Uint8Array): Buffer {
  return Buffer.concat([params, uint16(signatureAlgorithm), vector(2, signature)]);
}

export function parseServerKeyExchange(body: Buffer): ServerKeyExchange {
  const reader = new ByteReader(body, 'ServerKeyExchange');
  const curveType = reader.uint8();
  if (curveType !== EC_CURVE_TYPE_NAMED) reader.fail(`curve type ${curveType} is not named_curve`);
  const namedCurve = reader.uint16();
  const publicKey = reader.vector(1);
  const params = body.subarray(0, body.length - reader.remaining);
  const signatureAlgorithm = reader.uint16();
  const signature = reader.vector(2);
  reader.expectEnd();
  return { namedCurve, publicKey, signatureAlgorithm, signature, params };
}

/** The ServerKeyExchange signature covers client_random | server_random | ServerECDHParams (RFC 8422 5.4). */
export function serverKeyExchangeSignedData(clientRandom: Buffer, serverRandom: Buffer, params: Buffer): Buffer {
  return Buffer.concat([clientRandom, serverRandom, params]);
}

// ---------------------------------------------------------------- CertificateRequest

export interface CertificateRequest {
  readonly certificateTypes: readonly number[];
  readonly signatureAlgorithms: readonly number[];
  /** DistinguishedName list, kept raw: the raw-public-key profile does not use it. */
  readonly certificateAuthorities: Buffer;
}

export function encodeCertificateRequest(request: CertificateRequest): Buffer {
  return Buffer.concat([
    vector(1, Buffer.from(request.certificateTypes)),
    vector(2, ...request.signatureAlgorithms.map(uint16)),
    vector(2, request.certificateAuthorities),
  ]);
}

export function parseCertificateRequest(body: Buffer): CertificateRequest {
  const reader = new ByteReader(body, 'CertificateRequest');
  const certificateTypes = [...reader.vector(1)];
  const algorithms = reader.nested(2, 'signature algorithms');
  const signatureAlgorithms: number[] = [];
  while (algorithms.remaining > 0) signatureAlgorithms.push(algorithms.uint16());
  const certificateAuthorities = reader.vector(2);
  reader.expectEnd();
  return { certificateTypes, signatureAlgorithms, certificateAuthorities };
}

// ---------------------------------------------------------------- ServerHelloDone

export function parseServerHelloDone(body: Buffer): void {
  new ByteReader(body, 'ServerHelloDone').expectEnd();
}

// ---------------------------------------------------------------- Certificate (RFC 7250 raw public key)

/**
 * RFC 7250 3: the RawPublicKey Certificate body is the SubjectPublicKeyInfo DER behind a 3-byte length.
 * With no key it is the empty certificate_list, three zero bytes (RFC 5246 7.4.6).
 */
export function encodeRawPublicKeyCertificate(spki: Uint8Array | null): Buffer {
  return spki === null ? Buffer.alloc(3) : Buffer.concat([uint24(spki.length), spki]);
}

/** Returns the SPKI DER, or null for the empty certificate. */
export function parseRawPublicKeyCertificate(body: Buffer): Buffer | null {
  const reader = new ByteReader(body, 'Certificate');
  const spki = reader.vector(3);
  reader.expectEnd();
  return spki.length === 0 ? null : spki;
}

// ---------------------------------------------------------------- ClientKeyExchange

export function encodeClientKeyExchange(publicKey: Uint8Array): Buffer {
  return vector(1, publicKey);
}

export function parseClientKeyExchange(body: Buffer): Buffer {
  const reader = new ByteReader(body, 'ClientKeyExchange');
  const publicKey = reader.vector(1);
  reader.expectEnd();
  return publicKey;
}

// ---------------------------------------------------------------- CertificateVerify

export interface DigitallySigned {
  readonly signatureAlgorithm: number;
  readonly signature: Buffer;
}

export function encodeCertificateVerify(signed: DigitallySigned): Buffer {
  return Buffer.concat([uint16(signed.signatureAlgorithm), vector(2, signed.signature)]);
}

export function parseCertificateVerify(body: Buffer): DigitallySigned {
  const reader = new ByteReader(body, 'CertificateVerify');
  const signatureAlgorithm = reader.uint16();
  const signature = reader.vector(2);
  reader.expectEnd();
  return { signatureAlgorithm, signature };
}

// ---------------------------------------------------------------- Finished

export function parseFinished(body: Buffer): Buffer {
  const reader = new ByteReader(body, 'Finished');
  const verifyData = reader.bytes(VERIFY_DATA_LENGTH);
  reader.expectEnd();
  return verifyData;
}
