import { createHash } from 'node:crypto';

/**
 * A device is identified by the SHA-256 of its raw public key (SubjectPublicKeyInfo DER, RFC 7250).
 * Relay, upstream prefixing, state format and load generator must agree on this, so it lives here.
 */
export const DEVICE_FINGERPRINT_BYTES = 32;

export function deviceFingerprint(spkiDer: Uint8Array): Buffer {
  return createHash('sha256').update(spkiDer).digest();
}

/** Hex form for logs, metrics labels and the management API. */
export function deviceId(spkiDer: Uint8Array): string {
  return deviceFingerprint(spkiDer).toString('hex');
}
