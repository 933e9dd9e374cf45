/** AES-128-CCM-8 record protection (RFC 6655, RFC 7251) as both ends of a DTLS 1.2 session apply it. */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import {
  CCM_EXPLICIT_NONCE_LENGTH,
  CCM_IMPLICIT_IV_LENGTH,
  CCM_KEY_LENGTH,
  CCM_RECORD_OVERHEAD,
  CCM_TAG_LENGTH,
  DTLS_1_2,
  RECORD_HEADER_LENGTH,
} from './constants.ts';
import type { TrafficKeys } from './prf.ts';
import { writeRecordHeader, type RecordHeader } from './record.ts';

export const CCM_NONCE_LENGTH = CCM_IMPLICIT_IV_LENGTH + CCM_EXPLICIT_NONCE_LENGTH;
export const CCM_AAD_LENGTH = 13;
const CIPHER = 'aes-128-ccm';
const CIPHER_OPTIONS = { authTagLength: CCM_TAG_LENGTH } as const;
/** Offset of epoch|sequence inside a record header. */
const EPOCH_SEQUENCE_OFFSET = 3;
const EPOCH_SEQUENCE_LENGTH = 8;

/** Nonce = implicit IV (4) | explicit nonce (8) (RFC 6655 3). */
export function fillCcmNonce(nonce: Buffer, implicitIv: Uint8Array, explicitNonce: Uint8Array): void {
  nonce.set(implicitIv, 0);
  nonce.set(explicitNonce, CCM_IMPLICIT_IV_LENGTH);
}

/** AAD = epoch|seq (8) | type (1) | version (2) | plaintext length (2) (RFC 6347 4.1.2.1, RFC 5246 6.2.3.3). */
export function fillCcmAad(
  aad: Buffer,
  epochAndSequence: Uint8Array,
  type: number,
  version: number,
  plaintextLength: number,
): void {
  aad.set(epochAndSequence, 0);
  aad[8] = type;
  aad.writeUInt16BE(version, 9);
  aad.writeUInt16BE(plaintextLength, 11);
}

export interface CcmDirectionKeys {
  readonly writeKey: Uint8Array;
  readonly writeIv: Uint8Array;
  readonly readKey: Uint8Array;
  readonly readIv: Uint8Array;
}

/**
 * AES-128-CCM-8 record protection for one session and one epoch. Keys become KeyObjects once
 * (createCipheriv with a KeyObject costs about a quarter of a raw key), and the nonce and AAD
 * buffers are reused: node copies both when a cipher is created.
 */
export class CcmRecordProtection {
  readonly #writeKey: KeyObject;
  readonly #readKey: KeyObject;
  readonly #writeNonce = Buffer.alloc(CCM_NONCE_LENGTH);
  readonly #readNonce = Buffer.alloc(CCM_NONCE_LENGTH);
  readonly #aad = Buffer.alloc(CCM_AAD_LENGTH);

  constructor(keys: CcmDirectionKeys) {
    for (const [name, length] of [['writeKey', CCM_KEY_LENGTH], ['readKey', CCM_KEY_LENGTH],
      ['writeIv', CCM_IMPLICIT_IV_LENGTH], ['readIv', CCM_IMPLICIT_IV_LENGTH]] as const) {
      if (keys[name].length !== length) throw new RangeError(`${name} must be ${length} bytes`);
    }
    this.#writeKey = createSecretKey(keys.writeKey);
    this.#readKey = createSecretKey(keys.readKey);
    this.#writeNonce.set(keys.writeIv, 0);
    this.#readNonce.set(keys.readIv, 0);
  }

  /** Returns the whole record: header | explicit nonce (epoch|seq) | ciphertext | tag. */
  seal(type: number, epoch: number, sequence: number, plaintext: Uint8Array): Buffer {
    const plaintextLength = plaintext.length;
    const record = Buffer.allocUnsafe(RECORD_HEADER_LENGTH + CCM_RECORD_OVERHEAD + plaintextLength);
    writeRecordHeader(record, 0, type, epoch, sequence, CCM_RECORD_OVERHEAD + plaintextLength);
    const epochAndSequence = record.subarray(EPOCH_SEQUENCE_OFFSET, EPOCH_SEQUENCE_OFFSET + EPOCH_SEQUENCE_LENGTH);
    record.set(epochAndSequence, RECORD_HEADER_LENGTH);
    this.#writeNonce.set(epochAndSequence, CCM_IMPLICIT_IV_LENGTH);
    fillCcmAad(this.#aad, epochAndSequence, type, DTLS_1_2, plaintextLength);

    const cipher = createCipheriv(CIPHER, this.#writeKey, this.#writeNonce, CIPHER_OPTIONS);
    cipher.setAAD(this.#aad, { plaintextLength });
    const ciphertext = cipher.update(plaintext);
    cipher.final();
    const ciphertextOffset = RECORD_HEADER_LENGTH + CCM_EXPLICIT_NONCE_LENGTH;
    record.set(ciphertext, ciphertextOffset);
    record.set(cipher.getAuthTag(), ciphertextOffset + plaintextLength);
    return record;
  }

  /** Decrypts the record described by `header` inside `datagram`; null when it fails authentication. */
  open(datagram: Buffer, header: RecordHeader): Buffer | null {
    if (header.length < CCM_RECORD_OVERHEAD) return null;
    const plaintextLength = header.length - CCM_RECORD_OVERHEAD;
    const bodyOffset = header.offset + RECORD_HEADER_LENGTH;
    const ciphertextOffset = bodyOffset + CCM_EXPLICIT_NONCE_LENGTH;
    const tagOffset = ciphertextOffset + plaintextLength;
    // The nonce uses the explicit nonce as sent; the AAD uses epoch|seq from the header.
    this.#readNonce.set(datagram.subarray(bodyOffset, ciphertextOffset), CCM_IMPLICIT_IV_LENGTH);
    const headerEpochOffset = header.offset + EPOCH_SEQUENCE_OFFSET;
    fillCcmAad(
      this.#aad,
      datagram.subarray(headerEpochOffset, headerEpochOffset + EPOCH_SEQUENCE_LENGTH),
      header.type,
      header.version,
      plaintextLength,
    );

    const decipher = createDecipheriv(CIPHER, this.#readKey, this.#readNonce, CIPHER_OPTIONS);
    decipher.setAuthTag(datagram.subarray(tagOffset, tagOffset + CCM_TAG_LENGTH));
    decipher.setAAD(this.#aad, { plaintextLength });
    const plaintext = decipher.update(datagram.subarray(ciphertextOffset, tagOffset));
    try {
      decipher.final();
    } catch {
      return null;
    }
    return plaintext;
  }
}

/** One end's record protection: it writes with its own keys and reads with the other end's. */
export function recordProtectionFor(end: 'client' | 'server', keys: TrafficKeys): CcmRecordProtection {
  return end === 'client'
    ? new CcmRecordProtection({ writeKey: keys.clientWriteKey, writeIv: keys.clientWriteIv, readKey: keys.serverWriteKey, readIv: keys.serverWriteIv })
    : new CcmRecordProtection({ writeKey: keys.serverWriteKey, writeIv: keys.serverWriteIv, readKey: keys.clientWriteKey, readIv: keys.clientWriteIv });
}
