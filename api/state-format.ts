/**
 * Session state format "relayctl.dtls-sessions": what an old relay streams to its successor during a blue/green
 * upgrade so that established DTLS 1.2 sessions survive without a new handshake. Both ends import this module;
 * framing, hashing and chunking live in `state-codec.ts`. Longer description: docs/state-format.md.
 *
 * Wire layout: a sequence of plain MessagePack values (no msgpackr record extension, no ext types at all):
 *   header  {format, version, minReaderVersion, source, createdAt, count}
 *   count x record (short keys, see WireRecord)
 *   trailer {count, sha256}   sha256 over every byte before the trailer (header and records)
 *
 * Compatibility rule (a release with format version N can roll forward to N+1 and back to N-1 with its sessions):
 * 1. Frozen for all versions: the framing above, the header keys format/version/minReaderVersion, and the
 *    trailer's meaning. Everything else may evolve under the rules below.
 * 2. A writer of version N writes `version: N` and `minReaderVersion`: the oldest reader version that restores its
 *    output correctly. That is N-1 as long as the changes since N-1 follow rule 4, so N-1 reads N.
 * 3. A reader of version R refuses a stream only when minReaderVersion > R, or when version < its
 *    OLDEST_READABLE_VERSION (at least R-1, so N reads N-1); the ERR_STATE_VERSION message names both versions.
 *    Otherwise it reads the stream and ignores every key it does not know, in the header, in records, in nested
 *    maps and in the trailer. It never refuses data just because `version` is newer (Californium does; we do not).
 * 4. "Optional" means safe to ignore. A field added in version N may be written with minReaderVersion N-1 only if
 *    a reader that drops it still restores a correct and secure session: all fields known to N-1 are still written
 *    with their old meaning, type and domain, and readers >= N give the new field a default for when it is absent
 *    (streams from N-1, and streams that went N -> N-1 -> N, which loses it).
 * 5. Anything else is must-understand: a field whose absence changes the meaning of others, widening a known
 *    field's domain (old readers validate it and would refuse the whole stream), removing or retyping a field.
 *    Ship it in two releases: N learns to read it while still writing minReaderVersion N-1 without it; N+1 writes
 *    it with minReaderVersion N. Rolling back N+1 -> N then still works.
 * 6. Values are nil, bool, int, float, str, bin, array or map with string keys; readers reject ext types anywhere,
 *    even inside unknown fields. Integers above 2^32 are written as int64 (msgpackr would otherwise use float64).
 *
 * Times: records carry ages (ms before the header's createdAt, on the writer's clock), not timestamps, because
 * the clocks of two pods differ. The reader turns them back into local times relative to a `now` it is given.
 *
 * Secrets: `dtls.master` is the DTLS master secret. Nothing here logs or prints it; error messages describe
 * binary fields by length only. Use `describeSession()` to log a session; decoded `dtls` objects also redact the
 * master in JSON.stringify and util.inspect (see protectDtls).
 */
import { isIP } from 'node:net';
import { inspect } from 'node:util';
import { deviceId } from './device-identity.ts';
import { MAX_SEQUENCE_NUMBER } from './dtls/constants.ts';
import {
  ERR_STATE_FIELD,
  ERR_STATE_FORMAT,
  ERR_STATE_VERSION,
  StateFormatError,
} from './state-errors.ts';

export const FORMAT_NAME = 'relayctl.dtls-sessions';
/** The version this module writes. */
export const FORMAT_VERSION = 1;
/** What this writer puts in `minReaderVersion`. Version 1 has no predecessor; version 2 will normally write 1. */
export const MIN_READER_VERSION = 1;
/** Streams with an older `version` are refused. Keep it at FORMAT_VERSION - 1 or lower. */
export const OLDEST_READABLE_VERSION = 1;

export const MAX_UINT16 = 0xffff;
/** The domain of outSeq and replay.top: DTLS sequence numbers. */
export const MAX_UINT48 = MAX_SEQUENCE_NUMBER;

export const LIMITS = {
  /** No single MessagePack value (header, record, trailer) may be larger: bounds buffering and parse work. */
  maxValueBytes: 64 * 1024,
  /** Sanity bound on header.count; a relay holds far fewer sessions. */
  maxSessionCount: 2 ** 24,
  deviceKeyBytes: { min: 26, max: 512 },
  randomsBytes: 64,
  sessionIdBytes: { min: 0, max: 32 },
  masterBytes: 48,
  replayWindowBytes: 8,
  /** Longest IPv6 text (45) plus a zone id. */
  addressChars: 64,
  identityChars: { min: 1, max: 256 },
  /** Kubernetes pod names are DNS subdomains. */
  sourceChars: { min: 1, max: 253 },
  maxVersion: 0x7fffffff,
} as const;

// ---------------------------------------------------------------------------------------------------------------
// In-memory types

export interface PeerAddress {
  /** IPv4 or IPv6 text form, as node:dgram reports it. */
  address: string;
  port: number;
}

/** The node-mbed-dtls SessionWrap fields, with `out_ctr` split into epoch and sequence. */
export interface DtlsSessionState {
  /** IANA cipher suite number, e.g. 0xC0AE for TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8. */
  cipherSuite: number;
  /** client_random | server_random, 64 bytes. */
  randoms: Buffer;
  /** 0..32 bytes. */
  sessionId: Buffer;
  /** The master secret, 48 bytes. Never log it. */
  master: Buffer;
  inEpoch: number;
  outEpoch: number;
  /** Next outbound 48-bit sequence number. The importer, not the codec, adds the safety margin. */
  outSeq: number;
}

/** Inbound anti-replay state (RFC 6347 4.1.2.6), which node-mbed-dtls does not restore by itself. */
export interface ReplayState {
  epoch: number;
  /** Highest authenticated sequence number in `epoch`, or -1 when none was received yet. */
  top: number;
  /**
   * 8 bytes, a big-endian uint64: bit i (bit 0 = least significant bit of the last byte) is set when sequence
   * number top - i was received. Bit 0 is therefore set whenever top >= 0, and all bits are clear when top is -1.
   */
  window: Buffer;
}

export interface SessionState {
  peer: PeerAddress;
  /** SubjectPublicKeyInfo DER of the device's raw public key (RFC 7250); 91 bytes for P-256. */
  deviceKey: Buffer;
  dtls: DtlsSessionState;
  replay: ReplayState;
  /** Local epoch ms. On the wire as an age. */
  createdAt: number;
  /** Local epoch ms. On the wire as an idle time. */
  lastSeenAt: number;
  upstream: { identity: string | null };
}

export interface StateHeader {
  format: typeof FORMAT_NAME;
  /** Format version of the writer. */
  version: number;
  /** Oldest reader version that may read this stream. */
  minReaderVersion: number;
  /** Who wrote it: the pod name of the old relay. */
  source: string;
  /** Epoch ms on the writer's clock when the state was taken; records' ages count back from it. */
  createdAt: number;
  /** Number of session records that follow. */
  count: number;
  /**
   * Delta streams only: the id of the pre-copy this stream completes. The records replace or add to
   * the pre-copy's; `removed` lists sessions the pre-copy had that are gone. Sent only to a reader
   * that asked for a delta by naming that pre-copy, so a reader that never asks never sees one.
   */
  base?: string;
  removed?: PeerAddress[];
}

/** What the caller supplies when encoding; format and versions are filled in by the encoder. */
export interface StateHeaderInput {
  source: string;
  createdAt: number;
  /** Required when the sessions are given as an iterable rather than an array. */
  count?: number;
  base?: string;
  removed?: PeerAddress[];
}

export interface StateTrailer {
  count: number;
  sha256: Uint8Array;
}

// ---------------------------------------------------------------------------------------------------------------
// Wire types. Records use one- and two-letter keys: they are about a quarter of each record's size otherwise.
// Header and trailer keep full names; they are written once and must be recognisable by anyone with a MessagePack
// dump tool.

export interface WireRecord {
  /** peer: a = address, p = port */
  p: { a: string; p: number };
  /** deviceKey */
  k: Uint8Array;
  /** dtls: c = cipherSuite, r = randoms, s = sessionId, m = master, ie = inEpoch, oe = outEpoch, os = outSeq */
  d: { c: number; r: Uint8Array; s: Uint8Array; m: Uint8Array; ie: number; oe: number; os: number };
  /** replay: e = epoch, t = top, b = window bitmap */
  w: { e: number; t: number; b: Uint8Array };
  /** ageMs: header.createdAt - createdAt */
  a: number;
  /** idleMs: header.createdAt - lastSeenAt; never more than ageMs */
  i: number;
  /** upstream: i = identity */
  u: { i: string | null };
}

export type WireHeader = StateHeader;
export type WireTrailer = StateTrailer;

// ---------------------------------------------------------------------------------------------------------------
// Validation. Hand-written rather than table-driven: it runs once per session on both ends and must stay cheap.
// Messages are only built on failure.

/** A record index, the top-level value a field belongs to, or null for a free-standing value. */
type Where = number | 'header' | 'trailer' | null;

function fieldError(where: Where, field: string, expected: string, got: string): StateFormatError {
  const prefix = typeof where === 'number' ? `record ${where}: ` : '';
  const path = typeof where === 'string' ? `${where}.${field}` : field;
  return new StateFormatError(ERR_STATE_FIELD, `${prefix}${path} must be ${expected}, got ${got}`, {
    record: typeof where === 'number' ? where : undefined,
    field: path,
  });
}

/**
 * Describes a value for an error message. Binary values are described by length only, whatever the field;
 * strings and numbers of secret fields by type only.
 */
export function describeValue(value: unknown, secret = false): string {
  if (value === undefined) return 'nothing (missing)';
  if (value === null) return 'nil';
  if (value instanceof Uint8Array) return `binary of ${value.length} bytes`;
  switch (typeof value) {
    case 'number':
      return secret ? 'a number' : String(value);
    case 'bigint':
      return secret ? 'an integer' : `${value}`;
    case 'boolean':
      return secret ? 'a boolean' : String(value);
    case 'string':
      return secret || value.length > 40 ? `a string of ${value.length} chars` : JSON.stringify(value);
    case 'object':
      return Array.isArray(value) ? `an array of ${value.length}` : 'a map';
    default:
      return typeof value;
  }
}

function isMap(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Uint8Array) &&
    !(value instanceof Map)
  );
}

function map(value: unknown, where: Where, field: string): Record<string, unknown> {
  if (!isMap(value)) throw fieldError(where, field, 'a map', describeValue(value));
  return value;
}

function int(value: unknown, min: number, max: number, where: Where, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw fieldError(where, field, `an integer ${min}..${max}`, describeValue(value));
  }
  return value;
}

function bytes(value: unknown, min: number, max: number, where: Where, field: string, secret = false): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    const size = min === max ? `${min} bytes` : `${min}..${max} bytes`;
    throw fieldError(where, field, `binary of ${size}`, describeValue(value, secret));
  }
  if (value.length < min || value.length > max) {
    throw fieldError(where, field, min === max ? `${min} bytes` : `${min}..${max} bytes`, String(value.length));
  }
  return value;
}

function str(value: unknown, min: number, max: number, where: Where, field: string): string {
  if (typeof value !== 'string' || value.length < min || value.length > max) {
    throw fieldError(where, field, `a string of ${min}..${max} chars`, describeValue(value));
  }
  return value;
}

/**
 * Checks one decoded (or about to be encoded) record. Unknown keys at any level are ignored (compatibility rule 3).
 * Field names in errors are the in-memory paths (`dtls.master`), not the wire keys (`d.m`).
 */
export function validateWireRecord(value: unknown, index: number): asserts value is WireRecord {
  if (!isMap(value)) throw fieldError(index, 'session', 'a map', describeValue(value));
  const peer = map(value.p, index, 'peer');
  const address = peer.a;
  if (typeof address !== 'string' || address.length > LIMITS.addressChars || isIP(address) === 0) {
    throw fieldError(index, 'peer.address', 'an IPv4 or IPv6 address', describeValue(address));
  }
  int(peer.p, 1, MAX_UINT16, index, 'peer.port');
  bytes(value.k, LIMITS.deviceKeyBytes.min, LIMITS.deviceKeyBytes.max, index, 'deviceKey');

  const dtls = map(value.d, index, 'dtls');
  int(dtls.c, 1, MAX_UINT16, index, 'dtls.cipherSuite');
  bytes(dtls.r, LIMITS.randomsBytes, LIMITS.randomsBytes, index, 'dtls.randoms');
  bytes(dtls.s, LIMITS.sessionIdBytes.min, LIMITS.sessionIdBytes.max, index, 'dtls.sessionId');
  bytes(dtls.m, LIMITS.masterBytes, LIMITS.masterBytes, index, 'dtls.master', true);
  int(dtls.ie, 0, MAX_UINT16, index, 'dtls.inEpoch');
  int(dtls.oe, 0, MAX_UINT16, index, 'dtls.outEpoch');
  int(dtls.os, 0, MAX_UINT48, index, 'dtls.outSeq');

  const replay = map(value.w, index, 'replay');
  int(replay.e, 0, MAX_UINT16, index, 'replay.epoch');
  const top = int(replay.t, -1, MAX_UINT48, index, 'replay.top');
  const window = bytes(replay.b, LIMITS.replayWindowBytes, LIMITS.replayWindowBytes, index, 'replay.window');
  checkReplayWindow(top, window, index);

  const age = int(value.a, 0, Number.MAX_SAFE_INTEGER, index, 'ageMs');
  int(value.i, 0, age, index, 'idleMs');

  const upstream = map(value.u, index, 'upstream');
  const identity = upstream.i;
  if (identity !== null) {
    if (
      typeof identity !== 'string' ||
      identity.length < LIMITS.identityChars.min ||
      identity.length > LIMITS.identityChars.max
    ) {
      throw fieldError(
        index,
        'upstream.identity',
        `nil or a string of ${LIMITS.identityChars.min}..${LIMITS.identityChars.max} chars`,
        describeValue(identity),
      );
    }
  }
}

/** The window must describe what `top` says: nothing seen when top is -1, top itself seen otherwise. */
function checkReplayWindow(top: number, window: Uint8Array, index: number): void {
  if (top === -1) {
    for (let i = 0; i < 8; i++) {
      if (window[i] !== 0) {
        throw fieldError(index, 'replay.window', 'all zero when replay.top is -1', 'bits set');
      }
    }
    return;
  }
  if ((window[7]! & 1) === 0) {
    throw fieldError(index, 'replay.window', 'a bitmap with bit 0 (replay.top itself) set', 'bit 0 clear');
  }
  // Bits for sequence numbers below 0 cannot have been seen.
  if (top < 63) {
    for (let bit = top + 1; bit < 64; bit++) {
      if ((window[7 - (bit >> 3)]! & (1 << (bit & 7))) !== 0) {
        throw fieldError(index, 'replay.window', `clear above bit ${top} (replay.top is ${top})`, `bit ${bit} set`);
      }
    }
  }
}

/**
 * Compatibility rule 3: may a reader of `readerVersion` read a stream written by `version` that asks for
 * readers of at least `minReaderVersion`?
 */
export function checkReaderVersion(
  version: number,
  minReaderVersion: number,
  readerVersion: number = FORMAT_VERSION,
  oldestReadable: number = OLDEST_READABLE_VERSION,
): void {
  if (minReaderVersion > readerVersion) {
    throw new StateFormatError(
      ERR_STATE_VERSION,
      `state written by format version ${version} needs a reader of version ${minReaderVersion} or newer; ` +
        `this reader is version ${readerVersion}`,
      { field: 'header.minReaderVersion' },
    );
  }
  if (version < oldestReadable) {
    throw new StateFormatError(
      ERR_STATE_VERSION,
      `state written by format version ${version} is older than this reader (version ${readerVersion}) ` +
        `supports; it reads versions ${oldestReadable} and newer`,
      { field: 'header.version' },
    );
  }
}

/**
 * Checks the header and returns only the fields this version knows. Order matters: the format name first, then
 * the version (so a future header with changed fields is refused for its version, not for a field), then the rest.
 */
export function validateHeader(value: unknown, readerVersion: number = FORMAT_VERSION): StateHeader {
  if (!isMap(value) || value.format !== FORMAT_NAME) {
    const got = isMap(value) ? `header.format ${describeValue(value.format)}` : describeValue(value);
    throw new StateFormatError(
      ERR_STATE_FORMAT,
      `not a ${FORMAT_NAME} stream: expected a header map with format "${FORMAT_NAME}", got ${got}`,
      { field: 'header.format' },
    );
  }
  const version = int(value.version, 1, LIMITS.maxVersion, 'header', 'version');
  const minReaderVersion = int(value.minReaderVersion, 1, LIMITS.maxVersion, 'header', 'minReaderVersion');
  checkReaderVersion(version, minReaderVersion, readerVersion);
  if (minReaderVersion > version) {
    throw fieldError('header', 'minReaderVersion', `at most header.version (${version})`, String(minReaderVersion));
  }
  return {
    format: FORMAT_NAME,
    version,
    minReaderVersion,
    source: str(value.source, LIMITS.sourceChars.min, LIMITS.sourceChars.max, 'header', 'source'),
    createdAt: int(value.createdAt, 0, Number.MAX_SAFE_INTEGER, 'header', 'createdAt'),
    count: int(value.count, 0, LIMITS.maxSessionCount, 'header', 'count'),
    ...deltaFields(value),
  };
}

function deltaFields(value: Record<string, unknown>): Pick<StateHeader, 'base' | 'removed'> {
  if (value.base === undefined) return {};
  const base = str(value.base, 1, 128, 'header', 'base');
  if (!Array.isArray(value.removed)) throw fieldError('header', 'removed', 'an array of peer addresses in a delta stream', describeValue(value.removed));
  if (value.removed.length > LIMITS.maxSessionCount) throw fieldError('header', 'removed', `at most ${LIMITS.maxSessionCount} entries`, String(value.removed.length));
  const removed = value.removed.map((entry: unknown, i: number) => {
    if (!isMap(entry)) throw fieldError('header', `removed[${i}]`, 'a map {a, p}', describeValue(entry));
    return {
      address: str(entry.a, 2, LIMITS.addressChars, 'header', `removed[${i}].a`),
      port: int(entry.p, 0, 65535, 'header', `removed[${i}].p`),
    };
  });
  return { base, removed };
}

export function validateTrailer(value: unknown): StateTrailer {
  if (!isMap(value)) throw fieldError('trailer', 'value', 'a map', describeValue(value));
  return {
    count: int(value.count, 0, LIMITS.maxSessionCount, 'trailer', 'count'),
    sha256: bytes(value.sha256, 32, 32, 'trailer', 'sha256'),
  };
}

/** Builds the header a writer of this version puts on the wire, validated like a reader would. */
export function makeHeader(input: StateHeaderInput, count: number): WireHeader {
  return validateHeader({
    format: FORMAT_NAME,
    version: FORMAT_VERSION,
    minReaderVersion: MIN_READER_VERSION,
    source: input?.source,
    createdAt: input?.createdAt,
    count,
    ...(input?.base === undefined ? {} : { base: input.base, removed: (input.removed ?? []).map((peer) => ({ a: peer.address, p: peer.port })) }),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Conversion between memory and wire

/**
 * Ages are clamped at 0 and idle time at the age: a wall-clock step between taking a session's times and writing
 * the header must not make the whole export fail.
 */
function ageAt(headerCreatedAt: number, time: unknown, index: number, field: string): number {
  if (typeof time !== 'number' || !Number.isFinite(time)) {
    throw fieldError(index, field, 'epoch milliseconds', describeValue(time));
  }
  const age = Math.round(headerCreatedAt - time);
  return age > 0 ? age : 0;
}

/**
 * Maps a session to its wire record and validates it with the reader's rules, so a bad session fails the export
 * (naming the field) instead of the import. Tolerates missing nested objects so that the error names the field.
 */
export function sessionToWire(session: SessionState, headerCreatedAt: number, index: number): WireRecord {
  if (!isMap(session)) throw fieldError(index, 'session', 'a map', describeValue(session));
  const peer = session.peer as Partial<PeerAddress> | undefined;
  const dtls = session.dtls as Partial<DtlsSessionState> | undefined;
  const replay = session.replay as Partial<ReplayState> | undefined;
  const upstream = session.upstream as { identity?: string | null } | undefined;
  const age = ageAt(headerCreatedAt, session.createdAt, index, 'createdAt');
  const idle = ageAt(headerCreatedAt, session.lastSeenAt, index, 'lastSeenAt');
  const wire = {
    p: { a: peer?.address, p: peer?.port },
    k: session.deviceKey,
    d: {
      c: dtls?.cipherSuite,
      r: dtls?.randoms,
      s: dtls?.sessionId,
      m: dtls?.master,
      ie: dtls?.inEpoch,
      oe: dtls?.outEpoch,
      os: dtls?.outSeq,
    },
    w: { e: replay?.epoch, t: replay?.top, b: replay?.window },
    a: age,
    i: idle < age ? idle : age,
    u: { i: upstream?.identity },
  };
  validateWireRecord(wire, index);
  return wire;
}

/**
 * Maps a validated wire record to a session with local times relative to `now`. Binary fields are copied out of
 * the stream's buffers, so the caller's chunks can be reused and the sessions do not keep them alive.
 */
export function wireToSession(wire: WireRecord, now: number): SessionState {
  const d = wire.d;
  return {
    peer: { address: wire.p.a, port: wire.p.p },
    deviceKey: Buffer.from(wire.k),
    dtls: protectDtls({
      cipherSuite: d.c,
      randoms: Buffer.from(d.r),
      sessionId: Buffer.from(d.s),
      master: Buffer.from(d.m),
      inEpoch: d.ie,
      outEpoch: d.oe,
      outSeq: d.os,
    }),
    replay: { epoch: wire.w.e, top: wire.w.t, window: Buffer.from(wire.w.b) },
    createdAt: now - wire.a,
    lastSeenAt: now - wire.i,
    upstream: { identity: wire.u.i },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Secrets and debugging

const REDACTED = '[redacted]';

function redactDtls(d: DtlsSessionState): Record<string, unknown> {
  return {
    cipherSuite: hex16(d.cipherSuite),
    sessionId: d.sessionId instanceof Uint8Array ? Buffer.from(d.sessionId).toString('hex') : describeValue(d.sessionId),
    master: REDACTED,
    inEpoch: d.inEpoch,
    outEpoch: d.outEpoch,
    outSeq: d.outSeq,
  };
}

/**
 * The dtls part of a session whose JSON and util.inspect forms leave out the master secret and randoms, so that a
 * stray `log.info({ session })` cannot leak keys. Field access is unchanged; node-mbed-dtls still gets Buffers.
 */
class ProtectedDtlsState implements DtlsSessionState {
  cipherSuite: number;
  randoms: Buffer;
  sessionId: Buffer;
  master: Buffer;
  inEpoch: number;
  outEpoch: number;
  outSeq: number;

  constructor(d: DtlsSessionState) {
    this.cipherSuite = d.cipherSuite;
    this.randoms = d.randoms;
    this.sessionId = d.sessionId;
    this.master = d.master;
    this.inEpoch = d.inEpoch;
    this.outEpoch = d.outEpoch;
    this.outSeq = d.outSeq;
  }

  toJSON(): Record<string, unknown> {
    return redactDtls(this);
  }

  [inspect.custom](): Record<string, unknown> {
    return redactDtls(this);
  }
}

/** Wraps DTLS fields so that serialising or inspecting them redacts the master secret. Decoded sessions use it. */
export function protectDtls(d: DtlsSessionState): DtlsSessionState {
  return d instanceof ProtectedDtlsState ? d : new ProtectedDtlsState(d);
}

function hex16(n: unknown): string {
  return typeof n === 'number' ? `0x${n.toString(16).padStart(4, '0')}` : describeValue(n);
}

/** A loggable view of a session: no master secret, no randoms; the device key as its device id. */
export function describeSession(session: SessionState): Record<string, unknown> {
  const { peer, replay } = session;
  const address = peer.address.includes(':') ? `[${peer.address}]` : peer.address;
  return {
    peer: `${address}:${peer.port}`,
    deviceId: session.deviceKey instanceof Uint8Array ? deviceId(session.deviceKey) : describeValue(session.deviceKey),
    dtls: redactDtls(session.dtls),
    replay: {
      epoch: replay.epoch,
      top: replay.top,
      window: replay.window instanceof Uint8Array ? Buffer.from(replay.window).toString('hex') : describeValue(replay.window),
    },
    createdAt: session.createdAt,
    lastSeenAt: session.lastSeenAt,
    upstream: { identity: session.upstream.identity },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// node-mbed-dtls `out_ctr`: 8 bytes, epoch (16 bit) | sequence number (48 bit), big-endian.

export function splitOutCtr(outCtr: Uint8Array): { epoch: number; seq: number } {
  if (!(outCtr instanceof Uint8Array) || outCtr.length !== 8) {
    throw fieldError(null, 'out_ctr', 'binary of 8 bytes', describeValue(outCtr));
  }
  const b = Buffer.from(outCtr.buffer, outCtr.byteOffset, 8);
  return { epoch: b.readUInt16BE(0), seq: b.readUIntBE(2, 6) };
}

export function joinOutCtr(epoch: number, seq: number): Buffer {
  int(epoch, 0, MAX_UINT16, null, 'epoch');
  int(seq, 0, MAX_UINT48, null, 'seq');
  const b = Buffer.alloc(8);
  b.writeUInt16BE(epoch, 0);
  b.writeUIntBE(seq, 2, 6);
  return b;
}
