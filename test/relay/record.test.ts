import { describe, expect, it } from 'vitest';
import { handshakeTypeOf, parseRecord, readSequence, splitRecords, writeSequence } from '../../relay/dtls/record.ts';

function record(type: number, epoch: number, seq: number, body: Buffer): Buffer {
  const header = Buffer.alloc(13);
  header[0] = type;
  header.writeUInt16BE(0xfefd, 1);
  header.writeUInt16BE(epoch, 3);
  writeSequence(header, 5, seq);
  header.writeUInt16BE(body.length, 11);
  return Buffer.concat([header, body]);
}

describe('DTLS record headers', () => {
  it('reads and writes 48-bit sequence numbers', () => {
    const buf = Buffer.alloc(6);
    for (const seq of [0, 1, 255, 2 ** 32 - 1, 2 ** 32, 2 ** 48 - 1, 0x1234_5678_9abc]) {
      writeSequence(buf, 0, seq);
      expect(readSequence(buf, 0)).toBe(seq);
    }
  });

  it('parses type, epoch, sequence and length', () => {
    const bytes = record(23, 1, 0x0102_0304_0506, Buffer.alloc(30, 7));
    expect(parseRecord(bytes, 0)).toEqual({ type: 23, version: 0xfefd, epoch: 1, sequence: 0x0102_0304_0506, offset: 0, length: 43 });
  });

  it('splits coalesced records and refuses trailing garbage', () => {
    const a = record(22, 0, 1, Buffer.alloc(20));
    const b = record(20, 0, 2, Buffer.from([1]));
    const c = record(22, 1, 0, Buffer.alloc(40));
    const all = splitRecords(Buffer.concat([a, b, c]));
    expect(all?.map((r) => [r.type, r.epoch, r.offset, r.length])).toEqual([[22, 0, 0, 33], [20, 0, 33, 14], [22, 1, 47, 53]]);
    expect(splitRecords(Buffer.concat([a, Buffer.from([1, 2, 3])]))).toBeNull();
    expect(splitRecords(a.subarray(0, a.length - 1))).toBeNull();
  });

  it('refuses unknown content types and versions', () => {
    const bad = record(23, 1, 0, Buffer.alloc(4));
    bad[0] = 99;
    expect(parseRecord(bad, 0)).toBeNull();
    const tls = record(23, 1, 0, Buffer.alloc(4));
    tls.writeUInt16BE(0x0303, 1);
    expect(parseRecord(tls, 0)).toBeNull();
    expect(splitRecords(Buffer.alloc(0))).toBeNull();
  });

  it('tells the handshake message type of epoch-0 handshake records only', () => {
    const hello = record(22, 0, 0, Buffer.concat([Buffer.from([1]), Buffer.alloc(11)]));
    expect(handshakeTypeOf(hello, parseRecord(hello, 0)!)).toBe(1);
    const encrypted = record(22, 1, 0, Buffer.concat([Buffer.from([1]), Buffer.alloc(30)]));
    expect(handshakeTypeOf(encrypted, parseRecord(encrypted, 0)!)).toBe(-1);
  });
});
