import { describe, expect, it } from 'vitest';
import {
  createRecordHeader,
  encodePlaintextRecord,
  readRecordHeader,
  recordFragment,
  splitRecords,
  writeRecordHeader,
} from '../../client/dtls/record.ts';

describe('record header', () => {
  it('encodes type | version | epoch | 48-bit sequence | length', () => {
    const header = Buffer.alloc(13);
    writeRecordHeader(header, 0, 23, 1, 0x0102_0304_0506, 0x0708);
    expect(header.toString('hex')).toBe('17' + 'fefd' + '0001' + '010203040506' + '0708');
  });

  it('round-trips the largest sequence number exactly', () => {
    const record = encodePlaintextRecord(22, 0, 2 ** 48 - 1, Buffer.from('abc'));
    const header = createRecordHeader();
    expect(readRecordHeader(record, 0, header)).toBe(record.length);
    expect(header).toEqual({ type: 22, version: 0xfefd, epoch: 0, sequence: 2 ** 48 - 1, length: 3, offset: 0 });
    expect(recordFragment(record, header).toString()).toBe('abc');
  });

  it('refuses sequence numbers beyond 48 bits', () => {
    expect(() => writeRecordHeader(Buffer.alloc(13), 0, 23, 1, 2 ** 48, 0)).toThrow(RangeError);
  });

  it('reports truncated headers and fragments', () => {
    const record = encodePlaintextRecord(22, 0, 1, Buffer.alloc(10));
    const header = createRecordHeader();
    expect(readRecordHeader(record.subarray(0, 12), 0, header)).toBe(-1);
    expect(readRecordHeader(record.subarray(0, record.length - 1), 0, header)).toBe(-1);
  });
});

describe('splitting a datagram', () => {
  it('yields each record with its offset', () => {
    const first = encodePlaintextRecord(22, 0, 1, Buffer.from('one'));
    const second = encodePlaintextRecord(20, 0, 2, Buffer.of(1));
    const third = encodePlaintextRecord(23, 1, 3, Buffer.alloc(0));
    const { records, truncated } = splitRecords(Buffer.concat([first, second, third]));
    expect(truncated).toBe(false);
    expect(records.map((record) => [record.type, record.epoch, record.sequence, record.length, record.offset])).toEqual([
      [22, 0, 1, 3, 0],
      [20, 0, 2, 1, first.length],
      [23, 1, 3, 0, first.length + second.length],
    ]);
  });

  it('keeps the whole records before trailing garbage and flags the rest', () => {
    const first = encodePlaintextRecord(22, 0, 1, Buffer.from('one'));
    const { records, truncated } = splitRecords(Buffer.concat([first, Buffer.from('junk')]));
    expect(records).toHaveLength(1);
    expect(truncated).toBe(true);
  });

  it('returns nothing for an empty datagram', () => {
    expect(splitRecords(Buffer.alloc(0))).toEqual({ records: [], truncated: false });
  });
});
