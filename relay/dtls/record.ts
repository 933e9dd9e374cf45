/**
 * Cleartext DTLS 1.2 record headers (RFC 6347 4.1). The relay reads them without decrypting, to
 * split datagrams, route records, enforce the replay window and follow sequence numbers.
 * Pure: no I/O, and it never touches node-mbed-dtls.
 */

import { ContentType } from '../../client/dtls/constants.ts';

export const RECORD_HEADER_LENGTH = 13;

// The wire constants are the device client's: both ends of the same protocol.
export { ContentType, HandshakeType } from '../../client/dtls/constants.ts';

/** 2^48 - 1: the largest DTLS record sequence number. */
export const MAX_SEQUENCE = 0xffff_ffff_ffff;

export interface RecordView {
  type: number;
  version: number;
  epoch: number;
  /** 48-bit sequence number; exact in a JS number. */
  sequence: number;
  /** Offset of the record header in the datagram. */
  offset: number;
  /** Header plus fragment. */
  length: number;
}

function isKnownContentType(type: number): boolean {
  return type >= ContentType.changeCipherSpec && type <= ContentType.applicationData;
}

/** 0xFEFD (DTLS 1.2) or 0xFEFF (DTLS 1.0, allowed in a ClientHello's record layer). */
function isDtlsVersion(version: number): boolean {
  return version === 0xfefd || version === 0xfeff;
}

export function readSequence(buf: Uint8Array, offset: number): number {
  // 48 bits = 16 high bits * 2^32 + 32 low bits; exact below 2^53.
  return ((buf[offset]! << 8) | buf[offset + 1]!) * 0x1_0000_0000 +
    ((buf[offset + 2]! << 24) >>> 0) + ((buf[offset + 3]! << 16) | (buf[offset + 4]! << 8) | buf[offset + 5]!);
}

export function writeSequence(buf: Uint8Array, offset: number, sequence: number): void {
  const high = Math.floor(sequence / 0x1_0000_0000);
  const low = sequence >>> 0;
  buf[offset] = (high >>> 8) & 0xff;
  buf[offset + 1] = high & 0xff;
  buf[offset + 2] = (low >>> 24) & 0xff;
  buf[offset + 3] = (low >>> 16) & 0xff;
  buf[offset + 4] = (low >>> 8) & 0xff;
  buf[offset + 5] = low & 0xff;
}

/** Parses the record at `offset`, or returns null when the bytes there are not a whole DTLS record. */
export function parseRecord(buf: Uint8Array, offset: number): RecordView | null {
  if (buf.length - offset < RECORD_HEADER_LENGTH) return null;
  const type = buf[offset]!;
  const version = (buf[offset + 1]! << 8) | buf[offset + 2]!;
  if (!isKnownContentType(type) || !isDtlsVersion(version)) return null;
  const epoch = (buf[offset + 3]! << 8) | buf[offset + 4]!;
  const sequence = readSequence(buf, offset + 5);
  const fragmentLength = (buf[offset + 11]! << 8) | buf[offset + 12]!;
  const length = RECORD_HEADER_LENGTH + fragmentLength;
  if (offset + length > buf.length) return null;
  return { type, version, epoch, sequence, offset, length };
}

/**
 * Splits a datagram into records. Returns null if any part is not a well-formed record, because a
 * datagram with trailing garbage is not something a conforming peer sends.
 */
export function splitRecords(datagram: Uint8Array): RecordView[] | null {
  const records: RecordView[] = [];
  let offset = 0;
  while (offset < datagram.length) {
    const record = parseRecord(datagram, offset);
    if (record === null) return null;
    records.push(record);
    offset += record.length;
  }
  return records.length > 0 ? records : null;
}

/** The handshake message type of an unencrypted (epoch 0) handshake record, or -1. */
export function handshakeTypeOf(buf: Uint8Array, record: RecordView): number {
  if (record.type !== ContentType.handshake || record.epoch !== 0) return -1;
  if (record.length < RECORD_HEADER_LENGTH + 12) return -1;
  return buf[record.offset + RECORD_HEADER_LENGTH]!;
}
