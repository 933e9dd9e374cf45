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
 * - the cookie exchange stays stateless: the native socket that answered a first ClientHello with a
 *   HelloVerifyRequest is freed at once, so spoofed hellos cost no memory;
 * - half-open handshakes time out, new handshakes are rate limited per source address and capped;
 * - the inbound replay window is enforced here, before mbedtls, and advanced only after a record
 *   authenticated, because a restored native session starts with an empty window;
 * - idle sessions are parked (native socket freed, compact state kept) and resumed on their next
 *   datagram; imported sessions start parked, so restoring N sessions builds no native sockets.
 *
 * Transport-agnostic: datagrams are pushed in with `receive` and go out through `transmit`, so the
 * UDP socket, the straggler tunnel and the tests all drive the same code.
 */
import { createRequire } from 'node:module';
import type { DtlsSessionState } from '../../api/state-format.ts';
import { RelayError } from '../errors.ts';
import { Arena, view, type ArenaRef } from '../session/arena.ts';
import { Session, parsePeerKey, peerKey, type PeerAddress, type Via } from '../session/session.ts';
import { parseClientCertificate, type ClientCertificate } from './client-certificate.ts';
import { ContentType, HandshakeType, MAX_SEQUENCE, handshakeTypeOf, readSequence, splitRecords, type RecordView } from './record.ts';
import { ReplayWindow } from './replay-window.ts';
import { recordAuthenticates } from './record-proof.ts';
import { loadServerKey } from './server-key.ts';

const require = createRequire(import.meta.url);

/** The adapter is written against this exact release; the native layout is not a public API. */
export const MBED_DTLS_VERSION = '3.0.0-rc.14';

/** Largest datagram the native receive path survives (measured); the largest legitimate record is 829. */
export const MAX_INBOUND_DATAGRAM = 837;
/** MBEDTLS_SSL_MAX_CONTENT_LEN of the bundled configuration. */
export const MAX_PLAINTEXT = 800;

const MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY = -0x7880;
const NATIVE_RELEASES_PER_COLLECTION = 1_000;

interface NativeSessionWrap {
  ciphersuite: number;
  randbytes: Buffer;
  id: Buffer;
  master: Buffer;
  in_epoch: number;
  out_ctr: Buffer;
}
interface NativeSocket {
  receiveData(record: Buffer): Buffer | undefined;
  send(plaintext: Buffer): number;
  close(): number;
  resumeSession(session: NativeSessionWrap): number;
  renegotiate(session?: NativeSessionWrap): boolean;
  readonly session: NativeSessionWrap;
}
interface NativeBinding {
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

function loadBinding(): NativeBinding {
  const version = (require('node-mbed-dtls/package.json') as { version: string }).version;
  if (version !== MBED_DTLS_VERSION) {
    throw new RelayError('ERR_RELAY_DTLS_PACKAGE', `node-mbed-dtls ${version} is installed; the adapter is written for ${MBED_DTLS_VERSION} exactly`);
  }
  try {
    return require('node-mbed-dtls/build/Release/node_mbed_dtls.node') as NativeBinding;
  } catch (error) {
    throw new RelayError('ERR_RELAY_DTLS_PACKAGE', `node-mbed-dtls native addon did not load (was it built? run npm rebuild node-mbed-dtls): ${(error as Error).message}`);
  }
}

let binding: NativeBinding | undefined;

/**
 * The DTLS secrets of an established session: what node-mbed-dtls needs to resume it elsewhere.
 * The same shape the state format carries.
 */
export type DtlsSecrets = DtlsSessionState;

/** Everything a successor relay needs to serve a session without a handshake. */
export interface ExportedSession {
  peer: PeerAddress;
  deviceKey: Buffer;
  createdAt: number;
  lastSeenAt: number;
  dtls: DtlsSecrets;
  replay: { epoch: number; top: number; window: Buffer };
}

export interface SessionVersion {
  serial: number;
  recordsIn: number;
  recordsOut: number;
}

export interface ImportStage {
  add(entry: ExportedSession): void;
  remove(peer: PeerAddress): void;
  /** Forgets everything staged so far (a full stream replaces a pre-copy). */
  reset(): void;
  readonly size: number;
  commit(): Session[];
  discard(): void;
}

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

export type CloseReason = 'peer-closed' | 'error' | 'expired' | 'replaced' | 'evicted' | 'shutdown';

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
   * An encrypted datagram from an address with no session here. With sibling relays configured the
   * session may live on one of them (a load balancer moved the flow): the relay claims it. Without
   * this handler such datagrams are dropped as 'unknown-session'.
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
}

/**
 * Closures handed to a native socket hold this slot, never the socket itself: the native side keeps
 * its callbacks as strong references, so a callback that reached the socket would keep it alive forever.
 * Freeing a socket = clearing `owner`.
 */
interface Slot {
  owner: Conn | Handshake | null;
}

interface Handshake {
  readonly kind: 'handshake';
  readonly key: string;
  peer: PeerAddress;
  via: Via;
  native: NativeSocket;
  slot: Slot;
  startedAt: number;
  certificate: ClientCertificate | undefined;
  certificateConflict: boolean;
  /** The native socket sent a HelloVerifyRequest: it holds nothing worth keeping. */
  sentHelloVerify: boolean;
  completed: boolean;
  failure: string | null;
}

/**
 * A parked session's secrets in one small buffer (randoms 64 | master 48 | session id 0-32): one
 * allocation from the buffer pool instead of three, which matters at 100,000 parked sessions.
 */
interface PackedSecrets {
  cipherSuite: number;
  inEpoch: number;
  outEpoch: number;
  outSeq: number;
  bytes: ArenaRef;
}

function pack(secrets: DtlsSecrets, arena: Arena): PackedSecrets {
  const bytes = arena.place(112 + secrets.sessionId.length);
  bytes.slab.set(secrets.randoms, bytes.offset);
  bytes.slab.set(secrets.master, bytes.offset + 64);
  bytes.slab.set(secrets.sessionId, bytes.offset + 112);
  return { cipherSuite: secrets.cipherSuite, inEpoch: secrets.inEpoch, outEpoch: secrets.outEpoch, outSeq: secrets.outSeq, bytes };
}

/** Secrets do not linger in memory once the native socket holds them, or once the session is gone. */
function wipe(packed: PackedSecrets): void {
  view(packed.bytes).fill(0);
}

function unpack(packed: PackedSecrets): DtlsSecrets {
  return {
    cipherSuite: packed.cipherSuite,
    randoms: view(packed.bytes, 0, 64),
    master: view(packed.bytes, 64, 112),
    sessionId: view(packed.bytes, 112),
    inEpoch: packed.inEpoch,
    outEpoch: packed.outEpoch,
    outSeq: packed.outSeq,
  };
}

interface Conn {
  readonly kind: 'session';
  session: Session;
  native: NativeSocket | null;
  slot: Slot | null;
  /** Present while parked. */
  secrets: PackedSecrets | null;
  closeReason: CloseReason | null;
  /** Its last state, kept only while a lazy snapshot that listed it has not read it yet. */
  tombstone: ExportedSession | null;
}

interface Bucket {
  tokens: number;
  refilledAt: number;
}

export class DtlsAdapter {
  readonly limits: Readonly<DtlsLimits>;
  private readonly server: object;
  private readonly native: NativeBinding;
  private readonly events: DtlsAdapterEvents;
  private readonly authorize: (deviceKey: Buffer) => boolean;
  private readonly now: () => number;
  private readonly sessions = new Map<string, Conn>();
  private readonly handshakes = new Map<string, Handshake>();
  private readonly buckets = new Map<string, Bucket>();
  private closed = false;
  private lazySnapshots = 0;
  private readonly arena = new Arena();
  private releasedNatives = 0;

  constructor(options: DtlsAdapterOptions) {
    this.limits = Object.freeze({ ...DEFAULT_LIMITS, ...options.limits });
    this.native = binding ??= loadBinding();
    this.server = new this.native.DtlsServer(loadServerKey(options.serverKey).der, 0);
    this.events = options.events;
    this.authorize = options.authorize ?? (() => true);
    this.now = options.now ?? Date.now;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  get handshakeCount(): number {
    return this.handshakes.size;
  }

  /** Sessions holding a native socket right now. */
  get liveCount(): number {
    let live = 0;
    for (const conn of this.sessions.values()) if (conn.native !== null) live++;
    return live;
  }

  *allSessions(): IterableIterator<Session> {
    for (const conn of this.sessions.values()) yield conn.session;
  }

  getSession(peer: PeerAddress): Session | undefined {
    return this.sessions.get(peerKey(peer))?.session;
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
    if (first.epoch !== 0 && this.events.unknownSession !== undefined && !this.sessions.has(key) && !this.handshakes.has(key)) {
      this.events.unknownSession(datagram, peer, via);
      return;
    }
    for (const found of records) {
      // Each record is fed on its own, re-based to offset 0 of its own slice.
      const bytes = records.length === 1 ? datagram : datagram.subarray(found.offset, found.offset + found.length);
      const record = found.offset === 0 ? found : { ...found, offset: 0 };
      if (this.isHandshakeRecord(key, record)) this.receiveHandshakeRecord(key, peer, via, bytes, record);
      else this.receiveSessionRecord(key, peer, via, bytes, record);
    }
  }

  /** Encrypts and sends one payload to the device. False when it was dropped. */
  send(session: Session, payload: Buffer): boolean {
    const conn = this.sessions.get(session.key);
    if (conn === undefined || conn.session !== session) {
      this.events.dropped('closed-session', payload.length);
      return false;
    }
    if (payload.length > MAX_PLAINTEXT) {
      this.events.dropped('oversized-reply', payload.length);
      return false;
    }
    const native = this.ensureNative(conn);
    if (native === null) return false;
    const result = native.send(payload);
    this.settle(conn);
    return result >= 0 && conn.closeReason === null;
  }

  /** Idle eviction: times out handshakes, parks idle sessions, forgets expired ones. */
  sweep(now = this.now()): void {
    for (const handshake of this.handshakes.values()) {
      if (now - handshake.startedAt >= this.limits.handshakeTimeoutMs) {
        this.freeHandshake(handshake);
        this.events.handshakeFailed(handshake.peer, 'timeout', 'handshake did not finish in time');
      }
    }
    for (const conn of this.sessions.values()) {
      const idle = now - conn.session.lastSeenAt;
      if (idle >= this.limits.expireAfterIdleMs) this.closeConn(conn, 'expired');
      else if (conn.native !== null && idle >= this.limits.parkAfterIdleMs) this.park(conn);
    }
    const refillMs = 1000 * this.limits.handshakeBurstPerSource / this.limits.handshakesPerSourcePerSecond;
    for (const [address, bucket] of this.buckets) {
      if (now - bucket.refilledAt >= refillMs) this.buckets.delete(address);
    }
  }

  /** Frees every native socket of idle sessions now (used before a snapshot, and by tests). */
  parkAll(): void {
    for (const conn of this.sessions.values()) if (conn.native !== null) this.park(conn);
  }

  /**
   * Snapshot of every established session. The caller must stop traffic first (pause), or sessions
   * go on encrypting after the snapshot and the successor would reuse their nonces.
   */
  exportSessions(include?: (session: Session) => boolean): ExportedSession[] {
    const out: ExportedSession[] = [];
    for (const conn of this.sessions.values()) {
      if (include !== undefined && !include(conn.session)) continue;
      const exported = this.exportConn(conn);
      if (exported !== null) out.push(exported);
    }
    return out;
  }

  /** One session's state, or null when it is not (or no longer) in the table. */
  exportSession(session: Session): ExportedSession | null {
    const conn = this.sessions.get(session.key);
    return conn === undefined || conn.session !== session ? null : this.exportConn(conn);
  }

  /** A session's state as it is now; null if it holds none (already released). */
  private exportConn(conn: Conn): ExportedSession | null {
    // A released conn (closed since a lazy snapshot listed it) exports what it last had: it will be
    // listed as removed by the delta anyway.
    if (conn.tombstone !== null) return conn.tombstone;
    const secrets = conn.secrets !== null ? unpack(conn.secrets) : conn.native !== null ? readSecrets(conn.native) : null;
    if (secrets === null) return null;
    const { session } = conn;
    return {
      peer: session.peer,
      deviceKey: session.deviceKey,
      createdAt: session.createdAt,
      lastSeenAt: session.lastSeenAt,
      dtls: secrets,
      replay: { epoch: session.replay.epoch, top: session.replay.top, window: session.replay.toBytes() },
    };
  }

  /**
   * A snapshot taken session by session as it is read: the list of sessions is fixed now, each
   * session's state and version are read together when the iterator reaches it. Changes made in
   * between are caught by the delta (their version moved).
   */
  lazySnapshot(): { count: number; versions: Map<string, SessionVersion>; sessions: Iterable<ExportedSession> } {
    const conns = [...this.sessions.values()].filter((conn) => conn.native !== null || conn.secrets !== null);
    const versions = new Map<string, SessionVersion>();
    const exportOne = (conn: Conn): ExportedSession => {
      const { session } = conn;
      versions.set(session.key, { serial: session.serial, recordsIn: session.recordsIn, recordsOut: session.recordsOut });
      const exported = this.exportConn(conn)!;
      conn.tombstone = null;
      return exported;
    };
    this.lazySnapshots++;
    const done = (): void => {
      this.lazySnapshots--;
      for (const conn of conns) conn.tombstone = null;
    };
    return {
      count: conns.length,
      versions,
      sessions: (function* () {
        try {
          for (const conn of conns) yield exportOne(conn);
        } finally {
          done();
        }
      })(),
    };
  }

  /** The delta against a pre-copy: sessions new or changed since `versions`, and the ones gone. */
  exportChangedSince(versions: ReadonlyMap<string, SessionVersion>): { changed: ExportedSession[]; removed: PeerAddress[] } {
    const changed = this.exportSessions((session) => {
      const before = versions.get(session.key);
      return before === undefined || before.serial !== session.serial || before.recordsIn !== session.recordsIn || before.recordsOut !== session.recordsOut;
    });
    const removed: PeerAddress[] = [];
    for (const key of versions.keys()) {
      const conn = this.sessions.get(key);
      if (conn === undefined) removed.push(parsePeerKey(key));
    }
    return { changed, removed };
  }

  /**
   * Adds sessions exported by another relay. They stay parked (no native socket) until their first
   * datagram. The caller must have applied the nonce fence to `dtls.outSeq` and validated everything.
   * A session already present for the same address is replaced. Returns the sessions added.
   */
  importSessions(exported: readonly ExportedSession[], via: Via = null): Session[] {
    const stage = this.stageImport(via);
    for (const entry of exported) stage.add(entry);
    return stage.commit();
  }

  /**
   * Starts an all-or-nothing import: sessions added to the stage are built (parked, compact) as
   * they arrive but join the table only on `commit()`. `discard()` drops them without a trace.
   */
  stageImport(via: Via = null): ImportStage {
    const staged = new Map<string, Conn>();
    let open = true;
    return {
      add: (entry) => {
        if (!open) throw new RelayError('ERR_RELAY_STATE', 'import stage already committed or discarded');
        const key = peerKey(entry.peer);
        const session = new Session(key, { address: entry.peer.address, port: entry.peer.port }, via, this.arena.copy(entry.deviceKey), entry.createdAt, entry.lastSeenAt,
          ReplayWindow.fromBytes(entry.replay.epoch, entry.replay.top, entry.replay.window));
        session.outEpoch = entry.dtls.outEpoch;
        session.outSequence = entry.dtls.outSeq - 1;
        session.parked = true;
        staged.set(key, { kind: 'session', session, native: null, slot: null, secrets: pack(entry.dtls, this.arena), closeReason: null, tombstone: null });
      },
      remove: (peer) => {
        staged.delete(peerKey(peer));
      },
      reset: () => {
        staged.clear();
      },
      get size() {
        return staged.size;
      },
      commit: () => {
        if (!open) throw new RelayError('ERR_RELAY_STATE', 'import stage already committed or discarded');
        open = false;
        const added: Session[] = [];
        for (const [key, conn] of staged) {
          const previous = this.sessions.get(key);
          if (previous !== undefined) this.closeConn(previous, 'replaced');
          this.sessions.set(key, conn);
          added.push(conn.session);
        }
        staged.clear();
        return added;
      },
      discard: () => {
        open = false;
        staged.clear();
      },
    };
  }

  /**
   * True when `datagram` starts with a record this session would accept: inside the replay window
   * and authentic under the session's client write key. Checked in JS (PRF and AES-CCM), without
   * touching the native socket, so the session is unchanged either way. This is the proof a sibling
   * relay must show before a session is handed to it.
   */
  provesSession(session: Session, datagram: Buffer): boolean {
    const conn = this.sessions.get(session.key);
    if (conn === undefined || conn.session !== session) return false;
    const record = splitRecords(datagram)?.[0];
    if (record === undefined || record.epoch === 0 || !session.replay.accepts(record.epoch, record.sequence)) return false;
    const exported = this.exportConn(conn);
    if (exported === null) return false;
    return recordAuthenticates(exported.dtls, datagram, record);
  }

  /** Forgets sessions without a word to the devices (they live on elsewhere, or the import is undone). */
  discard(sessions: Iterable<Session>): void {
    for (const session of sessions) {
      const conn = this.sessions.get(session.key);
      if (conn !== undefined && conn.session === session) this.release(conn);
    }
  }

  /** Drops every socket without close_notify: a handover wants the devices to notice nothing. */
  close(): void {
    this.closed = true;
    for (const handshake of this.handshakes.values()) this.freeHandshake(handshake);
    for (const conn of this.sessions.values()) this.release(conn);
    this.sessions.clear();
    this.buckets.clear();
  }

  // --- inbound ------------------------------------------------------------------------------

  private isHandshakeRecord(key: string, record: RecordView): boolean {
    if (record.epoch === 0) return true;
    // The client's Finished is the only epoch-1 handshake record; established sessions never get one.
    return record.type === ContentType.handshake && this.handshakes.has(key);
  }

  private receiveHandshakeRecord(key: string, peer: PeerAddress, via: Via, bytes: Buffer, record: RecordView): void {
    let handshake = this.handshakes.get(key);
    const messageType = handshakeTypeOf(bytes, record);
    if (handshake === undefined) {
      if (messageType !== HandshakeType.clientHello) {
        this.events.dropped('no-handshake', bytes.length);
        return;
      }
      if (this.handshakes.size >= this.limits.maxHandshakes) {
        this.events.dropped('handshake-capacity', bytes.length);
        return;
      }
      if (!this.takeHandshakeToken(peer.address)) {
        this.events.dropped('handshake-rate', bytes.length);
        return;
      }
      const created = this.newHandshake(key, peer, via);
      if (created === null) return;
      handshake = created;
    }
    if (messageType === HandshakeType.certificate) this.noteCertificate(handshake, bytes, record);
    try {
      handshake.native.receiveData(bytes);
    } catch (error) {
      handshake.failure ??= (error as Error).message;
    }
    this.settleHandshake(handshake);
  }

  private receiveSessionRecord(key: string, peer: PeerAddress, via: Via, bytes: Buffer, record: RecordView): void {
    const conn = this.sessions.get(key);
    if (conn === undefined) {
      this.events.dropped('unknown-session', bytes.length);
      return;
    }
    const { session } = conn;
    if (!session.replay.accepts(record.epoch, record.sequence)) {
      this.events.dropped('replay', bytes.length);
      return;
    }
    const native = this.ensureNative(conn);
    if (native === null) return;
    let plaintext: Buffer | undefined;
    try {
      plaintext = native.receiveData(bytes);
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
    this.settle(conn);
  }

  private noteCertificate(handshake: Handshake, bytes: Buffer, record: RecordView): void {
    const certificate = parseClientCertificate(bytes, record);
    if (handshake.certificate === undefined) {
      handshake.certificate = certificate;
    } else if (!sameCertificate(handshake.certificate, certificate)) {
      // Two different Certificate messages for one handshake: we cannot know which one mbedtls
      // hashed, so the session will be refused.
      handshake.certificateConflict = true;
    }
  }

  private takeHandshakeToken(address: string): boolean {
    const now = this.now();
    const { handshakesPerSourcePerSecond: rate, handshakeBurstPerSource: burst } = this.limits;
    let bucket = this.buckets.get(address);
    if (bucket === undefined) {
      bucket = { tokens: burst, refilledAt: now };
      this.buckets.set(address, bucket);
    } else {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.refilledAt) * rate) / 1000);
      bucket.refilledAt = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  // --- native sockets -------------------------------------------------------------------------

  private newNative(key: string, slot: Slot): NativeSocket | null {
    try {
      return new this.native.DtlsSocket(
        this.server,
        key,
        (record) => this.onNativeSend(slot, record),
        () => this.onNativeHandshakeDone(slot),
        (code, message) => this.onNativeError(slot, code, message),
        () => this.onNativeSessionLookup(slot),
      );
    } catch (error) {
      this.events.dropped('handshake-capacity', 0);
      void error;
      return null;
    }
  }

  private newHandshake(key: string, peer: PeerAddress, via: Via): Handshake | null {
    const slot: Slot = { owner: null };
    const native = this.newNative(key, slot);
    if (native === null) return null;
    const handshake: Handshake = {
      kind: 'handshake', key, peer, via, native, slot, startedAt: this.now(),
      certificate: undefined, certificateConflict: false, sentHelloVerify: false, completed: false, failure: null,
    };
    slot.owner = handshake;
    this.handshakes.set(key, handshake);
    return handshake;
  }

  private onNativeSend(slot: Slot, record: Buffer): void {
    const owner = slot.owner;
    if (owner === null) return;
    if (owner.kind === 'handshake') {
      if (record.length >= 26 && record[0] === ContentType.handshake && record[13] === HandshakeType.helloVerifyRequest) {
        owner.sentHelloVerify = true;
      }
      this.events.transmit(record, owner.peer, owner.via);
      return;
    }
    const { session } = owner;
    if (record.length >= 13) {
      session.outEpoch = (record[3]! << 8) | record[4]!;
      session.outSequence = readSequence(record, 5);
    }
    session.recordsOut++;
    session.bytesOut += record.length;
    this.events.transmit(record, session.peer, session.via);
  }

  private onNativeHandshakeDone(slot: Slot): void {
    const owner = slot.owner;
    if (owner !== null && owner.kind === 'handshake') owner.completed = true;
  }

  private onNativeError(slot: Slot, code: number, message: string): void {
    const owner = slot.owner;
    if (owner === null) return;
    if (owner.kind === 'handshake') owner.failure ??= message;
    else owner.closeReason ??= code === MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ? 'peer-closed' : 'error';
  }

  /** The client offered a session id: no abbreviated handshakes here, carry on with a full one. */
  private onNativeSessionLookup(slot: Slot): void {
    queueMicrotask(() => {
      const owner = slot.owner;
      if (owner === null || owner.kind !== 'handshake') return;
      try {
        owner.native.renegotiate(undefined);
      } catch (error) {
        owner.failure ??= (error as Error).message;
      }
      this.settleHandshake(owner);
    });
  }

  /** Acts on what the native callbacks flagged during the last call into the socket. */
  private settleHandshake(handshake: Handshake): void {
    if (handshake.slot.owner !== handshake) return;
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
        handshake.native.close();
      } catch {
        // the socket is being freed anyway
      }
      handshake.slot.owner = null;
      this.events.handshakeFailed(handshake.peer, reason, detail);
    };
    const certificate = handshake.certificate;
    if (handshake.certificateConflict) return refuse('bad-client-key', 'client sent two different Certificate messages');
    if (certificate === undefined || certificate.kind === 'none') return refuse('no-client-key', 'device sent no public key');
    if (certificate.kind === 'invalid') return refuse('bad-client-key', certificate.reason);
    if (!this.authorize(certificate.spki)) return refuse('key-not-allowed', 'device key is not in the allowed client keys');
    const previous = this.sessions.get(handshake.key);
    if (previous === undefined && this.sessions.size >= this.limits.maxSessions) return refuse('capacity', 'session table is full');
    if (previous !== undefined) this.closeConn(previous, 'replaced');

    const now = this.now();
    const session = new Session(handshake.key, handshake.peer, handshake.via, certificate.spki, now, now, new ReplayWindow(1));
    session.outEpoch = 1;
    // The server's Finished was the first epoch-1 record it sent.
    session.outSequence = 0;
    const conn: Conn = { kind: 'session', session, native: handshake.native, slot: handshake.slot, secrets: null, closeReason: null, tombstone: null };
    handshake.slot.owner = conn;
    this.sessions.set(handshake.key, conn);
    this.events.established(session);
  }

  private settle(conn: Conn): void {
    if (conn.closeReason !== null && this.sessions.get(conn.session.key) === conn) {
      this.closeConn(conn, conn.closeReason);
    }
  }

  /** The native socket of a session, resumed from its parked secrets if needed. */
  private ensureNative(conn: Conn): NativeSocket | null {
    if (conn.native !== null) return conn.native;
    const secrets = conn.secrets;
    if (secrets === null) return null;
    const slot: Slot = { owner: null };
    const native = this.newNative(conn.session.key, slot);
    if (native === null) return null;
    slot.owner = conn;
    conn.native = native;
    conn.slot = slot;
    let resumed = false;
    try {
      resumed = native.resumeSession(toSessionWrap(this.native, unpack(secrets))) === 1;
      wipe(secrets);
    } catch {
      resumed = false;
    }
    if (!resumed) {
      this.closeConn(conn, 'error');
      return null;
    }
    conn.secrets = null;
    conn.session.parked = false;
    return native;
  }

  private park(conn: Conn): void {
    if (conn.native === null) return;
    conn.secrets = pack(readSecrets(conn.native), this.arena);
    this.dropNative(conn);
    conn.session.parked = true;
  }

  private dropNative(conn: Conn): void {
    if (conn.slot !== null) {
      conn.slot.owner = null;
      this.nativeReleased();
    }
    conn.slot = null;
    conn.native = null;
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

  private release(conn: Conn): void {
    // A lazy snapshot listed this session and must still deliver it: keep its state until read.
    if (this.lazySnapshots > 0 && conn.tombstone === null) conn.tombstone = this.exportConn(conn);
    this.dropNative(conn);
    if (conn.secrets !== null) wipe(conn.secrets);
    conn.secrets = null;
    this.sessions.delete(conn.session.key);
  }

  private closeConn(conn: Conn, reason: CloseReason): void {
    this.release(conn);
    this.events.closed(conn.session, reason);
  }

  private freeHandshake(handshake: Handshake): void {
    if (handshake.slot.owner !== null) this.nativeReleased();
    handshake.slot.owner = null;
    if (this.handshakes.get(handshake.key) === handshake) this.handshakes.delete(handshake.key);
  }
}

function readSecrets(native: NativeSocket): DtlsSecrets {
  const wrap = native.session;
  const counter = wrap.out_ctr;
  return {
    cipherSuite: wrap.ciphersuite,
    randoms: wrap.randbytes,
    sessionId: wrap.id,
    master: wrap.master,
    inEpoch: wrap.in_epoch,
    outEpoch: (counter[0]! << 8) | counter[1]!,
    outSeq: readSequence(counter, 2),
  };
}

function toSessionWrap(native: NativeBinding, secrets: DtlsSecrets): NativeSessionWrap {
  // The native setters memcpy whatever length they are given into fixed arrays: check first.
  if (secrets.randoms.length !== 64) throw new RangeError('randoms must be 64 bytes');
  if (secrets.master.length !== 48) throw new RangeError('master must be 48 bytes');
  if (secrets.sessionId.length > 32) throw new RangeError('session id must be at most 32 bytes');
  if (!(secrets.outSeq >= 0 && secrets.outSeq <= MAX_SEQUENCE)) throw new RangeError('outSeq out of range');
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

function sameCertificate(a: ClientCertificate, b: ClientCertificate): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'key' && b.kind === 'key') return a.spki.equals(b.spki);
  return true;
}
