import { describe, expect, it } from 'vitest';
import { ContentType, HandshakeType } from '../../../api/dtls/constants.ts';
import {
  createRecordHeader,
  encodePlaintextRecord,
  handshakeTypeOf,
  parseRecord,
  readRecordHeader,
  readUint48,
  recordEnd,
  recordFragment,
  splitRecords,
  writeRecordHeader,
  writeUint48,
} from '../../../api/dtls/record.ts';

describe('record header', () => {
  it('encodes type | version | epoch | 48-bit sequence | length', () => {
    const header = Buffer.alloc(13);
    writeRecordHeader(header, 0, 23, 1, 0x0102_0304_0506, 0x0708);
    expect(header.toString('hex')).toBe('17' + 'fefd' + '0001' + '010203040506' + '0708');
  });

  it('reads and writes 48-bit sequence numbers exactly', () => {
    const buf = Buffer.alloc(6);
    for (const seq of [0, 1, 255, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 48 - 1, 0x1234_5678_9abc]) {
      writeUint48(buf, 0, seq);
      expect(buf.readUIntBE(0, 6)).toBe(seq);
      expect(readUint48(buf, 0)).toBe(seq);
    }
  });

  it('round-trips the largest sequence number; length is the fragment length', () => {
    const record = encodePlaintextRecord(22, 0, 2 ** 48 - 1, Buffer.from('abc'));
    const header = createRecordHeader();
    expect(readRecordHeader(record, 0, header)).toBe(record.length);
    expect(header).toEqual({ type: 22, version: 0xfefd, epoch: 0, sequence: 2 ** 48 - 1, length: 3, offset: 0 });
    expect(recordEnd(header)).toBe(record.length);
    expect(recordFragment(record, header).toString()).toBe('abc');
  });

  it('refuses sequence numbers beyond 48 bits', () => {
    expect(() => writeRecordHeader(Buffer.alloc(13), 0, 23, 1, 2 ** 48, 0)).toThrow(RangeError);
    expect(() => writeRecordHeader(Buffer.alloc(13), 0, 23, 1, -1, 0)).toThrow(RangeError);
  });

  it('reports truncated headers and fragments', () => {
    const record = encodePlaintextRecord(22, 0, 1, Buffer.alloc(10));
    const header = createRecordHeader();
    expect(readRecordHeader(record.subarray(0, 12), 0, header)).toBe(-1);
    expect(readRecordHeader(record.subarray(0, record.length - 1), 0, header)).toBe(-1);
    expect(parseRecord(record.subarray(0, record.length - 1), 0)).toBeNull();
  });

  it('parses only known content types and DTLS versions', () => {
    expect(parseRecord(encodePlaintextRecord(23, 1, 0x0102_0304_0506, Buffer.alloc(30, 7)), 0))
      .toEqual({ type: 23, version: 0xfefd, epoch: 1, sequence: 0x0102_0304_0506, offset: 0, length: 30 });
    const unknownType = encodePlaintextRecord(99, 1, 0, Buffer.alloc(4));
    expect(parseRecord(unknownType, 0)).toBeNull();
    const tls = encodePlaintextRecord(23, 1, 0, Buffer.alloc(4));
    tls.writeUInt16BE(0x0303, 1);
    expect(parseRecord(tls, 0)).toBeNull();
    const dtls10 = encodePlaintextRecord(22, 0, 0, Buffer.alloc(4));
    dtls10.writeUInt16BE(0xfeff, 1);
    expect(parseRecord(dtls10, 0)?.version).toBe(0xfeff);
  });
});

describe('splitting a datagram', () => {
  it('yields each record with its offset and fragment length', () => {
    const first = encodePlaintextRecord(22, 0, 1, Buffer.from('one'));
    const second = encodePlaintextRecord(20, 0, 2, Buffer.of(1));
    const third = encodePlaintextRecord(23, 1, 3, Buffer.alloc(0));
    const records = splitRecords(Buffer.concat([first, second, third]));
    expect(records?.map((record) => [record.type, record.epoch, record.sequence, record.length, record.offset])).toEqual([
      [22, 0, 1, 3, 0],
      [20, 0, 2, 1, first.length],
      [23, 1, 3, 0, first.length + second.length],
    ]);
  });

  it('refuses the whole datagram for trailing garbage, a cut record or nothing at all', () => {
    const first = encodePlaintextRecord(22, 0, 1, Buffer.from('one'));
    expect(splitRecords(Buffer.concat([first, Buffer.from('junk')]))).toBeNull();
    expect(splitRecords(first.subarray(0, first.length - 1))).toBeNull();
    expect(splitRecords(Buffer.alloc(0))).toBeNull();
  });
});

describe('handshake message type', () => {
  it('is read from epoch-0 handshake records only', () => {
    const hello = encodePlaintextRecord(ContentType.handshake, 0, 0, Buffer.concat([Buffer.from([HandshakeType.clientHello]), Buffer.alloc(11)]));
    expect(handshakeTypeOf(hello, parseRecord(hello, 0)!)).toBe(HandshakeType.clientHello);
    const protectedRecord = encodePlaintextRecord(ContentType.handshake, 1, 0, Buffer.concat([Buffer.from([1]), Buffer.alloc(30)]));
    expect(handshakeTypeOf(protectedRecord, parseRecord(protectedRecord, 0)!)).toBe(-1);
    const short = encodePlaintextRecord(ContentType.handshake, 0, 0, Buffer.from([1, 0, 0]));
    expect(handshakeTypeOf(short, parseRecord(short, 0)!)).toBe(-1);
  });
});
