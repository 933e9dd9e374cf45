import { createPublicKey } from 'node:crypto';
import { HANDSHAKE_HEADER_LENGTH, RECORD_HEADER_LENGTH } from '../../api/dtls/constants.ts';
import { recordEnd, type RecordHeader } from '../../api/dtls/record.ts';

/**
 * Reads the client's raw public key (RFC 7250) from its Certificate handshake message as it crosses
 * the wire in epoch 0. The handshake transcript covers this message, so once the handshake finishes
 * the key read here is the one the client proved it holds (CertificateVerify). Reading it here means
 * the relay never calls node-mbed-dtls's `publicKey` getter, which crashes on certificate-less sockets.
 */
export type ClientCertificate =
  | { kind: 'none' }
  | { kind: 'key'; spki: Buffer }
  | { kind: 'invalid'; reason: string };

export function parseClientCertificate(datagram: Buffer, record: RecordHeader): ClientCertificate {
  const start = record.offset + RECORD_HEADER_LENGTH;
  const end = recordEnd(record);
  if (end - start < HANDSHAKE_HEADER_LENGTH + 3) return { kind: 'invalid', reason: 'certificate message too short' };
  const messageLength = datagram.readUIntBE(start + 1, 3);
  const fragmentOffset = datagram.readUIntBE(start + 6, 3);
  const fragmentLength = datagram.readUIntBE(start + 9, 3);
  // Devices send a ~110-byte Certificate whole; a fragmented one is refused rather than reassembled.
  if (fragmentOffset !== 0 || fragmentLength !== messageLength || start + HANDSHAKE_HEADER_LENGTH + messageLength > end) {
    return { kind: 'invalid', reason: 'fragmented certificate message' };
  }
  const body = start + HANDSHAKE_HEADER_LENGTH;
  const keyLength = datagram.readUIntBE(body, 3);
  if (keyLength === 0) return { kind: 'none' };
  if (keyLength + 3 !== messageLength) return { kind: 'invalid', reason: 'certificate length mismatch' };
  const spki = Buffer.from(datagram.subarray(body + 3, body + 3 + keyLength));
  try {
    const key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      return { kind: 'invalid', reason: 'client key is not an EC P-256 key' };
    }
  } catch {
    return { kind: 'invalid', reason: 'client key is not a SubjectPublicKeyInfo' };
  }
  return { kind: 'key', spki };
}
