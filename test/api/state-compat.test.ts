/**
 * The compatibility rule of the session state format (state-format.ts, docs/state-format.md): version N reads
 * N-1, N-1 reads N, and a stream that really needs a newer reader is refused by version, not by some field.
 */
import { readFileSync } from 'node:fs';
import { Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { StateDecoder, decodeSessions } from '../../api/state-codec.ts';
import { ERR_STATE_FIELD, ERR_STATE_VERSION, isStateFormatError } from '../../api/state-errors.ts';
import { FORMAT_VERSION, MIN_READER_VERSION, OLDEST_READABLE_VERSION, checkReaderVersion } from '../../api/state-format.ts';
import {
  FIXTURE_CREATED_AT as T,
  FIXTURE_DIR,
  FIXTURE_FILES,
  fixtureSessions,
  rawStream,
  v1Header,
  v1Record,
} from '../fixtures/state/fixtures.ts';

const fixture = (name: keyof typeof FIXTURE_FILES): Buffer => readFileSync(new URL(name, FIXTURE_DIR));

function stateError(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (error) {
    if (isStateFormatError(error)) return error;
    throw error;
  }
  throw new Error('expected a StateFormatError, nothing was thrown');
}

describe('version 1 fixture (written by this release)', () => {
  it('decodes to the sessions it was made from', () => {
    const { header, sessions } = decodeSessions(fixture('v1.bin'), T);
    expect(header).toMatchObject({ version: 1, minReaderVersion: 1, source: 'relay-blue-0', count: 3 });
    expect(sessions).toEqual(fixtureSessions());
  });

  it('is what the encoder writes today, byte for byte', () => {
    // Fails on any change of the bytes this release writes: key names, key order, integer widths, map headers,
    // msgpackr upgrades. If the change is intended, it is a new format version (see fixtures.ts), not a regeneration.
    expect(FORMAT_VERSION).toBe(1);
    expect(FIXTURE_FILES['v1.bin']().equals(fixture('v1.bin'))).toBe(true);
  });

  it('matches the wire layout spelled out key by key, independently of the encoder', () => {
    const sessions = fixtureSessions();
    const handMade = rawStream(v1Header(sessions.length), sessions.map((s) => v1Record(s)));
    expect(handMade.equals(fixture('v1.bin'))).toBe(true);
  });
});

describe('N-1 reads N: a version 2 stream with minReaderVersion 1', () => {
  const v2 = fixture('v2-unknown-fields.bin');

  it('is still the committed bytes', () => {
    expect(FIXTURE_FILES['v2-unknown-fields.bin']().equals(v2)).toBe(true);
  });

  it('really carries unknown fields at every level', () => {
    const [header, record, , , trailer] = new Unpackr({ useRecords: false }).unpackMultiple(v2) as Record<string, any>[];
    expect(header).toMatchObject({ version: 2, minReaderVersion: 1, writer: { name: 'relayctl' } });
    expect(Object.keys(record!)).toEqual(expect.arrayContaining(['cid', 'stats']));
    expect(record!.p).toHaveProperty('nat');
    expect(record!.d).toHaveProperty('ems');
    expect(record!.w).toHaveProperty('history');
    expect(record!.u).toHaveProperty('route');
    expect(trailer).toHaveProperty('signedBy');
  });

  it('is read by this version 1 reader, which ignores what it does not know', () => {
    const { header, sessions } = decodeSessions(v2, T);
    expect(header).toEqual({
      format: 'relayctl.dtls-sessions',
      version: 2,
      minReaderVersion: 1,
      source: 'relay-blue-0',
      createdAt: T,
      count: 3,
    });
    expect(sessions).toEqual(fixtureSessions());
    for (const s of sessions) {
      expect(Object.keys(s).sort()).toEqual(['createdAt', 'deviceKey', 'dtls', 'lastSeenAt', 'peer', 'replay', 'upstream']);
      expect(Object.keys(s.peer).sort()).toEqual(['address', 'port']);
    }
  });

  it('is read at every chunk boundary', () => {
    const expected = decodeSessions(v2, T);
    for (let i = 0; i <= v2.length; i++) {
      const decoder = new StateDecoder({ now: T });
      decoder.push(v2.subarray(0, i));
      decoder.push(v2.subarray(i));
      expect(decoder.finish()).toEqual(expected);
    }
  });

  it('is refused field by field when a version 2 writer breaks rule 4 by dropping a known field', () => {
    const sessions = fixtureSessions();
    const records = sessions.map((s) => v1Record(s));
    delete records[1]!.d.os;
    const broken = rawStream(v1Header(3, { version: 2 }), records);
    expect(stateError(() => decodeSessions(broken, T))).toMatchObject({
      code: ERR_STATE_FIELD,
      message: 'record 1: dtls.outSeq must be an integer 0..281474976710655, got nothing (missing)',
    });
  });
});

describe('a stream that needs a newer reader', () => {
  const v3 = fixture('v3-min-reader-3.bin');

  it('is still the committed bytes', () => {
    expect(FIXTURE_FILES['v3-min-reader-3.bin']().equals(v3)).toBe(true);
  });

  it('is refused with ERR_STATE_VERSION naming both versions', () => {
    expect(stateError(() => decodeSessions(v3, T))).toMatchObject({
      code: ERR_STATE_VERSION,
      message: 'state written by format version 3 needs a reader of version 3 or newer; this reader is version 1',
    });
  });

  it('is refused as soon as the header arrives, before any record is looked at', () => {
    const [[, headerEnd]] = ranges(v3);
    const decoder = new StateDecoder({ now: T });
    decoder.push(v3.subarray(0, headerEnd! - 1));
    expect(stateError(() => decoder.push(v3.subarray(headerEnd! - 1, headerEnd))).code).toBe(ERR_STATE_VERSION);
  });
});

describe('N reads N-1 (the rule, for readers of any version)', () => {
  it('a version 2 reader reads the version 1 fixture', () => {
    const decoder = new StateDecoder({ now: T, readerVersion: 2 });
    decoder.push(fixture('v1.bin'));
    expect(decoder.finish().sessions).toEqual(fixtureSessions());
  });

  it('a version 3 reader reads a version 3 header the version 1 reader refuses', () => {
    const [[, headerEnd]] = ranges(fixture('v3-min-reader-3.bin'));
    const decoder = new StateDecoder({ now: T, readerVersion: 3 });
    decoder.push(fixture('v3-min-reader-3.bin').subarray(0, headerEnd));
    expect(decoder.header).toMatchObject({ version: 3, minReaderVersion: 3 });
  });

  // [written by version, its minReaderVersion, reader version, readable]
  const table: [number, number, number, boolean][] = [
    [1, 1, 1, true],
    [2, 1, 1, true], // N-1 reads N
    [1, 1, 2, true], // N reads N-1
    [3, 2, 2, true], // N reads N+1 when N+1 stays compatible
    [3, 3, 2, false], // N+1 dropped compatibility with N
    [5, 4, 3, false],
    [7, 1, 2, true], // newer version number alone is never a reason to refuse
  ];
  for (const [version, min, reader, readable] of table) {
    it(`version ${version} (minReaderVersion ${min}) ${readable ? 'is' : 'is not'} readable by ${reader}`, () => {
      const check = () => checkReaderVersion(version, min, reader);
      if (readable) expect(check).not.toThrow();
      else expect(stateError(check).code).toBe(ERR_STATE_VERSION);
    });
  }

  it('a reader refuses streams older than its oldest readable version', () => {
    expect(stateError(() => checkReaderVersion(1, 1, 4, 3))).toMatchObject({
      code: ERR_STATE_VERSION,
      message: 'state written by format version 1 is older than this reader (version 4) supports; it reads versions 3 and newer',
    });
  });

  it('this release writes minReaderVersion and reads back as far as the rule asks', () => {
    expect(MIN_READER_VERSION).toBeLessThanOrEqual(Math.max(1, FORMAT_VERSION - 1));
    expect(OLDEST_READABLE_VERSION).toBeLessThanOrEqual(Math.max(1, FORMAT_VERSION - 1));
  });

  it('a header whose minReaderVersion exceeds its own version is invalid', () => {
    const bad = rawStream(v1Header(0, { version: 1, minReaderVersion: 2 }), []);
    const decoder = new StateDecoder({ now: T, readerVersion: 2 });
    expect(stateError(() => decoder.push(bad))).toMatchObject({
      code: ERR_STATE_FIELD,
      message: 'header.minReaderVersion must be at most header.version (1), got 2',
    });
  });
});

function ranges(buf: Buffer): [number, number][] {
  const out: [number, number][] = [];
  new Unpackr({ useRecords: false }).unpackMultiple(buf, (_v, start, end) => {
    out.push([start!, end!]);
  });
  return out;
}
