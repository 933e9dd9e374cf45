import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { MessagePackScanner } from '../../api/msgpack-scanner.ts';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const scanner = (maxValueBytes = 1 << 16, maxNesting = 32): MessagePackScanner => new MessagePackScanner({ maxValueBytes, maxNesting });

/** What `fn` throws (undefined when it returns). */
function thrown(fn: () => unknown): { code?: string; message?: string; offset?: number } | undefined {
  try {
    fn();
  } catch (error) {
    return error as { code?: string };
  }
  return undefined;
}

// One value of every header family the scanner knows: fixint, negative fixint, nil/bool, floats, ints of every
// width, str 8/16/32 (fixstr included), bin 8/16/32, fixarray/array 16/array 32, fixmap/map 16/map 32.
const SAMPLES: unknown[] = [
  0, 127, -1, -32, null, true, false, 1.5, 200, -100, 40_000, -40_000, 3_000_000_000, -3_000_000_000, 2 ** 40,
  'short', 'x'.repeat(40), 'y'.repeat(300), 'z'.repeat(70_000),
  Buffer.alloc(10, 1), Buffer.alloc(300, 2), Buffer.alloc(70_000, 3),
  [1, 2, 3], Array.from({ length: 20 }, (_, i) => i), Array.from({ length: 70_000 }, () => 0),
  { a: 1, b: [true, { c: 'd' }] }, Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
  Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [String(i), 0])),
];

describe('MessagePackScanner', () => {
  it('finds the end of a value of every kind, wherever it starts in the buffer', () => {
    const big = scanner(1 << 22);
    for (const value of SAMPLES) {
      const packed = Buffer.from(packr.pack(value));
      const framed = Buffer.concat([Buffer.from([0xc0, 0xc0, 0xc0]), packed, Buffer.from([0x01])]);
      expect(big.valueEnd(framed, 3, 0), JSON.stringify(value)?.slice(0, 40)).toBe(3 + packed.length);
    }
  });

  it('says how many bytes it needs when the buffer ends inside a value, at every cut', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        const packed = Buffer.from(packr.pack(value));
        const scan = scanner(1 << 20);
        for (let cut = 0; cut < packed.length; cut++) {
          const need = -scan.valueEnd(packed.subarray(0, cut), 0, 0);
          // More than it has, and never more than the whole value: a length prefix is trusted only up to its end.
          expect(need).toBeGreaterThan(cut);
          expect(need).toBeLessThanOrEqual(packed.length);
        }
        expect(scan.valueEnd(packed, 0, 0)).toBe(packed.length);
      }),
      { numRuns: 200 },
    );
  });

  it('learns the whole length of a string or binary from its prefix alone', () => {
    const packed = Buffer.from(packr.pack(Buffer.alloc(1_000)));
    expect(scanner().valueEnd(packed.subarray(0, 3), 0, 0)).toBe(-packed.length);
  });

  it('refuses ext types and the reserved byte, naming the stream offset', () => {
    for (const [bytes, what] of [
      [[0x91, 0xd4, 0x01, 0x00], 'a MessagePack ext type, which this format does not allow'],
      [[0x91, 0xc7, 0x01, 0x01, 0x00], 'a MessagePack ext type, which this format does not allow'],
      [[0x91, 0xc1], 'not valid MessagePack'],
    ] as const) {
      const error = thrown(() => scanner().valueEnd(Buffer.from(bytes), 0, 1_000));
      expect(error).toMatchObject({ name: 'StateFormatError', code: 'ERR_STATE_FORMAT', offset: 1_001 });
      expect(error?.message).toBe(`byte 0x${bytes[1].toString(16)} at stream byte 1001 is ${what}`);
    }
  });

  it('refuses a value over the size limit from its header, before its bytes arrived', () => {
    // A str 32 header announcing 100 bytes, and an array 32 announcing 100 items: neither is complete.
    const str = Buffer.from([0xdb, 0, 0, 0, 100]);
    const array = Buffer.from([0xdd, 0, 0, 0, 100]);
    for (const header of [str, array]) {
      expect(thrown(() => scanner(64).valueEnd(header, 0, 7))).toMatchObject({
        code: 'ERR_STATE_FORMAT',
        offset: 7,
        message: 'MessagePack value at stream byte 7 is larger than 64 bytes',
      });
      expect(scanner(200).valueEnd(header, 0, 0)).toBeLessThan(0);
    }
  });

  it('refuses nesting deeper than its limit, and accepts it at the limit', () => {
    const nested = (depth: number): Buffer => Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0x00])]);
    expect(scanner(1 << 16, 4).valueEnd(nested(4), 0, 0)).toBe(5);
    expect(thrown(() => scanner(1 << 16, 4).valueEnd(nested(5), 0, 0))?.message).toBe(
      'MessagePack value at stream byte 0 nests deeper than 4 levels',
    );
  });

  it('is reusable: a refused or incomplete scan leaves nothing behind for the next one', () => {
    const scan = scanner(1 << 16, 2);
    expect(() => scan.valueEnd(Buffer.from([0x91, 0x91, 0x91, 0x00]), 0, 0)).toThrow();
    expect(scan.valueEnd(Buffer.from([0x92, 0x91]), 0, 0)).toBeLessThan(0);
    expect(scan.valueEnd(Buffer.from([0x92, 0x91, 0x00, 0x05]), 0, 0)).toBe(4);
  });
});
