/**
 * Wire constants of the one DTLS 1.2 profile the relay speaks (ECDHE-ECDSA, AES-128-CCM-8, raw public
 * keys): what the device client and the relay both agree on. Neither end defines its own copy.
 */

export const DTLS_1_2 = 0xfefd;
/** RFC 6347 4.2.1: a HelloVerifyRequest may carry DTLS 1.0 regardless of the negotiated version. */
export const DTLS_1_0 = 0xfeff;

export const ContentType = {
  changeCipherSpec: 20,
  alert: 21,
  handshake: 22,
  applicationData: 23,
} as const;

export const HandshakeType = {
  helloRequest: 0,
  clientHello: 1,
  serverHello: 2,
  helloVerifyRequest: 3,
  certificate: 11,
  serverKeyExchange: 12,
  certificateRequest: 13,
  serverHelloDone: 14,
  certificateVerify: 15,
  clientKeyExchange: 16,
  finished: 20,
} as const;

/** TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (RFC 7251). */
export const CIPHER_SUITE_ECDHE_ECDSA_AES_128_CCM_8 = 0xc0ae;
export const COMPRESSION_NULL = 0;

export const ExtensionType = {
  supportedGroups: 10,
  ecPointFormats: 11,
  signatureAlgorithms: 13,
  clientCertificateType: 19,
  serverCertificateType: 20,
  renegotiationInfo: 0xff01,
} as const;

export const NAMED_CURVE_SECP256R1 = 23;
export const EC_CURVE_TYPE_NAMED = 3;
/** SignatureAndHashAlgorithm {sha256(4), ecdsa(3)}. */
export const SIGNATURE_ECDSA_SECP256R1_SHA256 = 0x0403;
/** RFC 7250 certificate type. */
export const CERTIFICATE_TYPE_RAW_PUBLIC_KEY = 2;
/** ClientCertificateType ecdsa_sign (RFC 8422 5.5). */
export const CLIENT_CERTIFICATE_TYPE_ECDSA_SIGN = 64;

export const RECORD_HEADER_LENGTH = 13;
export const HANDSHAKE_HEADER_LENGTH = 12;
export const RANDOM_LENGTH = 32;
/** SessionID<0..32> (RFC 5246 7.4.1.2). */
export const MAX_SESSION_ID_LENGTH = 32;
export const MASTER_SECRET_LENGTH = 48;
export const VERIFY_DATA_LENGTH = 12;
/** Uncompressed P-256 point: 0x04 | X | Y. */
export const P256_POINT_LENGTH = 65;

/** AES-128-CCM-8 record layout (RFC 6655): explicit nonce before the ciphertext, 8-byte tag after. */
export const CCM_KEY_LENGTH = 16;
export const CCM_IMPLICIT_IV_LENGTH = 4;
export const CCM_EXPLICIT_NONCE_LENGTH = 8;
export const CCM_TAG_LENGTH = 8;
export const CCM_RECORD_OVERHEAD = CCM_EXPLICIT_NONCE_LENGTH + CCM_TAG_LENGTH;

/** The server's MBEDTLS_SSL_MAX_CONTENT_LEN: larger plaintexts crash node-mbed-dtls. */
export const MAX_PLAINTEXT_LENGTH = 800;
/** The sequence number is 48 bits (RFC 6347 4.1): 2^48 - 1, exact in a JS number. */
export const MAX_SEQUENCE_NUMBER = 2 ** 48 - 1;

export const AlertLevel = { warning: 1, fatal: 2 } as const;

export const AlertDescription = {
  closeNotify: 0,
  unexpectedMessage: 10,
  badRecordMac: 20,
  handshakeFailure: 40,
  badCertificate: 42,
  unsupportedCertificate: 43,
  illegalParameter: 47,
  decodeError: 50,
  decryptError: 51,
  protocolVersion: 70,
  internalError: 80,
  unsupportedExtension: 110,
} as const;

const ALERT_NAMES: Readonly<Record<number, string>> = {
  0: 'close_notify',
  10: 'unexpected_message',
  20: 'bad_record_mac',
  21: 'decryption_failed',
  22: 'record_overflow',
  30: 'decompression_failure',
  40: 'handshake_failure',
  41: 'no_certificate',
  42: 'bad_certificate',
  43: 'unsupported_certificate',
  44: 'certificate_revoked',
  45: 'certificate_expired',
  46: 'certificate_unknown',
  47: 'illegal_parameter',
  48: 'unknown_ca',
  49: 'access_denied',
  50: 'decode_error',
  51: 'decrypt_error',
  60: 'export_restriction',
  70: 'protocol_version',
  71: 'insufficient_security',
  80: 'internal_error',
  90: 'user_canceled',
  100: 'no_renegotiation',
  110: 'unsupported_extension',
  111: 'certificate_unobtainable',
  112: 'unrecognized_name',
  113: 'bad_certificate_status_response',
  114: 'bad_certificate_hash_value',
  115: 'unknown_psk_identity',
};

export function alertName(description: number): string {
  return ALERT_NAMES[description] ?? `alert_${description}`;
}
