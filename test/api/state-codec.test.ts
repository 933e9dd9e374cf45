import { inspect } from 'node:util';
import fc from 'fast-check';
import { Packr, Unpackr, unpackMultiple } from 'msgpackr';
import { describe, expect, it, vi } from 'vitest';
import { MessagePackScanner } from '../../api/msgpack-scanner.ts';
import {
  StateDecoder,
  decodeSessionStream,
  decodeSessions,
  encodeSessionChunks,
  encodeSessions,
} from '../../api/state-codec.ts';
import {
  ERR_STATE_CHECKSUM,
  ERR_STATE_FIELD,
  ERR_STATE_FORMAT,
  ERR_STATE_TRUNCATED,
  ERR_STATE_USAGE,
  ERR_STATE_VERSION,
  isStateFormatError,
  type StateErrorCode,
} from '../../api/state-errors.ts';
import {
  FORMAT_NAME,
  FORMAT_VERSION,
  LIMITS,
  MAX_UINT48,
  describeSession,
  joinOutCtr,
  splitOutCtr,
  type SessionState,
} from '../../api/state-format.ts';
import { deviceId } from '../../api/device-identity.ts';
import {
  FIXTURE_CREATED_AT as T,
  FIXTURE_HEADER,
  fixtureSessions,
  rawStream,
  v1Header,
  v1Record,
} from '../fixtures/state/fixtures.ts';

/** Runs fn and returns the StateFormatError it throws; fails the test if it does not throw one. */
function catchStateError(fn: () => unknown): { code: StateErrorCode; message: string; record?: number; field?: string } {
  try {
    fn();
  } catch (error) {
    if (isStateFormatError(error)) return error;
    throw error;
  }
  throw new Error('expected a StateFormatError, nothing was thrown');
}

function decodeChunks(chunks: readonly Uint8Array[], now = T): ReturnType<StateDecoder['finish']> {
  const decoder = new StateDecoder({ now });
  for (const chunk of chunks) decoder.push(chunk);
  return decoder.finish();
}

/** Byte range of the first occurrence of `needle` in `haystack`. */
function rangeOf(haystack: Buffer, needle: Buffer): [number, number] {
  const start = haystack.indexOf(needle);
  expect(start).toBeGreaterThanOrEqual(0);
  return [start, start + needle.length];
}

describe('round trip', () => {
  it('decodes what it encodes, with times relative to the reader\'s now', () => {
    const sessions = fixtureSessions();
    const buf = encodeSessions(FIXTURE_HEADER, sessions);
    const readerNow = T + 123_456; // another pod, another clock
    const { header, sessions: out } = decodeSessions(buf, readerNow);
    expect(header).toEqual({
      format: FORMAT_NAME,
      version: FORMAT_VERSION,
      minReaderVersion: 1,
      source: 'relay-blue-0',
      createdAt: T,
      count: 3,
    });
    expect(out).toEqual(
      sessions.map((s) => ({ ...s, createdAt: s.createdAt + 123_456, lastSeenAt: s.lastSeenAt + 123_456 })),
    );
    for (const s of out) {
      for (const b of [s.deviceKey, s.dtls.randoms, s.dtls.sessionId, s.dtls.master, s.replay.window]) {
        expect(Buffer.isBuffer(b)).toBe(true); // node-mbed-dtls casts non-Buffers unchecked
      }
    }
    // Binary fields are copies: wiping the input (as a careful caller does) leaves the sessions intact.
    buf.fill(0);
    expect(out[0]!.dtls.master).toEqual(sessions[0]!.dtls.master);
  });

  it('is plain MessagePack that a default reader sees as header, records, trailer', () => {
    const buf = encodeSessions(FIXTURE_HEADER, fixtureSessions());
    const values = unpackMultiple(buf) as Record<string, unknown>[];
    expect(values).toHaveLength(5);
    expect(values[0]).toMatchObject({ format: FORMAT_NAME, version: 1, count: 3 });
    expect(Object.keys(values[1]!)).toEqual(['p', 'k', 'd', 'w', 'a', 'i', 'u']);
    expect(Object.keys(values[4]!)).toEqual(['count', 'sha256']);
  });

  it('writes integers above 32 bits as int64, not float64, and reads float64 integers from other writers', () => {
    const [, big] = fixtureSessions();
    const buf = encodeSessions(FIXTURE_HEADER, [big!]);
    const [, record] = new Unpackr({ useRecords: false }).unpackMultiple(buf) as Record<string, any>[];
    expect(record!.d.os).toBe(BigInt(2 ** 40 + 5)); // a bigint here means an integer type on the wire
    expect(typeof record!.a).toBe('bigint');

    const asFloats = rawStream(v1Header(1, { createdAt: T }), [
      { ...v1Record(big!), d: { ...v1Record(big!).d, os: 2 ** 40 + 5 }, a: 5_184_000_000, i: 5_000_000_000 },
    ]);
    expect(asFloats.includes(0xcb)).toBe(true);
    expect(decodeSessions(asFloats, T).sessions[0]!.dtls.outSeq).toBe(2 ** 40 + 5);
  });

  it('round-trips random sessions through random chunkings (property)', () => {
    fc.assert(
      fc.property(fc.array(sessionArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (sessions, cuts) => {
        const buf = encodeSessions({ source: 'p', createdAt: T }, sessions);
        const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let from = 0;
        for (const p of [...points, buf.length]) {
          chunks.push(buf.subarray(from, p));
          from = p;
        }
        expect(decodeChunks(chunks).sessions).toEqual(sessions);
      }),
      { numRuns: 300 },
    );
  });

  it('clamps ages a wall-clock step made negative instead of failing the export', () => {
    const [s] = fixtureSessions();
    const future = { ...s!, createdAt: T + 5_000, lastSeenAt: T + 9_000 };
    const stepped = { ...s!, createdAt: T - 1_000, lastSeenAt: T - 2_000 }; // seen before it was created
    const out = decodeSessions(encodeSessions(FIXTURE_HEADER, [future, stepped]), T).sessions;
    expect([out[0]!.createdAt, out[0]!.lastSeenAt]).toEqual([T, T]);
    expect([out[1]!.createdAt, out[1]!.lastSeenAt]).toEqual([T - 1_000, T - 1_000]);
  });

  it('encodes and decodes an empty state', () => {
    const { header, sessions } = decodeSessions(encodeSessions(FIXTURE_HEADER, []), T);
    expect(header.count).toBe(0);
    expect(sessions).toEqual([]);
  });
});

describe('chunked encoding', () => {
  it('yields bounded chunks whose concatenation is the whole stream', () => {
    const many = Array.from({ length: 500 }, (_, i) => ({ ...fixtureSessions()[i % 3]!, peer: { address: '10.0.0.1', port: i + 1 } }));
    const chunks = [...encodeSessionChunks(FIXTURE_HEADER, many, { chunkBytes: 4096 })];
    expect(chunks.length).toBeGreaterThan(10);
    // A chunk is closed when the next record does not fit, so it is short of chunkBytes by less than a record.
    for (const c of chunks.slice(0, -1)) {
      expect(c.length).toBeLessThanOrEqual(4096);
      expect(c.length).toBeGreaterThan(4096 - 400);
    }
    expect(Buffer.concat(chunks)).toEqual(encodeSessions(FIXTURE_HEADER, many));
    expect(decodeChunks(chunks).sessions).toHaveLength(500);
  });

  it('copes with chunks smaller than one record, and never yields empty chunks', () => {
    const chunks = [...encodeSessionChunks(FIXTURE_HEADER, fixtureSessions(), { chunkBytes: 1 })];
    expect(chunks).toHaveLength(5); // header, three records, trailer: one value per chunk
    expect(chunks.every((c) => c.length > 0)).toBe(true);
    expect(Buffer.concat(chunks)).toEqual(encodeSessions(FIXTURE_HEADER, fixtureSessions()));
  });

  it('keeps its chunks intact when other code packs with msgpackr in between', () => {
    const other = new Packr({ useRecords: false });
    const sessions = fixtureSessions();
    function* interleaved(): Generator<SessionState> {
      for (const s of sessions) {
        other.position = 0; // rewinds the buffer all msgpackr instances share
        other.pack({ noise: Buffer.alloc(300, 0xaa) });
        yield s;
      }
    }
    const chunks: Buffer[] = [];
    for (const c of encodeSessionChunks({ ...FIXTURE_HEADER, count: 3 }, interleaved(), { chunkBytes: 700 })) {
      other.position = 0;
      other.pack({ noise: Buffer.alloc(300, 0xbb) });
      chunks.push(c);
    }
    expect(Buffer.concat(chunks)).toEqual(encodeSessions(FIXTURE_HEADER, sessions));
  });

  it('encodes lazily from an iterable when the header gives the count', () => {
    const sessions = fixtureSessions();
    function* gen(): Generator<SessionState> {
      yield* sessions;
    }
    const buf = Buffer.concat([...encodeSessionChunks({ ...FIXTURE_HEADER, count: 3 }, gen())]);
    expect(buf).toEqual(encodeSessions(FIXTURE_HEADER, sessions));
  });

  it('refuses an iterable without a count, and a count the sessions do not match', () => {
    const gen = function* (): Generator<SessionState> {
      yield* fixtureSessions();
    };
    // Header problems throw at the call, before a single chunk could be sent.
    expect(catchStateError(() => encodeSessionChunks(FIXTURE_HEADER, gen())).code).toBe(ERR_STATE_USAGE);
    expect(catchStateError(() => encodeSessionChunks({ ...FIXTURE_HEADER, count: 2 }, fixtureSessions()))).toMatchObject({
      code: ERR_STATE_FIELD,
      message: 'header.count is 2 but 3 sessions were given',
    });
    const more = catchStateError(() => [...encodeSessionChunks({ ...FIXTURE_HEADER, count: 2 }, gen())]);
    expect(more).toMatchObject({ code: ERR_STATE_FIELD, message: 'header.count is 2 but sessions yielded more' });
    const fewer = catchStateError(() => [...encodeSessionChunks({ ...FIXTURE_HEADER, count: 4 }, gen())]);
    expect(fewer.message).toBe('header.count is 4 but sessions yielded 3');
  });

  it('names the record and field of a bad session on the sending side', () => {
    const sessions = fixtureSessions();
    sessions[2]!.dtls.master = Buffer.alloc(47);
    expect(catchStateError(() => encodeSessions(FIXTURE_HEADER, sessions))).toMatchObject({
      code: ERR_STATE_FIELD,
      message: 'record 2: dtls.master must be 48 bytes, got 47',
    });
    const noDtls = { ...fixtureSessions()[0]!, dtls: undefined } as unknown as SessionState;
    expect(catchStateError(() => encodeSessions(FIXTURE_HEADER, [noDtls])).message).toBe(
      'record 0: dtls.cipherSuite must be an integer 1..65535, got nothing (missing)',
    );
    const badTime = { ...fixtureSessions()[0]!, lastSeenAt: Number.NaN };
    expect(catchStateError(() => encodeSessions(FIXTURE_HEADER, [badTime])).field).toBe('lastSeenAt');
    expect(catchStateError(() => encodeSessions({ source: '', createdAt: T }, [])).message).toBe(
      'header.source must be a string of 1..253 chars, got ""',
    );
  });
});

describe('chunk boundaries', () => {
  const buf = encodeSessions(FIXTURE_HEADER, fixtureSessions());
  const expected = decodeSessions(buf, T);

  it('decodes identically at every split point', () => {
    for (let i = 0; i <= buf.length; i++) {
      expect(decodeChunks([buf.subarray(0, i), buf.subarray(i)]), `split at ${i}`).toEqual(expected);
    }
  });

  it('decodes one byte at a time', () => {
    const bytes = Array.from(buf, (_, i) => buf.subarray(i, i + 1));
    expect(decodeChunks(bytes)).toEqual(expected);
  });

  it('does not keep references to chunks the caller reuses', () => {
    const decoder = new StateDecoder({ now: T });
    const scratch = Buffer.alloc(97);
    for (let i = 0; i < buf.length; i += scratch.length) {
      const n = buf.copy(scratch, 0, i, i + scratch.length);
      decoder.push(scratch.subarray(0, n));
      scratch.fill(0xee); // the caller overwrites its buffer after push() returns
    }
    expect(decoder.finish()).toEqual(expected);
  });

  it('decodes an async iterable of chunks', async () => {
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < buf.length; i += 100) yield new Uint8Array(buf.subarray(i, i + 100));
    }
    expect(await decodeSessionStream(body(), T)).toEqual(expected);
  });
});

describe('damage is detected', () => {
  const sessions = fixtureSessions();
  const buf = encodeSessions(FIXTURE_HEADER, sessions);

  it('reports truncation at every byte', () => {
    for (let i = 0; i < buf.length; i++) {
      const error = catchStateError(() => decodeSessions(buf.subarray(0, i), T));
      expect(error.code, `truncated to ${i} bytes: ${error.message}`).toBe(ERR_STATE_TRUNCATED);
    }
  });

  it('says where a truncated stream ended', () => {
    const records = unpackMultipleRanges(buf);
    expect(catchStateError(() => decodeSessions(buf.subarray(0, records[2]![1]), T)).message).toBe(
      'stream ended after 2 of 3 records',
    );
    expect(catchStateError(() => decodeSessions(buf.subarray(0, records[2]![1] + 10), T)).message).toBe(
      'stream ended inside record 2 (10 bytes of it received)',
    );
    expect(catchStateError(() => decodeSessions(buf.subarray(0, records[4]![0]), T)).message).toBe(
      'stream ended after all 3 records but before the trailer',
    );
  });

  it('fails on every flipped byte, and names the checksum when a master secret byte changed', () => {
    const masters = sessions.map((s) => rangeOf(buf, s.dtls.master));
    const codes = new Map<string, number>();
    for (let i = 0; i < buf.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const damaged = Buffer.from(buf);
        damaged[i]! ^= mask;
        const error = catchStateError(() => decodeSessions(damaged, T));
        codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
        if (masters.some(([from, to]) => i >= from && i < to)) {
          expect(error.code, `byte ${i} ^ ${mask}`).toBe(ERR_STATE_CHECKSUM);
        }
      }
    }
    // Every kind of detection took part; which one depends on where the byte was.
    expect([...codes.keys()].sort()).toEqual(
      [ERR_STATE_CHECKSUM, ERR_STATE_FIELD, ERR_STATE_FORMAT, ERR_STATE_TRUNCATED].sort(),
    );
  });

  it('detects a changed record whose fields are all still valid', () => {
    const records = sessions.map((s) => v1Record(s));
    const body = rawStream(v1Header(3), records);
    const altered = rawStream(v1Header(3), [records[0], { ...records[1], p: { a: '192.0.2.66', p: 5684 } }, records[2]]);
    // Splice the honest trailer onto the altered body: what a man in the middle without the hash would send.
    const trailerStart = unpackMultipleRanges(body)[4]![0];
    const alteredTrailerStart = unpackMultipleRanges(altered)[4]![0];
    const forged = Buffer.concat([altered.subarray(0, alteredTrailerStart), body.subarray(trailerStart)]);
    expect(catchStateError(() => decodeSessions(forged, T))).toMatchObject({
      code: ERR_STATE_CHECKSUM,
      message: 'trailer.sha256 does not match the header and records received: the stream was altered',
    });
  });

  it('checks the counts in header and trailer against the records', () => {
    const records = sessions.map((s) => v1Record(s));
    expect(catchStateError(() => decodeSessions(rawStream(v1Header(4), records), T))).toMatchObject({
      code: ERR_STATE_FORMAT,
      message: 'found the trailer after 3 records, but the header announced 4',
    });
    expect(catchStateError(() => decodeSessions(rawStream(v1Header(2), records), T)).message).toMatch(
      /^expected the trailer after the 2 records the header announced, got another record at byte \d+$/,
    );
    expect(catchStateError(() => decodeSessions(rawStream(v1Header(3), records, { count: 2 }), T))).toMatchObject({
      code: ERR_STATE_CHECKSUM,
      message: 'trailer.count is 2 but the header announced 3 records and 3 were read',
    });
  });

  it('refuses data after the trailer, e.g. two streams glued together', () => {
    const error = catchStateError(() => decodeSessions(Buffer.concat([buf, buf]), T));
    expect(error).toMatchObject({ code: ERR_STATE_FORMAT, message: `unexpected data after the trailer at byte ${buf.length}` });
    // Also when the extra bytes arrive in a later chunk.
    const decoder = new StateDecoder({ now: T });
    decoder.push(buf);
    expect(catchStateError(() => decoder.push(Buffer.from([0xc0]))).code).toBe(ERR_STATE_FORMAT);
  });

  it('refuses things that are not this format', () => {
    expect(catchStateError(() => decodeSessions(Buffer.from('{"format":"json"}'), T)).code).toBe(ERR_STATE_FORMAT);
    const other = rawStream({ format: 'californium', version: 1 }, []);
    expect(catchStateError(() => decodeSessions(other, T)).message).toBe(
      `not a ${FORMAT_NAME} stream: expected a header map with format "${FORMAT_NAME}", got header.format "californium"`,
    );
    expect(catchStateError(() => decodeSessions(Buffer.alloc(0), T))).toMatchObject({
      code: ERR_STATE_TRUNCATED,
      message: 'stream ended before its header was complete (0 bytes)',
    });
  });

  it('refuses ext types and the reserved byte, even inside unknown fields', () => {
    const withExt = Buffer.concat([
      Buffer.from([0x81, 0xa1, 0x78]), // {x: ...}
      Buffer.from([0xd4, 0x01, 0x00]), // fixext 1
    ]);
    expect(catchStateError(() => decodeSessions(withExt, T)).message).toBe(
      'byte 0xd4 at stream byte 3 is a MessagePack ext type, which this format does not allow',
    );
    expect(catchStateError(() => decodeSessions(Buffer.from([0xc1]), T)).message).toBe(
      'byte 0xc1 at stream byte 0 is not valid MessagePack',
    );
  });

  it('refuses an oversized value as soon as its length prefix arrives', () => {
    const decoder = new StateDecoder({ now: T });
    const header = Buffer.from([0x81, 0xa1, 0x78, 0xc6, 0x00, 0x10, 0x00, 0x00]); // {x: bin32 of 1 MiB}
    expect(catchStateError(() => decoder.push(header))).toMatchObject({
      code: ERR_STATE_FORMAT,
      message: `MessagePack value at stream byte 0 is larger than ${LIMITS.maxValueBytes} bytes`,
    });
    const manyItems = Buffer.from([0xdd, 0x00, 0x01, 0x00, 0x00]); // array32 of 65536 items
    expect(catchStateError(() => decodeSessions(manyItems, T)).code).toBe(ERR_STATE_FORMAT);
  });

  it('refuses nesting too deep to decode safely', () => {
    const deep = Buffer.alloc(1000, 0x91); // [[[[...
    expect(catchStateError(() => decodeSessions(deep, T)).message).toBe(
      'MessagePack value at stream byte 0 nests deeper than 32 levels',
    );
  });

  /** Pushes `stream` one byte at a time; returns how many bytes the scanner read in all. */
  function bytesScannedOneByteAtATime(stream: Buffer): number {
    const scan = vi.spyOn(MessagePackScanner.prototype, 'valueEnd');
    try {
      const decoder = new StateDecoder({ now: T });
      for (let i = 0; i < stream.length; i++) decoder.push(stream.subarray(i, i + 1));
      expect(decoder.finish().header.count).toBe(0);
      return scan.mock.calls.reduce((sum, [buf, start]) => sum + buf.length - start, 0);
    } finally {
      scan.mockRestore();
    }
  }

  it('waits for a long value without rescanning every chunk', () => {
    // 60 KiB of unknown header field: its length prefix says how long to wait, so the bytes are read about once
    // (rescanning on every push would read 1.8 billion).
    const header = rawStream({ ...v1Header(0), pad: Buffer.alloc(60_000) }, []);
    expect(bytesScannedOneByteAtATime(header)).toBeLessThan(2 * header.length);
  });

  it('waits for a value of many small items without rescanning every chunk', () => {
    // 60,000 one-byte items: no prefix tells where the value ends. Tails up to 4 KiB are rescanned at each push (so
    // errors surface at once), which reads at most 4096 * 4096 / 2 bytes; longer ones only after doubling, a few
    // passes over the whole. Rescanning on every push would read 1.8 billion bytes.
    const header = rawStream({ ...v1Header(0), pad: new Array(60_000).fill(0) }, []);
    expect(bytesScannedOneByteAtATime(header)).toBeLessThan((4096 * 4096) / 2 + 4 * header.length);
  });
});

describe('field validation names the record and field', () => {
  const sessions = fixtureSessions();
  const good = sessions.map((s) => v1Record(s));
  const cases: [string, (r: Record<string, any>) => void, string][] = [
    ['master too short', (r) => (r.d.m = Buffer.alloc(47)), 'dtls.master must be 48 bytes, got 47'],
    ['master as a string', (r) => (r.d.m = 'S'.repeat(48)), 'dtls.master must be binary of 48 bytes, got a string of 48 chars'],
    ['randoms', (r) => (r.d.r = Buffer.alloc(32)), 'dtls.randoms must be 64 bytes, got 32'],
    ['session id', (r) => (r.d.s = Buffer.alloc(33)), 'dtls.sessionId must be 0..32 bytes, got 33'],
    ['device key', (r) => (r.k = Buffer.alloc(25)), 'deviceKey must be 26..512 bytes, got 25'],
    ['cipher suite 0', (r) => (r.d.c = 0), 'dtls.cipherSuite must be an integer 1..65535, got 0'],
    ['in epoch', (r) => (r.d.ie = 65536), 'dtls.inEpoch must be an integer 0..65535, got 65536'],
    ['out epoch', (r) => (r.d.oe = -1), 'dtls.outEpoch must be an integer 0..65535, got -1'],
    ['out seq', (r) => (r.d.os = 2 ** 48), `dtls.outSeq must be an integer 0..${MAX_UINT48}, got ${2 ** 48}`],
    ['out seq float', (r) => (r.d.os = 1.5), `dtls.outSeq must be an integer 0..${MAX_UINT48}, got 1.5`],
    ['address', (r) => (r.p.a = '300.1.2.3'), 'peer.address must be an IPv4 or IPv6 address, got "300.1.2.3"'],
    ['port', (r) => (r.p.p = 0), 'peer.port must be an integer 1..65535, got 0'],
    ['peer missing', (r) => delete r.p, 'peer must be a map, got nothing (missing)'],
    ['dtls as array', (r) => (r.d = []), 'dtls must be a map, got an array of 0'],
    ['replay top', (r) => (r.w.t = -2), `replay.top must be an integer -1..${MAX_UINT48}, got -2`],
    ['window size', (r) => (r.w.b = Buffer.alloc(7)), 'replay.window must be 8 bytes, got 7'],
    ['window bit 0', (r) => (r.w.b = Buffer.from('0000000000000002', 'hex')), 'replay.window must be a bitmap with bit 0 (replay.top itself) set, got bit 0 clear'],
    ['window above top', (r) => ((r.w.t = 3), (r.w.b = Buffer.from('0000000000000011', 'hex'))), 'replay.window must be clear above bit 3 (replay.top is 3), got bit 4 set'],
    ['window without top', (r) => ((r.w.t = -1), (r.w.b = Buffer.from('0000000000000001', 'hex'))), 'replay.window must be all zero when replay.top is -1, got bits set'],
    ['age', (r) => (r.a = -5), `ageMs must be an integer 0..${Number.MAX_SAFE_INTEGER}, got -5`],
    ['idle above age', (r) => ((r.a = 10), (r.i = 11)), 'idleMs must be an integer 0..10, got 11'],
    ['identity empty', (r) => (r.u.i = ''), 'upstream.identity must be nil or a string of 1..256 chars, got ""'],
    ['identity number', (r) => (r.u.i = 7), 'upstream.identity must be nil or a string of 1..256 chars, got 7'],
    ['peer as array', (r) => (r.p = [1, 2]), 'peer must be a map, got an array of 2'],
  ];

  for (const [name, damage, message] of cases) {
    it(name, () => {
      const records = good.map((r) => structuredClone(r));
      // Put the bad record at index 17 of a longer stream, as the example does.
      const padded = Array.from({ length: 20 }, (_, i) => structuredClone(records[i % 3]!));
      damage(padded[17]!);
      const error = catchStateError(() => decodeSessions(rawStream(v1Header(20), padded), T));
      expect(error).toMatchObject({ code: ERR_STATE_FIELD, record: 17, message: `record 17: ${message}` });
    });
  }

  it('names header and trailer fields', () => {
    const bad = rawStream(v1Header(3, { createdAt: -1 }), good);
    expect(catchStateError(() => decodeSessions(bad, T)).message).toBe(
      `header.createdAt must be an integer 0..${Number.MAX_SAFE_INTEGER}, got -1`,
    );
    const badTrailer = rawStream(v1Header(3), good, { sha256: Buffer.alloc(31) });
    expect(catchStateError(() => decodeSessions(badTrailer, T))).toMatchObject({
      code: ERR_STATE_FIELD,
      message: 'trailer.sha256 must be 32 bytes, got 31',
    });
  });

  it('a record that is not a map at all', () => {
    const error = catchStateError(() => decodeSessions(rawStream(v1Header(1), ['hello']), T));
    expect(error.message).toBe('record 0: session must be a map, got "hello"');
  });
});

describe('secrets', () => {
  const sessions = fixtureSessions();
  const masterHex = sessions.map((s) => s.dtls.master.toString('hex'));
  const decoded = decodeSessions(encodeSessions(FIXTURE_HEADER, sessions), T).sessions;

  /** Any of the masters as hex, base64, or the byte list JSON.stringify makes of a Buffer. */
  function leaks(text: string): boolean {
    return sessions.some(
      (s, i) =>
        text.includes(masterHex[i]!) ||
        text.includes(s.dtls.master.toString('base64')) ||
        text.includes([...s.dtls.master.subarray(0, 8)].join(',')),
    );
  }

  it('describeSession leaves out the master secret and names the device', () => {
    const view = describeSession(decoded[0]!);
    expect(leaks(JSON.stringify(view))).toBe(false);
    expect(view).toMatchObject({ peer: '198.51.100.7:5684', deviceId: deviceId(sessions[0]!.deviceKey) });
    expect(describeSession(decoded[1]!).peer).toBe('[2001:db8::17]:61000');
    expect((view.dtls as Record<string, unknown>).master).toBe('[redacted]');
  });

  it('decoded sessions redact the master in JSON and util.inspect but still hand it out as a Buffer', () => {
    expect(leaks(JSON.stringify(decoded))).toBe(false);
    expect(leaks(inspect(decoded, { depth: 10 }))).toBe(false);
    expect(decoded[0]!.dtls.master).toEqual(sessions[0]!.dtls.master);
  });

  it('error messages never quote a secret field', () => {
    const r = v1Record(sessions[0]!);
    r.d.m = masterHex[0]!; // a writer bug that put the secret in a string
    const error = catchStateError(() => decodeSessions(rawStream(v1Header(1), [r]), T));
    expect(error.message).toBe('record 0: dtls.master must be binary of 48 bytes, got a string of 96 chars');
    expect(leaks(error.message)).toBe(false);
  });
});

describe('decoder lifecycle', () => {
  const buf = encodeSessions(FIXTURE_HEADER, fixtureSessions());

  it('gives out the header early but sessions only from finish()', () => {
    const decoder = new StateDecoder({ now: T });
    decoder.push(buf.subarray(0, buf.length - 10));
    expect(decoder.header?.count).toBe(3);
    expect(decoder.recordsRead).toBe(3);
    expect(catchStateError(() => decoder.finish()).code).toBe(ERR_STATE_TRUNCATED);
  });

  it('stays failed after an error and refuses use after finish()', () => {
    const decoder = new StateDecoder({ now: T });
    expect(catchStateError(() => decoder.push(Buffer.from([0xc1]))).code).toBe(ERR_STATE_FORMAT);
    expect(catchStateError(() => decoder.push(buf)).code).toBe(ERR_STATE_FORMAT);
    expect(catchStateError(() => decoder.finish()).code).toBe(ERR_STATE_FORMAT);

    const done = new StateDecoder({ now: T });
    done.push(buf);
    done.finish();
    expect(catchStateError(() => done.push(buf)).code).toBe(ERR_STATE_USAGE);
  });

  it('needs a now', () => {
    expect(catchStateError(() => new StateDecoder({} as { now: number })).code).toBe(ERR_STATE_USAGE);
  });
});

describe('out_ctr helpers', () => {
  it('split and join the epoch | 48-bit sequence counter', () => {
    const ctr = joinOutCtr(2, MAX_UINT48 - 1);
    expect(ctr.toString('hex')).toBe('0002fffffffffffe');
    expect(splitOutCtr(ctr)).toEqual({ epoch: 2, seq: MAX_UINT48 - 1 });
    expect(catchStateError(() => joinOutCtr(1, 2 ** 48)).code).toBe(ERR_STATE_FIELD);
    expect(catchStateError(() => splitOutCtr(Buffer.alloc(7))).message).toBe(
      'out_ctr must be binary of 8 bytes, got binary of 7 bytes',
    );
  });
});

it('ERR_STATE_VERSION is a code the decoder can produce (see state-compat.test.ts)', () => {
  const v9 = rawStream(v1Header(0, { version: 9, minReaderVersion: 9 }), []);
  expect(catchStateError(() => decodeSessions(v9, T)).code).toBe(ERR_STATE_VERSION);
});

// ---------------------------------------------------------------------------------------------------------------

/** [start, end) of each top-level value. */
function unpackMultipleRanges(buf: Buffer): [number, number][] {
  const ranges: [number, number][] = [];
  new Unpackr({ useRecords: false }).unpackMultiple(buf, (_value, start, end) => {
    ranges.push([start!, end!]);
  });
  return ranges;
}

const bytesArb = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((u) => Buffer.from(u));

/** A replay state that satisfies the window rules: nothing seen at top -1, top itself seen, nothing below 0. */
const replayArb = fc
  .record({
    epoch: fc.integer({ min: 0, max: 0xffff }),
    top: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 70 }), fc.integer({ min: 0, max: MAX_UINT48 })),
    bits: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  })
  .map(({ epoch, top, bits }) => {
    let value = top === -1 ? 0n : bits | 1n;
    if (top >= 0 && top < 63) value &= (1n << BigInt(top + 1)) - 1n;
    const window = Buffer.alloc(8);
    window.writeBigUInt64BE(value);
    return { epoch, top, window };
  });

const sessionArb: fc.Arbitrary<SessionState> = fc
  .record({
    peer: fc.record({
      address: fc.oneof(fc.ipV4(), fc.ipV6()),
      port: fc.integer({ min: 1, max: 0xffff }),
    }),
    deviceKey: bytesArb(26, 512),
    dtls: fc.record({
      cipherSuite: fc.integer({ min: 1, max: 0xffff }),
      randoms: bytesArb(64, 64),
      sessionId: bytesArb(0, 32),
      master: bytesArb(48, 48),
      inEpoch: fc.integer({ min: 0, max: 0xffff }),
      outEpoch: fc.integer({ min: 0, max: 0xffff }),
      outSeq: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: MAX_UINT48 })),
    }),
    replay: replayArb,
    age: fc.integer({ min: 0, max: 2 ** 40 }),
    idleShare: fc.double({ min: 0, max: 1, noNaN: true }),
    upstream: fc.record({
      identity: fc.option(fc.string({ unit: 'binary', minLength: 1, maxLength: 128 }), { nil: null }),
    }),
  })
  .map(({ age, idleShare, ...rest }) => ({
    ...rest,
    createdAt: T - age,
    lastSeenAt: T - Math.floor(age * idleShare),
  }));
