/**
 * Encoder and decoder of the session state stream (format and compatibility rule: state-format.ts).
 *
 * Encoding yields chunks of about 64 KiB, so exporting 100,000 sessions never builds one giant buffer.
 * Decoding accepts chunks split anywhere. It does not trust msgpackr to tell "incomplete" from "malformed" at a
 * chunk boundary: a scanner (msgpack-scanner.ts) finds where each MessagePack value ends, and only complete values
 * are handed to msgpackr. The scanner also enforces the per-value size limit and refuses ext types before anything is
 * decoded.
 *
 * Restoring is all-or-nothing: sessions are only handed out by `finish()`, after the trailer's count and SHA-256
 * matched. A failed decoder stays failed.
 */
import { createHash, type Hash } from 'node:crypto';
import { Packr, Unpackr } from 'msgpackr';
import { MessagePackScanner } from './msgpack-scanner.ts';
import {
  ERR_STATE_CHECKSUM,
  ERR_STATE_FIELD,
  ERR_STATE_FORMAT,
  ERR_STATE_TRUNCATED,
  ERR_STATE_USAGE,
  StateFormatError,
} from './state-errors.ts';
import {
  FORMAT_VERSION,
  LIMITS,
  makeHeader,
  sessionToWire,
  validateHeader,
  validateTrailer,
  validateWireRecord,
  wireToSession,
  type SessionState,
  type StateHeader,
  type StateHeaderInput,
  type WireHeader,
  type WireRecord,
} from './state-format.ts';

export interface DecodedState {
  header: StateHeader;
  sessions: SessionState[];
}

export interface EncodeOptions {
  /** Chunks are emitted once they reach this size (the last one may be smaller). Default 64 KiB. */
  chunkBytes?: number;
}

export interface DecodeOptions {
  /** Local epoch ms that the records' ages count back from. */
  now: number;
  /** Reader version to act as; only tests of the compatibility rule set it. Default FORMAT_VERSION. */
  readerVersion?: number;
  /**
   * Receives each record as soon as it is validated, instead of the decoder keeping them all; then
   * `finish()` returns no sessions. The caller must stage what it receives and use it only after
   * `finish()` succeeded (all or nothing). Saves holding a second copy of 100,000 sessions.
   */
  onSession?: (session: SessionState, index: number) => void;
  /**
   * Receives the header as soon as it is accepted, before any record is decoded: a reader that cannot take
   * `header.count` sessions throws here, and the stream is refused without decoding a record.
   */
  onHeader?: (header: StateHeader) => void;
}

const DEFAULT_CHUNK_BYTES = 64 * 1024;
const MAX_NESTING = 32;
/** Above this many pending bytes an incomplete value is rescanned only after its size doubled. */
const RESCAN_DOUBLING_BYTES = 4096;

// Plain MessagePack, readable by any MessagePack tool: no record extension, fixmap headers for small maps.
const packr = new Packr({ useRecords: false, variableMapSize: true });

const UNPACK_OPTIONS = { useRecords: false, mapsAsObjects: true, int64AsType: 'number' } as const;

// msgpackr writes integers that do not fit 32 bits as float64; as bigint they go out as int64, which every
// MessagePack implementation reads back as an integer.
function int64(n: number): number {
  return n > 0xffffffff ? (BigInt(n) as unknown as number) : n;
}

function packRecord(wire: WireRecord): Buffer {
  wire.d.os = int64(wire.d.os);
  wire.w.t = int64(wire.w.t);
  wire.a = int64(wire.a);
  wire.i = int64(wire.i);
  return packr.pack(wire);
}

function usage(message: string): StateFormatError {
  return new StateFormatError(ERR_STATE_USAGE, message);
}

/**
 * Encodes a header, the sessions and the trailer as a sequence of Buffers. The header and options are checked
 * when this is called, so a bad header throws before anything is sent. Sessions are read lazily as the consumer
 * pulls chunks: the relay must have stopped changing them. A session that fails validation throws from the
 * iterator with the record index and field, after earlier chunks were already yielded; a receiver of the partial
 * stream then fails with ERR_STATE_TRUNCATED, never with a partial restore.
 *
 * Use it with `Readable.from(encodeSessionChunks(...))` to stream to an HTTP response.
 */
export function encodeSessionChunks(
  header: StateHeaderInput,
  sessions: Iterable<SessionState>,
  options: EncodeOptions = {},
): Generator<Buffer, void, undefined> {
  const chunkBytes = options?.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) {
    throw usage(`options.chunkBytes must be a positive integer, got ${String(chunkBytes)}`);
  }
  const isArray = Array.isArray(sessions);
  const count = header?.count ?? (isArray ? sessions.length : undefined);
  if (count === undefined) {
    throw usage('header.count is required when sessions is an iterable rather than an array');
  }
  if (isArray && count !== sessions.length) {
    throw new StateFormatError(ERR_STATE_FIELD, `header.count is ${count} but ${sessions.length} sessions were given`, {
      field: 'header.count',
    });
  }
  return encodeChunks(makeHeader(header, count), sessions, chunkBytes);
}

function* encodeChunks(
  wireHeader: WireHeader,
  sessions: Iterable<SessionState>,
  chunkBytes: number,
): Generator<Buffer, void, undefined> {
  const { count, createdAt } = wireHeader;
  const hash = createHash('sha256');
  // Packed values are copied into our own chunk right away: msgpackr packs into one buffer shared by the whole
  // process, and other code runs between our packs (the sessions iterator, the consumer of each chunk).
  let chunk = Buffer.alloc(chunkBytes);
  let size = 0;
  /** Appends a packed value; returns the previous chunk (hashed) when the value did not fit in it. */
  const add = (packed: Buffer): Buffer | undefined => {
    let full: Buffer | undefined;
    if (size + packed.length > chunk.length) {
      if (size > 0) {
        full = chunk.subarray(0, size);
        hash.update(full);
      }
      chunk = Buffer.alloc(Math.max(chunkBytes, packed.length));
      size = 0;
    }
    packed.copy(chunk, size);
    size += packed.length;
    return full;
  };

  const removed = wireHeader.removed?.map((peer) => ({ a: peer.address, p: peer.port }));
  add(packr.pack({ ...wireHeader, createdAt: int64(createdAt), ...(removed === undefined ? {} : { removed }) }));
  let index = 0;
  for (const session of sessions) {
    if (index === count) {
      throw new StateFormatError(ERR_STATE_FIELD, `header.count is ${count} but sessions yielded more`, {
        field: 'header.count',
      });
    }
    const record = packRecord(sessionToWire(session, createdAt, index));
    if (record.length > LIMITS.maxValueBytes) {
      // Cannot happen with version 1 fields; guards future additions against writing what readers refuse.
      throw new StateFormatError(
        ERR_STATE_FIELD,
        `record ${index}: encodes to ${record.length} bytes, the limit is ${LIMITS.maxValueBytes}`,
        { record: index },
      );
    }
    index++;
    const full = add(record);
    if (full !== undefined) yield full;
  }
  if (index !== count) {
    throw new StateFormatError(ERR_STATE_FIELD, `header.count is ${count} but sessions yielded ${index}`, {
      field: 'header.count',
    });
  }
  // Full chunks were hashed as they were closed; the rest of what precedes the trailer is in `chunk`.
  hash.update(chunk.subarray(0, size));
  const sha256 = hash.digest();
  // Not through add(): the hash is final, and the trailer must not be hashed.
  const trailer = Buffer.from(packr.pack({ count, sha256 })); // a copy: we may yield before using it
  if (size + trailer.length > chunk.length) {
    yield chunk.subarray(0, size);
    chunk = Buffer.alloc(trailer.length);
    size = 0;
  }
  trailer.copy(chunk, size);
  yield chunk.subarray(0, size + trailer.length);
}

/** Whole stream in one Buffer: fixtures, tests, small states. */
export function encodeSessions(header: StateHeaderInput, sessions: Iterable<SessionState>): Buffer {
  return Buffer.concat([...encodeSessionChunks(header, sessions)]);
}

/**
 * Incremental decoder. `push()` chunks as they arrive (any boundaries), then `finish()`; only `finish()` returns
 * sessions, and only if the stream was complete and intact. Errors are thrown as early as they can be detected
 * (a version refusal as soon as the header is in) and every later call rethrows the first error.
 */
export class StateDecoder {
  readonly #now: number;
  readonly #readerVersion: number;
  readonly #unpackr = new Unpackr(UNPACK_OPTIONS);
  readonly #hash: Hash = createHash('sha256');
  readonly #sessions: SessionState[] = [];
  readonly #onSession: ((session: SessionState, index: number) => void) | undefined;
  readonly #onHeader: ((header: StateHeader) => void) | undefined;
  #count = 0;
  readonly #scanner = new MessagePackScanner({ maxValueBytes: LIMITS.maxValueBytes, maxNesting: MAX_NESTING });
  /** Bytes of an incomplete value, waiting for more. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Pending bytes needed before a new scan can make progress (known from a length prefix). */
  #needBytes = 0;
  /** Stream offset of the first pending byte. */
  #offset = 0;
  #header: StateHeader | undefined;
  #trailerSeen = false;
  #error: unknown;
  #done = false;

  constructor(options: DecodeOptions) {
    const now = options?.now;
    if (typeof now !== 'number' || !Number.isFinite(now)) {
      throw usage(`options.now must be epoch milliseconds, got ${typeof now}`);
    }
    this.#now = now;
    this.#readerVersion = options.readerVersion ?? FORMAT_VERSION;
    this.#onSession = options.onSession;
    this.#onHeader = options.onHeader;
  }

  /** The header, once it has been read and accepted. */
  get header(): StateHeader | undefined {
    return this.#header;
  }

  /** Records read and validated so far. */
  get recordsRead(): number {
    return this.#count;
  }

  /**
   * Bytes of an incomplete value held until more arrive. Always less than twice LIMITS.maxValueBytes: a value
   * that would be larger is refused as soon as its length prefix, or the scan of what arrived, shows it.
   */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  push(chunk: Uint8Array): void {
    this.#checkUsable();
    if (!(chunk instanceof Uint8Array)) throw usage(`push() takes a Buffer or Uint8Array, got ${typeof chunk}`);
    if (chunk.length === 0) return;
    try {
      this.#push(chunk);
    } catch (error) {
      this.#error = error;
      throw error;
    }
  }

  /** Verifies that the stream ended right after a matching trailer and returns everything it held. */
  finish(): DecodedState {
    this.#checkUsable();
    this.#done = true;
    if (this.#pendingBytes > 0) {
      // The pending bytes may hold complete values whose scan push() postponed (see #process).
      try {
        this.#process(Buffer.concat(this.#pending, this.#pendingBytes));
      } catch (error) {
        this.#error = error;
        throw error;
      }
    }
    const header = this.#header;
    let error: StateFormatError | undefined;
    if (header === undefined) {
      error = truncated(`stream ended before its header was complete (${this.#pendingBytes} bytes)`, 0);
    } else if (this.#pendingBytes > 0) {
      const where = this.#count < header.count ? `record ${this.#count}` : 'the trailer';
      error = truncated(`stream ended inside ${where} (${this.#pendingBytes} bytes of it received)`, this.#offset);
    } else if (this.#count < header.count) {
      error = truncated(`stream ended after ${this.#count} of ${header.count} records`, this.#offset);
    } else if (!this.#trailerSeen) {
      error = truncated(`stream ended after all ${header.count} records but before the trailer`, this.#offset);
    }
    if (error) {
      this.#error = error;
      throw error;
    }
    return { header: header!, sessions: this.#sessions };
  }

  #checkUsable(): void {
    if (this.#error !== undefined) throw this.#error;
    if (this.#done) throw usage('the decoder has finished; create a new one for another stream');
  }

  #push(input: Uint8Array): void {
    // A Buffer view of our own: msgpackr caches a DataView on the object it reads, and the caller's stays clean.
    const chunk = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const total = this.#pendingBytes + chunk.length;
    if (total < this.#needBytes) {
      // Not enough new bytes to get further: keep a private copy and do not rescan yet.
      this.#pending.push(Buffer.from(chunk));
      this.#pendingBytes = total;
      return;
    }
    this.#process(this.#pendingBytes > 0 ? Buffer.concat([...this.#pending, chunk], total) : chunk);
  }

  /** Reads every complete value in `buf` (pending bytes first); keeps a copy of an incomplete tail. */
  #process(buf: Buffer): void {
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#needBytes = 0;
    let pos = 0;
    let hashFrom = 0;
    while (pos < buf.length) {
      if (this.#trailerSeen) {
        throw new StateFormatError(ERR_STATE_FORMAT, `unexpected data after the trailer at byte ${this.#offset + pos}`, {
          offset: this.#offset + pos,
        });
      }
      const end = this.#scanner.valueEnd(buf, pos, this.#offset);
      if (end < 0) {
        // Wait for what the length prefix says is missing. A long tail must also double first: a value of many
        // small items arriving in tiny chunks is then rescanned a logarithmic number of times, not once per
        // chunk. Short tails (records, headers) are rescanned at once so that errors surface without delay.
        // finish() scans whatever is left.
        const tail = buf.length - pos;
        this.#needBytes = tail > RESCAN_DOUBLING_BYTES ? Math.max(-end - pos, 2 * tail) : -end - pos;
        break;
      }
      const value = this.#unpack(buf, pos, end);
      if (this.#header === undefined) {
        this.#header = validateHeader(value, this.#readerVersion);
        this.#onHeader?.(this.#header);
      } else if (this.#count < this.#header.count) {
        this.#record(value, this.#offset + pos);
      } else {
        this.#hash.update(buf.subarray(hashFrom, pos));
        hashFrom = end;
        this.#trailer(value, this.#offset + pos);
      }
      pos = end;
    }
    if (!this.#trailerSeen) this.#hash.update(buf.subarray(hashFrom, pos));
    if (pos < buf.length) {
      // Copy: the tail is at most one value, and the caller's chunk may be reused once push() returns.
      this.#pending.push(Buffer.from(buf.subarray(pos)));
      this.#pendingBytes = buf.length - pos;
    }
    this.#offset += pos;
  }

  #record(value: unknown, offset: number): void {
    const index = this.#count;
    try {
      validateWireRecord(value, index);
    } catch (error) {
      if (looksLikeTrailer(value)) {
        throw new StateFormatError(
          ERR_STATE_FORMAT,
          `found the trailer after ${index} records, but the header announced ${this.#header!.count}`,
          { offset },
        );
      }
      throw error;
    }
    const session = wireToSession(value, this.#now);
    if (this.#onSession !== undefined) this.#onSession(session, this.#count);
    else this.#sessions.push(session);
    this.#count++;
  }

  #trailer(value: unknown, offset: number): void {
    const header = this.#header!;
    if (isRecordLike(value)) {
      throw new StateFormatError(
        ERR_STATE_FORMAT,
        `expected the trailer after the ${header.count} records the header announced, got another record at byte ${offset}`,
        { offset },
      );
    }
    const trailer = validateTrailer(value);
    this.#trailerSeen = true;
    if (trailer.count !== header.count) {
      throw new StateFormatError(
        ERR_STATE_CHECKSUM,
        `trailer.count is ${trailer.count} but the header announced ${header.count} records and ${this.#count} were read`,
        { field: 'trailer.count', offset },
      );
    }
    const digest = this.#hash.digest();
    if (!digest.equals(trailer.sha256)) {
      throw new StateFormatError(
        ERR_STATE_CHECKSUM,
        'trailer.sha256 does not match the header and records received: the stream was altered',
        { field: 'trailer.sha256', offset },
      );
    }
  }

  #unpack(buf: Buffer, start: number, end: number): unknown {
    try {
      return this.#unpackr.unpack(buf, { start, end });
    } catch (error) {
      // msgpackr's message may quote decoded data, which can be key material: report its class only.
      throw new StateFormatError(
        ERR_STATE_FORMAT,
        `MessagePack value at byte ${this.#offset + start} could not be decoded (${(error as Error)?.name ?? 'error'})`,
        { offset: this.#offset + start },
      );
    }
  }
}

function truncated(message: string, offset: number): StateFormatError {
  return new StateFormatError(ERR_STATE_TRUNCATED, message, { offset });
}

function looksLikeTrailer(value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'sha256' in value && !('p' in value);
}

function isRecordLike(value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'p' in value && 'd' in value;
}

/** Decodes a complete stream held in memory. */
export function decodeSessions(buf: Uint8Array, now: number): DecodedState {
  const decoder = new StateDecoder({ now });
  decoder.push(buf);
  return decoder.finish();
}

/**
 * Decodes a stream delivered in chunks, e.g. an HTTP response body. If a chunk fails, the source iterator is
 * closed (for await does that), which aborts the download.
 */
export async function decodeSessionStream(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  now: number,
): Promise<DecodedState> {
  const decoder = new StateDecoder({ now });
  for await (const chunk of source) decoder.push(chunk);
  return decoder.finish();
}
