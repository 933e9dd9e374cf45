import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ExtensionType, HandshakeType } from '../../api/dtls/constants.ts';
import {
  encodeCertificateRequest,
  encodeCertificateVerify,
  encodeClientHello,
  encodeClientKeyExchange,
  encodeHandshakeFragment,
  encodeHandshakeMessage,
  encodeHelloVerifyRequest,
  encodeRawPublicKeyCertificate,
  encodeServerEcdhParams,
  encodeServerHello,
  encodeServerKeyExchange,
  parseCertificateRequest,
  parseCertificateVerify,
  parseClientHello,
  parseClientKeyExchange,
  parseFinished,
  parseHandshakeFragments,
  parseHelloVerifyRequest,
  parseRawPublicKeyCertificate,
  parseServerHello,
  parseServerHelloDone,
  parseServerKeyExchange,
  profileClientHello,
  serverKeyExchangeSignedData,
} from '../../client/dtls/handshake-messages.ts';
import { spkiDer } from '../../client/keys.ts';

const random = Buffer.alloc(32, 0x5a);

describe('handshake header', () => {
  it('encodes a whole message with fragment_offset 0 and fragment_length = length', () => {
    const message = encodeHandshakeMessage(HandshakeType.finished, 5, Buffer.alloc(12, 1));
    expect(message.subarray(0, 12).toString('hex')).toBe('14' + '00000c' + '0005' + '000000' + '00000c');
  });

  it('parses several fragments carried in one record', () => {
    const body = Buffer.from('fragmented body!');
    const record = Buffer.concat([
      encodeHandshakeFragment(HandshakeType.serverKeyExchange, 2, body.length, 0, body.subarray(0, 6)),
      encodeHandshakeFragment(HandshakeType.serverKeyExchange, 2, body.length, 6, body.subarray(6)),
      encodeHandshakeMessage(HandshakeType.serverHelloDone, 3, Buffer.alloc(0)),
    ]);
    expect(parseHandshakeFragments(record)).toEqual([
      { msgType: 12, length: 16, messageSeq: 2, fragmentOffset: 0, fragment: body.subarray(0, 6) },
      { msgType: 12, length: 16, messageSeq: 2, fragmentOffset: 6, fragment: body.subarray(6) },
      { msgType: 14, length: 0, messageSeq: 3, fragmentOffset: 0, fragment: Buffer.alloc(0) },
    ]);
  });

  it('rejects truncated headers and fragments reaching past the message', () => {
    const message = encodeHandshakeMessage(HandshakeType.finished, 0, Buffer.alloc(12));
    expect(() => parseHandshakeFragments(message.subarray(0, 20))).toThrow(expect.objectContaining({ code: 'ERR_DTLS_DECODE', alert: 50 }));
    const overlong = encodeHandshakeFragment(HandshakeType.finished, 0, 12, 8, Buffer.alloc(6));
    expect(() => parseHandshakeFragments(overlong)).toThrow(expect.objectContaining({ code: 'ERR_DTLS_DECODE' }));
  });
});

describe('ClientHello', () => {
  it('offers exactly the suite, compression and extensions the server needs', () => {
    const hello = parseClientHello(encodeClientHello(profileClientHello(random, Buffer.alloc(0))));
    expect(hello.version).toBe(0xfefd);
    expect(hello.cipherSuites).toEqual([0xc0ae]);
    expect(hello.compressionMethods).toEqual([0]);
    expect(hello.sessionId.length).toBe(0);
    expect(hello.extensions.map((extension) => [extension.type, extension.data.toString('hex')])).toEqual([
      [ExtensionType.supportedGroups, '0002' + '0017'],
      [ExtensionType.signatureAlgorithms, '0002' + '0403'],
      [ExtensionType.clientCertificateType, '01' + '02'],
    ]);
  });

  it('round-trips with a cookie', () => {
    const original = profileClientHello(random, Buffer.from('cookie-bytes'));
    expect(parseClientHello(encodeClientHello(original))).toEqual(original);
  });

  it('rejects duplicate extensions and trailing bytes', () => {
    const hello = profileClientHello(random, Buffer.alloc(0));
    const duplicated = { ...hello, extensions: [...hello.extensions, hello.extensions[0]!] };
    expect(() => parseClientHello(encodeClientHello(duplicated))).toThrow(/duplicate extension/);
    expect(() => parseClientHello(Buffer.concat([encodeClientHello(hello), Buffer.of(0)]))).toThrow(expect.objectContaining({ code: 'ERR_DTLS_DECODE' }));
  });
});

describe('server messages', () => {
  it('round-trips HelloVerifyRequest', () => {
    const request = { version: 0xfeff, cookie: Buffer.from('0123456789abcdef') };
    expect(parseHelloVerifyRequest(encodeHelloVerifyRequest(request))).toEqual(request);
  });

  it('round-trips ServerHello, with and without an extensions block', () => {
    const hello = {
      version: 0xfefd,
      random,
      sessionId: Buffer.alloc(32, 3),
      cipherSuite: 0xc0ae,
      compressionMethod: 0,
      extensions: [{ type: ExtensionType.clientCertificateType, data: Buffer.of(2) }],
    };
    expect(parseServerHello(encodeServerHello(hello))).toEqual(hello);
    const bare = { ...hello, extensions: [] };
    const encoded = encodeServerHello(bare);
    expect(encoded.length).toBe(2 + 32 + 33 + 2 + 1);
    expect(parseServerHello(encoded)).toEqual(bare);
  });

  it('round-trips ServerKeyExchange and keeps the signed params byte for byte', () => {
    const point = Buffer.concat([Buffer.of(4), Buffer.alloc(64, 9)]);
    const params = encodeServerEcdhParams(23, point);
    expect(params.subarray(0, 4).toString('hex')).toBe('03' + '0017' + '41');
    const signature = Buffer.alloc(71, 1);
    const parsed = parseServerKeyExchange(encodeServerKeyExchange(params, 0x0403, signature));
    expect(parsed).toEqual({ namedCurve: 23, publicKey: point, signatureAlgorithm: 0x0403, signature, params });
    expect(serverKeyExchangeSignedData(random, Buffer.alloc(32, 1), params))
      .toEqual(Buffer.concat([random, Buffer.alloc(32, 1), params]));
  });

  it('rejects explicit curves in ServerKeyExchange', () => {
    const explicit = Buffer.concat([Buffer.of(1), encodeServerEcdhParams(23, Buffer.alloc(65)).subarray(1)]);
    expect(() => parseServerKeyExchange(explicit)).toThrow(/named_curve/);
  });

  it('round-trips CertificateRequest', () => {
    const request = { certificateTypes: [64], signatureAlgorithms: [0x0403, 0x0401], certificateAuthorities: Buffer.alloc(0) };
    expect(parseCertificateRequest(encodeCertificateRequest(request))).toEqual(request);
  });

  it('accepts only an empty ServerHelloDone', () => {
    expect(() => parseServerHelloDone(Buffer.alloc(0))).not.toThrow();
    expect(() => parseServerHelloDone(Buffer.of(0))).toThrow(expect.objectContaining({ code: 'ERR_DTLS_DECODE' }));
  });
});

describe('client messages', () => {
  it('encodes the RFC 7250 Certificate as a 3-byte length then the 91-byte SPKI', () => {
    const spki = spkiDer(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    const certificate = encodeRawPublicKeyCertificate(spki);
    expect(spki.length).toBe(91);
    expect(certificate.subarray(0, 3).toString('hex')).toBe('00005b');
    expect(certificate.subarray(3)).toEqual(spki);
    expect(parseRawPublicKeyCertificate(certificate)).toEqual(spki);
  });

  it('encodes the empty Certificate as three zero bytes', () => {
    expect(encodeRawPublicKeyCertificate(null).toString('hex')).toBe('000000');
    expect(parseRawPublicKeyCertificate(Buffer.alloc(3))).toBeNull();
  });

  it('round-trips ClientKeyExchange and CertificateVerify', () => {
    const point = Buffer.concat([Buffer.of(4), Buffer.alloc(64, 7)]);
    const exchange = encodeClientKeyExchange(point);
    expect(exchange[0]).toBe(65);
    expect(parseClientKeyExchange(exchange)).toEqual(point);
    const signed = { signatureAlgorithm: 0x0403, signature: Buffer.alloc(70, 2) };
    const verifyMessage = encodeCertificateVerify(signed);
    expect(verifyMessage.subarray(0, 4).toString('hex')).toBe('0403' + '0046');
    expect(parseCertificateVerify(verifyMessage)).toEqual(signed);
  });

  it('parses a 12-byte Finished and nothing else', () => {
    expect(parseFinished(Buffer.alloc(12, 1))).toEqual(Buffer.alloc(12, 1));
    expect(() => parseFinished(Buffer.alloc(13))).toThrow(expect.objectContaining({ code: 'ERR_DTLS_DECODE' }));
  });
});
