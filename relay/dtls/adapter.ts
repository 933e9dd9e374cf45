/**
 * The only module that touches node-mbed-dtls. It drives the package's native binding directly
 * (not its stream wrapper) and makes it safe to expose to the internet:
 *
 * - datagrams over 837 bytes never reach the native receive path (heap overflow there);
 * - a datagram is split into records and each record is fed on its own (the native code handles
 *   coalesced records one datagram late);
 * - the crashing getters (`publicKey`, `session` before the handshake ends) are never called: the
 *   client key is read from the Certificate message on the wire, the session only once established;
 * - plaintext above 800 bytes is refused before it reaches `send` (it kills the socket);
 * - `resumeSession` only ever gets a SessionWrap of Buffers of the exact sizes (the native setters
 *   cast and memcpy whatever they are given);
 * - the cookie exchange stays stateless: the native socket that answered a first ClientHello with a
 *   HelloVerifyRequest is freed at once, so spoofed hellos cost no memory;
 * - the inbound replay window is enforced here, before mbedtls, and advanced only after a record
 *   authenticated, because a restored native session starts with an empty window;
 * - idle sessions give their native socket back (parked) and resume on their next datagram;
 *   imported sessions start parked, so restoring N sessions builds no native sockets.
 *
 * What does not touch the package lives elsewhere: the session table (relay/session/table.ts),
 * who may start a handshake (admission.ts), snapshots and staged imports (relay/handover/), claim
 * proofs (relay/cluster/). Transport-agnostic: datagrams are pushed in with `receive` and go out
 * through `transmit`, so the UDP socket, the straggler tunnel and the tests drive the same code.
 */
import { createRequire } from 'node:module';
import {
  ContentType,
  HandshakeType,
  MASTER_SECRET_LENGTH,
  MAX_PLAINTEXT_LENGTH,
  MAX_SEQUENCE_NUMBER,
  MAX_SESSION_ID_LENGTH,
  RANDOM_LENGTH,
  RECORD_HEADER_LENGTH,
} from '../../api/dtls/constants.ts';
import { handshakeTypeOf, readUint48, recordEnd, splitRecords, type RecordHeader } from '../../api/dtls/record.ts';
import { ReplayWindow } from '../../api/dtls/replay-window.ts';
import { RelayError } from '../errors.ts';
import { Arena } from '../session/arena.ts';
import { exportSession, type ExportedSession } from '../session/exported.ts';
import { copySecrets, packSecrets, unpackSecrets, wipeSecrets, type DtlsSecrets } from '../session/secrets.ts';
import { Session, peerKey, type PeerAddress, type Via } from '../session/session.ts';
import { SessionTable, type CloseReason, type RemovalReason, type SessionEntry } from '../session/table.ts';
import { HandshakeAdmission } from './admission.ts';
import { parseClientCertificate, type ClientCertificate } from './client-certificate.ts';
import { loadServerKey } from './server-key.ts';

const require = createRequire(import.meta.url);

/** The adapter is written against this exact release; the native layout is not a public API. */
export const MBED_DTLS_VERSION = '3.0.0-rc.14';

/** Largest datagram the native receive path survives (measured); the largest legitimate record is 829. */
export const MAX_INBOUND_DATAGRAM = 837;
const MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY = -0x7880;
const NATIVE_RELEASES_PER_COLLECTION = 1_000;

// --- the native binding and its memory layout ---------------------------------------------------

/** node-mbed-dtls's SessionWrap: its setters memcpy into fixed C arrays whatever they are given. */
export interface NativeSessionWrap {
  ciphersuite: number;
  randbytes: Buffer;
  id: Buffer;
  master: Buffer;
  in_epoch: number;
  /** epoch (2) | sequence (6), big-endian. */
  out_ctr: Buffer;
}

/**
 * The parts of a native DtlsSocket the adapter uses. `publicKey` is left out on purpose: it crashes
 * on resumed and certificate-less sockets. `session` crashes before the handshake completed.
 */
export interface NativeSocket {
  receiveData(record: Buffer): Buffer | undefined;
  send(plaintext: Buffer): number;
  close(): number;
  resumeSession(session: NativeSessionWrap): number;
  renegotiate(session?: NativeSessionWrap): boolean;
  readonly session: NativeSessionWrap;
}

export interface NativeBinding {
  DtlsServer: new (key: Buffer, debugLevel: number) => object;
  DtlsSocket: new (
    server: object,
    transportId: string,
    send: (record: Buffer) => void,
    handshakeDone: () => void,
    error: (code: number, message: string) => void,
    sessionLookup: (sessionId: string) => void,
  ) => NativeSocket;
  SessionWrap: new () => NativeSessionWrap;
}

let binding: NativeBinding | undefined;

/** The package's native addon, checked for the one release this file was written against. */
export function loadNativeBinding(): NativeBinding {
  if (binding !== undefined) return binding;
  const version = (require('node-mbed-dtls/package.json') as { version: string }).version;
  if (version !== MBED_DTLS_VERSION) {
    throw new RelayError('ERR_RELAY_DTLS_PACKAGE', `node-mbed-dtls ${version} is installed; the adapter is written for ${MBED_DTLS_VERSION} exactly`);
  }
  try {
    binding = require('node-mbed-dtls/build/Release/node_mbed_dtls.node') as NativeBinding;
  } catch (error) {
    throw new RelayError('ERR_RELAY_DTLS_PACKAGE', `node-mbed-dtls native addon did not load (was it built? run npm rebuild node-mbed-dtls): ${(error as Error).message}`);
  }
  return binding;
}

function readSecrets(socket: NativeSocket): DtlsSecrets {
  const wrap = socket.session;
  const counter = wrap.out_ctr;
  return {
    cipherSuite: wrap.ciphersuite,
    randoms: wrap.randbytes,
    sessionId: wrap.id,
    master: wrap.master,
    inEpoch: wrap.in_epoch,
    outEpoch: (counter[0]! << 8) | counter[1]!,
    outSeq: readUint48(counter, 2),
  };
}

function toSessionWrap(native: NativeBinding, secrets: DtlsSecrets): NativeSessionWrap {
  // The native setters cast and memcpy whatever they are given into fixed arrays: check, and copy
  // into Buffers of our own.
  if (secrets.randoms.length !== 2 * RANDOM_LENGTH) throw new RangeError(`randoms must be ${2 * RANDOM_LENGTH} bytes`);
  if (secrets.master.length !== MASTER_SECRET_LENGTH) throw new RangeError(`master must be ${MASTER_SECRET_LENGTH} bytes`);
  if (secrets.sessionId.length > MAX_SESSION_ID_LENGTH) throw new RangeError(`session id must be at most ${MAX_SESSION_ID_LENGTH} bytes`);
  if (!(secrets.outSeq >= 0 && secrets.outSeq <= MAX_SEQUENCE_NUMBER)) throw new RangeError('outSeq out of range');
  const counter = Buffer.alloc(8);
  counter.writeUInt16BE(secrets.outEpoch, 0);
  counter.writeUIntBE(secrets.outSeq, 2, 6);
  const wrap = new native.SessionWrap();
  wrap.ciphersuite = secrets.cipherSuite;
  wrap.randbytes = Buffer.from(secrets.randoms);
  wrap.id = Buffer.from(secrets.sessionId);
  wrap.master = Buffer.from(secrets.master);
  wrap.in_epoch = secrets.inEpoch;
  wrap.out_ctr = counter;
  return wrap;
}

// --- the adapter ---------------------------------------------------------------------------------

export type DropReason =
  | 'oversized'
  | 'malformed'
  | 'unknown-session'
  | 'no-handshake'
  | 'handshake-capacity'
  | 'handshake-rate'
  | 'replay'
  | 'rejected'
  | 'oversized-reply'
  | 'closed-session';

export type HandshakeFailure = 'timeout' | 'protocol' | 'no-client-key' | 'key-not-allowed' | 'bad-client-key' | 'capacity';

export interface DtlsLimits {
  /** Established plus parked sessions. */
  maxSessions: number;
  /** Handshakes in progress at once. */
  maxHandshakes: number;
  handshakeTimeoutMs: number;
  /** New handshakes per source IP: a token bucket. */
  handshakesPerSourcePerSecond: number;
  handshakeBurstPerSource: number;
  /** An idle session gives its native socket back after this long. */
  parkAfterIdleMs: number;
  /** An idle session is forgotten after this long. */
  expireAfterIdleMs: number;
}

export const DEFAULT_LIMITS: Readonly<DtlsLimits> = Object.freeze({
  maxSessions: 250_000,
  maxHandshakes: 2_000,
  handshakeTimeoutMs: 20_000,
  handshakesPerSourcePerSecond: 200,
  handshakeBurstPerSource: 400,
  parkAfterIdleMs: 60_000,
  expireAfterIdleMs: 24 * 3600_000,
});

export interface DtlsAdapterEvents {
  /** Outbound datagram: one record. */
  transmit(datagram: Buffer, peer: PeerAddress, via: Via): void;
  /** A handshake finished and the device key passed `authorize`. */
  established(session: Session): void;
  data(session: Session, payload: Buffer): void;
  closed(session: Session, reason: CloseReason): void;
  handshakeFailed(peer: PeerAddress, reason: HandshakeFailure, detail: string): void;
  dropped(reason: DropReason, bytes: number): void;
  /**
   * An application-data datagram from an address with no session here. With sibling relays
   * configured the session may live on one of them (a load balancer moved the flow): the relay
   * claims it. Without this handler such datagrams are dropped as 'unknown-session'.
   */
  unknownSession?(datagram: Buffer, peer: PeerAddress, via: Via): void;
  /** Many native sockets were released since the last call: a garbage collection would free their C memory. */
  nativeGarbage?(): void;
}

export interface DtlsAdapterOptions {
  /** Server private key (P-256), PEM or DER, SEC1 or PKCS#8. */
  serverKey: Buffer;
  limits?: Partial<DtlsLimits>;
  /** Client-key policy: return false to refuse a device. Devices without a key are always refused. */
  authorize?: (deviceKey: Buffer) => boolean;
  events: DtlsAdapterEvents;
  now?: () => number;
  /** The native binding; tests wrap the real one (`loadNativeBinding()`) to watch every call into it. */
  binding?: NativeBinding;
}

/**
 * Closures handed to a native socket hold this slot, never the socket itself: the native side keeps
 * its callbacks as strong references, so a callback that reached the socket would keep it alive
 * forever. Freeing a socket = clearing the slot's owner.
 */
interface Slot {
  handshake: Handshake | null;
  conn: Conn | null;
  /** Set by the error callback during a call into a session's socket; acted on after the call. */
  closeReason: CloseReason | null;
}

/** What a live session keeps for its native socket. */
interface NativeLink {
  readonly socket: NativeSocket;
  readonly slot: Slot;
}

type Conn = SessionEntry<NativeLink>;

interface Handshake {
  readonly key: string;
  peer: PeerAddress;
  via: Via;
  readonly socket: NativeSocket;
  readonly slot: Slot;
  readonly startedAt: number;
  certificate: ClientCertificate | undefined;
  certificateConflict: boolean;
  /** The native socket sent a HelloVerifyRequest: it holds nothing worth keeping. */
  sentHelloVerify: boolean;
  completed: boolean;
  failure: string | null;
  /** Epoch and sequence of the last protected record fed: the client's Finished once `completed`. */
  lastProtectedEpoch: number;
  lastProtectedSequence: number;
}

export type DepartureListener = (session: Session, lastState: ExportedSession | null) => void;

export class DtlsAdapter {
  readonly limits: Readonly<DtlsLimits>;
  private readonly server: object;
  private readonly native: NativeBinding;
  private readonly events: DtlsAdapterEvents;
  private readonly authorize: (deviceKey: Buffer) => boolean;
  private readonly now: () => number;
  private readonly table: SessionTable<Conn>;
  private readonly handshakes = new Map<string, Handshake>();
  private readonly admission: HandshakeAdmission;
  private readonly departureListeners = new Set<DepartureListener>();
  private readonly arena = new Arena();
  private closed = false;
  private releasedNatives = 0;

  constructor(options: DtlsAdapterOptions) {
    this.limits = Object.freeze({ ...DEFAULT_LIMITS, ...options.limits });
    this.native = options.binding ?? loadNativeBinding();
    this.server = new this.native.DtlsServer(loadServerKey(options.serverKey).der, 0);
    this.events = options.events;
    this.authorize = options.authorize ?? (() => true);
    this.now = options.now ?? Date.now;
    this.table = new SessionTable<Conn>(this.limits, {
      park: (conn) => this.park(conn),
      removed: (conn, reason) => this.onRemoved(conn, reason),
    });
    this.admission = new HandshakeAdmission(this.limits);
  }

  get sessionCount(): number {
    return this.table.size;
  }

  get handshakeCount(): number {
    return this.handshakes.size;
  }

  /** Sessions holding a native socket right now. */
  get liveCount(): number {
    return this.table.liveCount;
  }

  /** How many more sessions fit (`maxSessions` minus those held). */
  get room(): number {
    return this.table.room;
  }

  *allSessions(): IterableIterator<Session> {
    for (const conn of this.table.values()) yield conn.session;
  }

  getSession(peer: PeerAddress): Session | undefined {
    return this.table.get(peerKey(peer))?.session;
  }

  /** The session at a `peerKey()`. */
  sessionAt(key: string): Session | undefined {
    return this.table.get(key)?.session;
  }

  /** One datagram from a device (directly or through the straggler tunnel). */
  receive(datagram: Buffer, peer: PeerAddress, via: Via = null): void {
    if (this.closed) return;
    if (datagram.length > MAX_INBOUND_DATAGRAM) {
      this.events.dropped('oversized', datagram.length);
      return;
    }
    const records = splitRecords(datagram);
    if (records === null) {
      this.events.dropped('malformed', datagram.length);
      return;
    }
    const key = peerKey(peer);
    const first = records[0]!;
    if (first.epoch !== 0 && this.events.unknownSession !== undefined && this.table.get(key) === undefined && !this.handshakes.has(key)) {
      // Only application data can prove a claim; anything else from an unknown address is noise.
      if (first.type === ContentType.applicationData) this.events.unknownSession(datagram, peer, via);
      else this.events.dropped('unknown-session', datagram.length);
      return;
    }
    for (const record of records) {
      // Each record is fed on its own, re-based to offset 0 of its own slice.
      const bytes = records.length === 1 ? datagram : datagram.subarray(record.offset, recordEnd(record));
      record.offset = 0;
      if (this.isHandshakeRecord(key, record)) this.receiveHandshakeRecord(key, peer, via, bytes, record);
      else this.receiveSessionRecord(key, peer, via, bytes, record);
    }
  }

  /** Encrypts and sends one payload to the device. False when it was dropped. */
  send(session: Session, payload: Buffer): boolean {
    const conn = this.table.get(session.key);
    if (conn === undefined || conn.session !== session) {
      this.events.dropped('closed-session', payload.length);
      return false;
    }
    if (payload.length > MAX_PLAINTEXT_LENGTH) {
      this.events.dropped('oversized-reply', payload.length);
      return false;
    }
    const link = this.ensureNative(conn);
    if (link === null) return false;
    const result = link.socket.send(payload);
    this.settle(conn, link);
    return result >= 0 && link.slot.closeReason === null;
  }

  /** Idle eviction: times out handshakes, parks idle sessions, forgets expired ones and idle buckets. */
  sweep(now = this.now()): void {
    for (const handshake of this.handshakes.values()) {
      if (now - handshake.startedAt >= this.limits.handshakeTimeoutMs) {
        this.freeHandshake(handshake);
        this.events.handshakeFailed(handshake.peer, 'timeout', 'handshake did not finish in time');
      }
    }
    this.table.sweep(now);
    this.admission.sweep(now);
  }

  /** Frees every native socket of idle sessions now (used before a snapshot, and by tests). */
  parkAll(): void {
    this.table.parkAll();
  }

  /**
   * One session's state as it is now (secrets copied), or null when it is not (or no longer) in
   * the table. The caller must have stopped its traffic if the state is to be served elsewhere.
   */
  exportSession(session: Session): ExportedSession | null {
    const conn = this.table.get(session.key);
    return conn === undefined || conn.session !== session ? null : this.exportEntry(conn);
  }

  /**
   * Calls `listener` with the last state of every session that leaves the table (for any reason),
   * until the returned function is called. A lazy snapshot uses it to deliver sessions it listed.
   */
  watchDepartures(listener: DepartureListener): () => void {
    this.departureListeners.add(listener);
    return () => this.departureListeners.delete(listener);
  }

  /**
   * Adds parked sessions built elsewhere (a restore, a claim), all or none: a RelayError
   * ERR_RELAY_CAPACITY when those at new addresses do not fit. A session already present at the
   * same address is replaced. Returns the sessions added.
   */
  adopt(entries: ReadonlyArray<SessionEntry<never>>): Session[] {
    if (!this.table.addAll(entries as ReadonlyArray<Conn>)) {
      throw new RelayError('ERR_RELAY_CAPACITY', `${entries.length} sessions do not fit: ${this.table.size} of at most ${this.limits.maxSessions} are held`);
    }
    return entries.map((entry) => entry.session);
  }

  /** Forgets sessions without a word to the devices (they live on elsewhere, or the import is undone). */
  discard(sessions: Iterable<Session>): void {
    for (const session of sessions) {
      const conn = this.table.get(session.key);
      if (conn !== undefined && conn.session === session) this.table.remove(conn, 'discarded');
    }
  }

  /** Drops every socket without close_notify: a handover wants the devices to notice nothing. */
  close(): void {
    this.closed = true;
    for (const handshake of this.handshakes.values()) this.freeHandshake(handshake);
    this.table.clear('discarded');
    this.admission.clear();
  }

  // --- inbound ------------------------------------------------------------------------------

  private isHandshakeRecord(key: string, record: RecordHeader): boolean {
    if (record.epoch === 0) return true;
    // The client's Finished is the only epoch-1 handshake record; established sessions never get one.
    return record.type === ContentType.handshake && this.handshakes.has(key);
  }

  private receiveHandshakeRecord(key: string, peer: PeerAddress, via: Via, bytes: Buffer, record: RecordHeader): void {
    let handshake = this.handshakes.get(key);
    const messageType = handshakeTypeOf(bytes, record);
    if (handshake === undefined) {
      if (messageType !== HandshakeType.clientHello) {
        this.events.dropped('no-handshake', bytes.length);
        return;
      }
      const refusal = this.admission.admit(peer.address, this.handshakes.size, this.now());
      if (refusal !== null) {
        this.events.dropped(refusal, bytes.length);
        return;
      }
      const created = this.newHandshake(key, peer, via);
      if (created === null) return;
      handshake = created;
    }
    if (messageType === HandshakeType.certificate) this.noteCertificate(handshake, bytes, record);
    if (record.epoch !== 0) {
      handshake.lastProtectedEpoch = record.epoch;
      handshake.lastProtectedSequence = record.sequence;
    }
    try {
      handshake.socket.receiveData(bytes);
    } catch (error) {
      handshake.failure ??= (error as Error).message;
    }
    this.settleHandshake(handshake);
  }

  private receiveSessionRecord(key: string, peer: PeerAddress, via: Via, bytes: Buffer, record: RecordHeader): void {
    const conn = this.table.get(key);
    if (conn === undefined) {
      this.events.dropped('unknown-session', bytes.length);
      return;
    }
    const { session } = conn;
    if (!session.replay.accepts(record.epoch, record.sequence)) {
      this.events.dropped('replay', bytes.length);
      return;
    }
    const link = this.ensureNative(conn);
    if (link === null) return;
    let plaintext: Buffer | undefined;
    try {
      plaintext = link.socket.receiveData(bytes);
    } catch {
      plaintext = undefined;
    }
    if (plaintext !== undefined) {
      // Authenticated: only now may the window move and the route follow the datagram.
      session.replay.mark(record.epoch, record.sequence);
      session.lastSeenAt = this.now();
      session.recordsIn++;
      session.bytesIn += bytes.length;
      session.via = via;
      if (session.peer.address !== peer.address || session.peer.port !== peer.port) session.peer = peer;
      this.events.data(session, plaintext);
    } else if (record.type === ContentType.applicationData) {
      this.events.dropped('rejected', bytes.length);
    }
    this.settle(conn, link);
  }

  private noteCertificate(handshake: Handshake, bytes: Buffer, record: RecordHeader): void {
    const certificate = parseClientCertificate(bytes, record);
    if (handshake.certificate === undefined) {
      handshake.certificate = certificate;
    } else if (!sameCertificate(handshake.certificate, certificate)) {
      // Two different Certificate messages for one handshake: we cannot know which one mbedtls
      // hashed, so the session will be refused.
      handshake.certificateConflict = true;
    }
  }

  // --- native sockets -------------------------------------------------------------------------

  private newSocket(key: string, slot: Slot): NativeSocket | null {
    try {
      return new this.native.DtlsSocket(
        this.server,
        key,
        (record) => this.onNativeSend(slot, record),
        () => this.onNativeHandshakeDone(slot),
        (code, message) => this.onNativeError(slot, code, message),
        () => this.onNativeSessionLookup(slot),
      );
    } catch {
      this.events.dropped('handshake-capacity', 0);
      return null;
    }
  }

  private newHandshake(key: string, peer: PeerAddress, via: Via): Handshake | null {
    const slot: Slot = { handshake: null, conn: null, closeReason: null };
    const socket = this.newSocket(key, slot);
    if (socket === null) return null;
    const handshake: Handshake = {
      key, peer, via, socket, slot, startedAt: this.now(),
      certificate: undefined, certificateConflict: false, sentHelloVerify: false, completed: false, failure: null,
      lastProtectedEpoch: -1, lastProtectedSequence: -1,
    };
    slot.handshake = handshake;
    this.handshakes.set(key, handshake);
    return handshake;
  }

  private onNativeSend(slot: Slot, record: Buffer): void {
    const handshake = slot.handshake;
    if (handshake !== null) {
      if (record.length >= RECORD_HEADER_LENGTH + 1 && record[0] === ContentType.handshake && record[RECORD_HEADER_LENGTH] === HandshakeType.helloVerifyRequest) {
        handshake.sentHelloVerify = true;
      }
      this.events.transmit(record, handshake.peer, handshake.via);
      return;
    }
    const conn = slot.conn;
    if (conn === null) return;
    const { session } = conn;
    if (record.length >= RECORD_HEADER_LENGTH) {
      session.outEpoch = (record[3]! << 8) | record[4]!;
      session.outSequence = readUint48(record, 5);
    }
    session.recordsOut++;
    session.bytesOut += record.length;
    this.events.transmit(record, session.peer, session.via);
  }

  private onNativeHandshakeDone(slot: Slot): void {
    if (slot.handshake !== null) slot.handshake.completed = true;
  }

  private onNativeError(slot: Slot, code: number, message: string): void {
    if (slot.handshake !== null) slot.handshake.failure ??= message;
    else if (slot.conn !== null) slot.closeReason ??= code === MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ? 'peer-closed' : 'error';
  }

  /** The client offered a session id: no abbreviated handshakes here, carry on with a full one. */
  private onNativeSessionLookup(slot: Slot): void {
    queueMicrotask(() => {
      const handshake = slot.handshake;
      if (handshake === null) return;
      try {
        handshake.socket.renegotiate(undefined);
      } catch (error) {
        handshake.failure ??= (error as Error).message;
      }
      this.settleHandshake(handshake);
    });
  }

  /** Acts on what the native callbacks flagged during the last call into the socket. */
  private settleHandshake(handshake: Handshake): void {
    if (handshake.slot.handshake !== handshake) return;
    if (handshake.failure !== null) {
      this.freeHandshake(handshake);
      this.events.handshakeFailed(handshake.peer, 'protocol', handshake.failure);
    } else if (handshake.completed) {
      this.promote(handshake);
    } else if (handshake.sentHelloVerify) {
      // Stateless cookie exchange: the next ClientHello (with the cookie) gets a fresh socket.
      this.freeHandshake(handshake);
    }
  }

  private promote(handshake: Handshake): void {
    this.handshakes.delete(handshake.key);
    const refuse = (reason: HandshakeFailure, detail: string): void => {
      // close_notify tells the device at once instead of letting it time out.
      try {
        handshake.socket.close();
      } catch {
        // the socket is being freed anyway
      }
      this.freeHandshake(handshake);
      this.events.handshakeFailed(handshake.peer, reason, detail);
    };
    const certificate = handshake.certificate;
    if (handshake.certificateConflict) return refuse('bad-client-key', 'client sent two different Certificate messages');
    if (certificate === undefined || certificate.kind === 'none') return refuse('no-client-key', 'device sent no public key');
    if (certificate.kind === 'invalid') return refuse('bad-client-key', certificate.reason);
    if (!this.authorize(certificate.spki)) return refuse('key-not-allowed', 'device key is not in the allowed client keys');
    if (this.table.get(handshake.key) === undefined && this.table.room === 0) return refuse('capacity', 'session table is full');

    const now = this.now();
    const replay = new ReplayWindow(1);
    // The client's Finished completed the handshake, so it authenticated: it is marked like any
    // record seen, and can never be replayed (as a claim proof, for one).
    if (handshake.lastProtectedSequence >= 0) replay.mark(handshake.lastProtectedEpoch, handshake.lastProtectedSequence);
    const session = new Session(handshake.key, handshake.peer, handshake.via, certificate.spki, now, now, replay);
    session.outEpoch = 1;
    // The server's Finished was the first epoch-1 record it sent.
    session.outSequence = 0;
    const { slot } = handshake;
    const conn: Conn = { session, secrets: null, native: { socket: handshake.socket, slot } };
    slot.handshake = null;
    slot.conn = conn;
    this.table.add(conn);
    this.events.established(session);
  }

  /** A session closes when its socket reported an error or close_notify during the last call. */
  private settle(conn: Conn, link: NativeLink): void {
    const reason = link.slot.closeReason;
    if (reason !== null && this.table.holds(conn)) this.table.remove(conn, reason);
  }

  /** The native socket of a session, resumed from its parked secrets if needed. */
  private ensureNative(conn: Conn): NativeLink | null {
    if (conn.native !== null) return conn.native;
    const packed = conn.secrets;
    if (packed === null) return null;
    const slot: Slot = { handshake: null, conn: null, closeReason: null };
    const socket = this.newSocket(conn.session.key, slot);
    if (socket === null) return null;
    let resumed = false;
    try {
      resumed = socket.resumeSession(toSessionWrap(this.native, unpackSecrets(packed))) === 1;
    } catch {
      resumed = false;
    }
    if (!resumed) {
      this.nativeReleased();
      this.table.remove(conn, 'error');
      return null;
    }
    wipeSecrets(packed);
    const link: NativeLink = { socket, slot };
    slot.conn = conn;
    this.table.resumed(conn, link);
    return link;
  }

  private park(conn: Conn): void {
    const link = conn.native;
    if (link === null) return;
    const packed = packSecrets(readSecrets(link.socket), this.arena);
    this.releaseLink(link);
    this.table.parked(conn, packed);
  }

  /** The table let go of an entry: its state goes to whoever watches, its socket and secrets go. */
  private onRemoved(conn: Conn, reason: RemovalReason): void {
    if (this.departureListeners.size > 0) {
      const last = this.exportEntry(conn);
      for (const listener of this.departureListeners) listener(conn.session, last);
    }
    if (conn.native !== null) this.releaseLink(conn.native);
    conn.native = null;
    if (conn.secrets !== null) wipeSecrets(conn.secrets);
    conn.secrets = null;
    if (reason !== 'discarded') this.events.closed(conn.session, reason);
  }

  private exportEntry(conn: Conn): ExportedSession | null {
    const secrets = conn.secrets !== null ? copySecrets(conn.secrets) : conn.native !== null ? readSecrets(conn.native.socket) : null;
    return secrets === null ? null : exportSession(conn.session, secrets);
  }

  private releaseLink(link: NativeLink): void {
    link.slot.conn = null;
    this.nativeReleased();
  }

  /**
   * A released native socket keeps its mbedtls context (tens of KB of C memory) until V8 collects
   * its wrapper, and V8 does not know about that memory, so under a handshake storm it would pile
   * up (measured: relays at 400 MB after 4,000 handshakes). Every so many releases, the owner is
   * asked to collect.
   */
  private nativeReleased(): void {
    if (++this.releasedNatives >= NATIVE_RELEASES_PER_COLLECTION) {
      this.releasedNatives = 0;
      this.events.nativeGarbage?.();
    }
  }

  private freeHandshake(handshake: Handshake): void {
    if (handshake.slot.handshake !== null) this.nativeReleased();
    handshake.slot.handshake = null;
    if (this.handshakes.get(handshake.key) === handshake) this.handshakes.delete(handshake.key);
  }
}

function sameCertificate(a: ClientCertificate, b: ClientCertificate): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'key' && b.kind === 'key') return a.spki.equals(b.spki);
  return true;
}
