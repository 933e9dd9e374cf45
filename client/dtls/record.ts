import { DTLS_1_2, MAX_SEQUENCE_NUMBER, RECORD_HEADER_LENGTH } from './constants.ts';

/**
 * DTLS 1.2 record header (RFC 6347 4.1), 13 bytes in clear:
 *   type(1) | version(2) | epoch(2) | sequence_number(6) | length(2)
 * The epoch and sequence bytes (offset 3..11) double as the CCM explicit nonce and the AAD prefix.
 */
export interface RecordHeader {
  type: number;
  version: number;
  epoch: number;
  sequence: number;
  /** Length of the fragment that follows the header. */
  length: number;
  /** Offset of the record's first header byte in the datagram. */
  offset: number;
}

export function createRecordHeader(): RecordHeader {
  return { type: 0, version: 0, epoch: 0, sequence: 0, length: 0, offset: 0 };
}

export function writeRecordHeader(
  target: Buffer,
  offset: number,
  type: number,
  epoch: number,
  sequence: number,
  fragmentLength: number,
): void {
  if (sequence < 0 || sequence > MAX_SEQUENCE_NUMBER) throw new RangeError(`sequence ${sequence} outside 48 bits`);
  target[offset] = type;
  target.writeUInt16BE(DTLS_1_2, offset + 1);
  target.writeUInt16BE(epoch, offset + 3);
  target.writeUIntBE(sequence, offset + 5, 6);
  target.writeUInt16BE(fragmentLength, offset + 11);
}

/**
 * Reads the header of the record starting at `offset` into `out` (reused to avoid an allocation per record).
 * Returns the offset just past the record, or -1 when the header or the fragment is truncated.
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

/** Splits a datagram into its records; the allocation-free loop in the client uses readRecordHeader directly. */
export function splitRecords(datagram: Uint8Array): { records: RecordHeader[]; truncated: boolean } {
  const records: RecordHeader[] = [];
  let offset = 0;
  while (offset < datagram.length) {
    const header = createRecordHeader();
    const next = readRecordHeader(datagram, offset, header);
    if (next < 0) return { records, truncated: true };
    records.push(header);
    offset = next;
  }
  return { records, truncated: false };
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

function readUint48(bytes: Uint8Array, offset: number): number {
  // Two halves keep the arithmetic exact below 2^53 without BigInt.
  const high = (bytes[offset]! << 8) | bytes[offset + 1]!;
  const low = ((bytes[offset + 2]! << 24) >>> 0) + (bytes[offset + 3]! << 16) + (bytes[offset + 4]! << 8) + bytes[offset + 5]!;
  return high * 0x1_0000_0000 + low;
}
