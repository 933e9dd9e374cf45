/**
 * DTLS 1.2 record headers (RFC 6347 4.1), read and written the same way by both ends of the wire.
 * 13 bytes in clear:
 *
 *   type(1) | version(2) | epoch(2) | sequence_number(6) | length(2) | fragment(length)
 *
 * `length` always means what it means on the wire: the fragment's length, without the header. The
 * epoch and sequence bytes (offset 3..11) double as the CCM explicit nonce and the AAD prefix.
 * Pure: no I/O.
 */
import { ContentType, DTLS_1_0, DTLS_1_2, HANDSHAKE_HEADER_LENGTH, MAX_SEQUENCE_NUMBER, RECORD_HEADER_LENGTH } from './constants.ts';

export interface RecordHeader {
  type: number;
  version: number;
  epoch: number;
  /** 48-bit sequence number; exact in a JS number. */
  sequence: number;
  /** Length of the fragment that follows the header. */
  length: number;
  /** Offset of the record's first header byte in the datagram. */
  offset: number;
}

export function createRecordHeader(): RecordHeader {
  return { type: 0, version: 0, epoch: 0, sequence: 0, length: 0, offset: 0 };
}

/** Offset just past the record: header plus fragment. */
export function recordEnd(header: RecordHeader): number {
  return header.offset + RECORD_HEADER_LENGTH + header.length;
}

export function readUint48(bytes: Uint8Array, offset: number): number {
  // Two halves keep the arithmetic exact below 2^53 without BigInt.
  const high = (bytes[offset]! << 8) | bytes[offset + 1]!;
  const low = ((bytes[offset + 2]! << 24) >>> 0) + ((bytes[offset + 3]! << 16) | (bytes[offset + 4]! << 8) | bytes[offset + 5]!);
  return high * 0x1_0000_0000 + low;
}

export function writeUint48(bytes: Uint8Array, offset: number, value: number): void {
  const high = Math.floor(value / 0x1_0000_0000);
  const low = value >>> 0;
  bytes[offset] = (high >>> 8) & 0xff;
  bytes[offset + 1] = high & 0xff;
  bytes[offset + 2] = (low >>> 24) & 0xff;
  bytes[offset + 3] = (low >>> 16) & 0xff;
  bytes[offset + 4] = (low >>> 8) & 0xff;
  bytes[offset + 5] = low & 0xff;
}

export function writeRecordHeader(
  target: Uint8Array,
  offset: number,
  type: number,
  epoch: number,
  sequence: number,
  fragmentLength: number,
): void {
  if (!(sequence >= 0 && sequence <= MAX_SEQUENCE_NUMBER)) throw new RangeError(`sequence ${sequence} outside 48 bits`);
  target[offset] = type;
  target[offset + 1] = DTLS_1_2 >>> 8;
  target[offset + 2] = DTLS_1_2 & 0xff;
  target[offset + 3] = (epoch >>> 8) & 0xff;
  target[offset + 4] = epoch & 0xff;
  writeUint48(target, offset + 5, sequence);
  target[offset + 11] = (fragmentLength >>> 8) & 0xff;
  target[offset + 12] = fragmentLength & 0xff;
}

/**
 * Reads the header of the record starting at `offset` into `out` (reused to avoid an allocation per
 * record). Returns the offset just past the record, or -1 when the header or the fragment is
 * truncated. It does not judge the type or version: see `parseRecord` for that.
 */
export function readRecordHeader(datagram: Uint8Array, offset: number, out: RecordHeader): number {
  if (datagram.length - offset < RECORD_HEADER_LENGTH) return -1;
  const length = (datagram[offset + 11]! << 8) | datagram[offset + 12]!;
  const end = offset + RECORD_HEADER_LENGTH + length;
  if (end > datagram.length) return -1;
  out.type = datagram[offset]!;
  out.version = (datagram[offset + 1]! << 8) | datagram[offset + 2]!;
  out.epoch = (datagram[offset + 3]! << 8) | datagram[offset + 4]!;
  out.sequence = readUint48(datagram, offset + 5);
  out.length = length;
  out.offset = offset;
  return end;
}

export function isKnownContentType(type: number): boolean {
  return type >= ContentType.changeCipherSpec && type <= ContentType.applicationData;
}

/** DTLS 1.2, or DTLS 1.0 (allowed in a ClientHello's and a HelloVerifyRequest's record layer). */
export function isDtlsVersion(version: number): boolean {
  return version === DTLS_1_2 || version === DTLS_1_0;
}

/** The record at `offset`, or null when the bytes there are not a whole record of a known type and DTLS version. */
export function parseRecord(datagram: Uint8Array, offset: number): RecordHeader | null {
  const header = createRecordHeader();
  if (readRecordHeader(datagram, offset, header) < 0) return null;
  return isKnownContentType(header.type) && isDtlsVersion(header.version) ? header : null;
}

/**
 * Splits a datagram into records. Null if any part is not a well-formed record (trailing garbage
 * included: a conforming peer never sends it) or the datagram is empty.
 */
export function splitRecords(datagram: Uint8Array): RecordHeader[] | null {
  const records: RecordHeader[] = [];
  let offset = 0;
  while (offset < datagram.length) {
    const record = parseRecord(datagram, offset);
    if (record === null) return null;
    records.push(record);
    offset = recordEnd(record);
  }
  return records.length > 0 ? records : null;
}

export function recordFragment(datagram: Buffer, header: RecordHeader): Buffer {
  const start = header.offset + RECORD_HEADER_LENGTH;
  return datagram.subarray(start, start + header.length);
}

/** A record with an unprotected fragment (epoch 0). */
export function encodePlaintextRecord(type: number, epoch: number, sequence: number, fragment: Uint8Array): Buffer {
  const record = Buffer.allocUnsafe(RECORD_HEADER_LENGTH + fragment.length);
  writeRecordHeader(record, 0, type, epoch, sequence, fragment.length);
  record.set(fragment, RECORD_HEADER_LENGTH);
  return record;
}

/** The handshake message type of an unprotected (epoch 0) handshake record, or -1. */
export function handshakeTypeOf(datagram: Uint8Array, header: RecordHeader): number {
  if (header.type !== ContentType.handshake || header.epoch !== 0) return -1;
  if (header.length < HANDSHAKE_HEADER_LENGTH) return -1;
  return datagram[header.offset + RECORD_HEADER_LENGTH]!;
}
