/** The TLS 1.2 PRF and the key schedule of this profile (RFC 5246 5, 6.3, 7.4.9; RFC 6655). */
import { createHmac } from 'node:crypto';
import {
  CCM_IMPLICIT_IV_LENGTH,
  CCM_KEY_LENGTH,
  MASTER_SECRET_LENGTH,
  VERIFY_DATA_LENGTH,
} from './constants.ts';

/** TLS 1.2 PRF with P_SHA256 (RFC 5246 section 5). */
export function prfSha256(secret: Uint8Array, label: string, seed: Uint8Array, length: number): Buffer {
  const labelAndSeed = Buffer.concat([Buffer.from(label, 'latin1'), seed]);
  const output = Buffer.allocUnsafe(length);
  let a: Buffer = labelAndSeed;
  let written = 0;
  while (written < length) {
    a = createHmac('sha256', secret).update(a).digest();
    const block = createHmac('sha256', secret).update(a).update(labelAndSeed).digest();
    written += block.copy(output, written);
  }
  return output;
}

export function deriveMasterSecret(premaster: Uint8Array, clientRandom: Uint8Array, serverRandom: Uint8Array): Buffer {
  return prfSha256(premaster, 'master secret', Buffer.concat([clientRandom, serverRandom]), MASTER_SECRET_LENGTH);
}

/** Traffic keys for AES-128-CCM-8: no MAC keys, 16-byte keys, 4-byte implicit IVs (RFC 6655). */
export interface TrafficKeys {
  readonly clientWriteKey: Buffer;
  readonly serverWriteKey: Buffer;
  readonly clientWriteIv: Buffer;
  readonly serverWriteIv: Buffer;
}

export function deriveTrafficKeys(master: Uint8Array, clientRandom: Uint8Array, serverRandom: Uint8Array): TrafficKeys {
  // Key expansion takes server_random first, unlike the master secret (RFC 5246 6.3).
  const block = prfSha256(
    master,
    'key expansion',
    Buffer.concat([serverRandom, clientRandom]),
    2 * CCM_KEY_LENGTH + 2 * CCM_IMPLICIT_IV_LENGTH,
  );
  let offset = 0;
  const take = (length: number): Buffer => {
    const part = Buffer.from(block.subarray(offset, offset + length));
    offset += length;
    return part;
  };
  return {
    clientWriteKey: take(CCM_KEY_LENGTH),
    serverWriteKey: take(CCM_KEY_LENGTH),
    clientWriteIv: take(CCM_IMPLICIT_IV_LENGTH),
    serverWriteIv: take(CCM_IMPLICIT_IV_LENGTH),
  };
}

export type FinishedLabel = 'client finished' | 'server finished';

export function finishedVerifyData(master: Uint8Array, label: FinishedLabel, transcriptHash: Uint8Array): Buffer {
  return prfSha256(master, label, transcriptHash, VERIFY_DATA_LENGTH);
}
