/**
 * The I/O half of the device-side DTLS 1.2 client: one connected UDP socket per session, the handshake
 * retransmission timer (RFC 6347 4.2.4), record protection and the inbound record filter.
 * The handshake logic itself is the pure ClientHandshake.
 */
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { AddressInfo } from 'node:net';
import { recordProtectionFor, type CcmRecordProtection } from '../../api/dtls/record-protection.ts';
import {
  AlertDescription,
  AlertLevel,
  ContentType,
  DTLS_1_0,
  DTLS_1_2,
  MAX_PLAINTEXT_LENGTH,
  alertName,
} from '../../api/dtls/constants.ts';
import { DtlsClientError, isDtlsClientError } from './errors.ts';
import {
  ClientHandshake,
  type EstablishedSessionInfo,
  type HandshakeStep,
  type OutgoingRecord,
} from './handshake.ts';
import { createRecordHeader, encodePlaintextRecord, readRecordHeader, recordFragment, type RecordHeader } from '../../api/dtls/record.ts';
import { ReplayWindow } from '../../api/dtls/replay-window.ts';
import { resolveOptions, type DtlsClientOptions, type ResolvedOptions } from './client-options.ts';
import { RetransmitTimer } from './retransmit-timer.ts';

export type DtlsClientState = 'idle' | 'connecting' | 'established' | 'closed';

export type CloseReason =
  /** close() was called. */
  | 'local'
  /** The server sent close_notify (the relay does this to devices it refuses, right after the handshake). */
  | 'peer-closed'
  /** The server sent a fatal alert; `alert` names it. */
  | 'fatal-alert'
  /** connect() failed: timeout, bad signature, unexpected message...; `error` says which. */
  | 'handshake-failed'
  /** The UDP socket failed. */
  | 'socket-error';

export interface CloseInfo {
  readonly reason: CloseReason;
  /** Alert description name, e.g. 'close_notify' or 'handshake_failure', when an alert ended the session. */
  readonly alert?: string;
  readonly error?: DtlsClientError;
}

export interface DtlsClientStats {
  /** Completed handshakes. */
  handshakes: number;
  /** Flights resent, by the timer or because the server repeated its flight. */
  handshakeRetransmissions: number;
  /** Records accepted: plaintext handshake records, and protected records that authenticated. */
  recordsIn: number;
  recordsOut: number;
  /** UDP payload bytes. */
  bytesIn: number;
  bytesOut: number;
  replaysDropped: number;
  /** Records that failed authentication, had an unknown epoch or version, or could not be parsed. */
  badRecordsDropped: number;
  /**
   * Handshake and ChangeCipherSpec records arriving after the handshake: the server repeating a flight
   * because one of our retransmissions crossed its answer. Harmless, so kept apart from badRecordsDropped.
   */
  lateHandshakeRecords: number;
  /** Send failures and ICMP errors, which are counted and otherwise ignored. */
  socketErrors: number;
  /** Highest authenticated inbound epoch-1 sequence number; -1 before the first. */
  lastInboundSeq: number;
  /** Last epoch-1 sequence number sent; -1 before the first. */
  lastOutboundSeq: number;
}

export interface DtlsClientEvents {
  /** `sequence` is the record's epoch-1 sequence number, e.g. to check where a relay resumed after a handover. */
  message: [payload: Buffer, sequence: number];
  close: [info: CloseInfo];
  /** Only emitted when someone listens: every failure also ends in 'close' with its error. */
  error: [error: DtlsClientError];
}

/** ICMP reports on a connected UDP socket: a device on a real network would not see them, so they are noise. */
const TRANSIENT_SOCKET_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOBUFS']);

export class DtlsClient extends EventEmitter<DtlsClientEvents> {
  /** The server's MBEDTLS_SSL_MAX_CONTENT_LEN: the largest payload send() accepts. */
  static readonly maxPayloadLength = MAX_PLAINTEXT_LENGTH;

  readonly #options: ResolvedOptions;
  #state: DtlsClientState = 'idle';
  #socket: Socket | null = null;
  #socketClosed: Promise<void> = Promise.resolve();
  #handshake: ClientHandshake | null = null;
  #session: EstablishedSessionInfo | null = null;
  #protection: CcmRecordProtection | null = null;
  readonly #replayWindow = new ReplayWindow(1);
  #epoch0Sequence = 0;
  #epoch1Sequence = 0;
  readonly #header: RecordHeader = createRecordHeader();
  readonly #stats: DtlsClientStats = {
    handshakes: 0,
    handshakeRetransmissions: 0,
    recordsIn: 0,
    recordsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    replaysDropped: 0,
    badRecordsDropped: 0,
    lateHandshakeRecords: 0,
    socketErrors: 0,
    lastInboundSeq: -1,
    lastOutboundSeq: -1,
  };

  #connectPromise: Promise<void> | null = null;
  #resolveConnect: (() => void) | null = null;
  #rejectConnect: ((error: DtlsClientError) => void) | null = null;
  readonly #retransmitTimer: RetransmitTimer;
  #lastSocketError: Error | null = null;
  #referenced = true;

  constructor(options: DtlsClientOptions) {
    super();
    this.#options = resolveOptions(options);
    this.#retransmitTimer = new RetransmitTimer({
      initialMs: this.#options.retransmitInitialMs,
      maxMs: this.#options.retransmitMaxMs,
      maxRetransmissions: this.#options.maxRetransmissions,
      handshakeTimeoutMs: this.#options.handshakeTimeoutMs,
    }, {
      retransmit: () => this.#retransmitFlight(),
      timeout: (retransmissions) => this.#onHandshakeTimeout(retransmissions),
    });
  }

  get state(): DtlsClientState {
    return this.#state;
  }

  /** Hex SHA-256 of the device's SPKI, or null for a key-less client. */
  get deviceId(): string | null {
    return this.#options.deviceId;
  }

  /** Session id, randoms and whether the client authenticated, once established. */
  get session(): EstablishedSessionInfo | null {
    return this.#session;
  }

  /** A snapshot of the counters. */
  get stats(): DtlsClientStats {
    return { ...this.#stats };
  }

  /** The bound local address, once the socket is up (where the relay sees this device). */
  get localAddress(): AddressInfo | null {
    try {
      return this.#socket?.address() ?? null;
    } catch {
      return null;
    }
  }

  /** Lets the process exit while this session is open (the socket no longer holds the event loop). */
  unref(): this {
    this.#referenced = false;
    this.#socket?.unref();
    return this;
  }

  ref(): this {
    this.#referenced = true;
    this.#socket?.ref();
    return this;
  }

  /** Runs the handshake. Resolves once the server Finished verifies; rejects with a DtlsClientError. */
  connect(): Promise<void> {
    if (this.#connectPromise !== null) return this.#connectPromise;
    if (this.#state === 'closed') return Promise.reject(new DtlsClientError('ERR_DTLS_CLOSED', 'client is closed'));
    this.#state = 'connecting';
    this.#connectPromise = new Promise<void>((resolve, reject) => {
      this.#resolveConnect = resolve;
      this.#rejectConnect = reject;
    });
    this.#retransmitTimer.begin();
    this.#openSocketAndStart().catch((error: unknown) => {
      this.#terminate({ reason: 'socket-error', error: asSocketError(error, 'cannot open the UDP socket') });
    });
    return this.#connectPromise;
  }

  /** Sends one application-data record in its own datagram. */
  send(payload: Uint8Array): void {
    if (this.#state !== 'established') {
      throw new DtlsClientError('ERR_DTLS_NOT_CONNECTED', `cannot send in state ${this.#state}`);
    }
    if (payload.length > MAX_PLAINTEXT_LENGTH) {
      throw new DtlsClientError('ERR_DTLS_PAYLOAD_TOO_LARGE',
        `payload of ${payload.length} bytes exceeds the server limit of ${MAX_PLAINTEXT_LENGTH}`);
    }
    const sequence = this.#epoch1Sequence++;
    this.#stats.lastOutboundSeq = sequence;
    this.#transmit(this.#protection!.seal(ContentType.applicationData, 1, sequence, payload));
  }

  /**
   * Ends the session: sends close_notify first when established, unless `notify` is false (a device that
   * just vanishes). Resolves once the socket is closed.
   */
  close(options: { notify?: boolean } = {}): Promise<void> {
    if (this.#state !== 'closed') {
      const farewell = this.#state === 'established' && options.notify !== false
        ? this.#sealAlert(AlertLevel.warning, AlertDescription.closeNotify)
        : null;
      this.#terminate({ reason: 'local' }, farewell);
    }
    return this.#socketClosed;
  }

  // ------------------------------------------------------------------ setup

  async #openSocketAndStart(): Promise<void> {
    const { host, port, localAddress, localPort } = this.#options;
    const target = isIP(host) !== 0 ? { address: host, family: isIP(host) } : await lookup(host);
    if (this.#state !== 'connecting') return;
    const socket = createSocket({ type: target.family === 6 ? 'udp6' : 'udp4' });
    this.#socket = socket;
    if (!this.#referenced) socket.unref();
    this.#socketClosed = new Promise<void>((resolve) => socket.once('close', resolve));
    await settleSocket(socket, (done) => {
      if (localAddress !== undefined || localPort !== undefined) {
        socket.bind({ address: localAddress, port: localPort ?? 0, exclusive: true }, () => {
          socket.connect(port, target.address, done);
        });
      } else {
        socket.connect(port, target.address, done);
      }
    });
    if (this.#state !== 'connecting') return;
    socket.on('message', this.#onDatagram);
    socket.on('error', this.#onSocketError);

    this.#handshake = new ClientHandshake({
      serverPublicKey: this.#options.serverPublicKey,
      clientCredential: this.#options.credential,
    });
    this.#applyStep(this.#handshake.start());
  }

  // ------------------------------------------------------------------ inbound

  readonly #onDatagram = (datagram: Buffer): void => {
    this.#stats.bytesIn += datagram.length;
    const header = this.#header;
    let offset = 0;
    while (offset < datagram.length && this.#state !== 'closed') {
      const next = readRecordHeader(datagram, offset, header);
      if (next < 0) {
        this.#stats.badRecordsDropped++;
        return;
      }
      if (header.epoch === 0) this.#onPlaintextRecord(datagram, header);
      else this.#onProtectedRecord(datagram, header);
      offset = next;
    }
  };

  #onPlaintextRecord(datagram: Buffer, header: RecordHeader): void {
    // After the handshake, plaintext is noise: nothing unauthenticated may change an established session.
    if (this.#handshake === null) {
      if (this.#state === 'established' && isHandshakeContent(header.type)) this.#stats.lateHandshakeRecords++;
      else this.#stats.badRecordsDropped++;
      return;
    }
    if (header.version !== DTLS_1_2 && header.version !== DTLS_1_0) {
      this.#stats.badRecordsDropped++;
      return;
    }
    const fragment = recordFragment(datagram, header);
    if (isHandshakeContent(header.type)) {
      this.#stats.recordsIn++;
      this.#feedHandshake(header.type, 0, fragment);
    } else if (header.type === ContentType.alert) {
      this.#stats.recordsIn++;
      this.#onAlert(fragment);
    } else {
      this.#stats.badRecordsDropped++;
    }
  }

  #onProtectedRecord(datagram: Buffer, header: RecordHeader): void {
    const protection = this.#protection;
    if (protection === null || header.epoch !== 1 || header.version !== DTLS_1_2) {
      this.#stats.badRecordsDropped++;
      return;
    }
    // Checked before decrypting to save the work, recorded only after the record authenticates.
    if (!this.#replayWindow.accepts(header.epoch, header.sequence)) {
      this.#stats.replaysDropped++;
      return;
    }
    const plaintext = protection.open(datagram, header);
    if (plaintext === null) {
      this.#stats.badRecordsDropped++;
      return;
    }
    this.#replayWindow.mark(header.epoch, header.sequence);
    this.#stats.lastInboundSeq = this.#replayWindow.top;

    switch (header.type) {
      case ContentType.applicationData:
        // The server cannot send data before its Finished, which completes the handshake.
        if (this.#state !== 'established') break;
        this.#stats.recordsIn++;
        this.emit('message', plaintext, header.sequence);
        return;
      case ContentType.alert:
        this.#stats.recordsIn++;
        this.#onAlert(plaintext);
        return;
      case ContentType.handshake:
      case ContentType.changeCipherSpec:
        if (this.#handshake === null) {
          // A repeated server Finished, or a HelloRequest: this client does not renegotiate.
          this.#stats.lateHandshakeRecords++;
          return;
        }
        this.#stats.recordsIn++;
        this.#feedHandshake(header.type, 1, plaintext);
        return;
      default:
        break;
    }
    this.#stats.badRecordsDropped++;
  }

  #onAlert(payload: Buffer): void {
    if (payload.length !== 2) {
      this.#stats.badRecordsDropped++;
      return;
    }
    const level = payload[0]!;
    const description = payload[1]!;
    const name = alertName(description);
    if (description === AlertDescription.closeNotify) {
      // No close_notify in reply: the server already forgot this peer, and a datagram from an unknown
      // address makes node-mbed-dtls allocate a socket that it never frees.
      this.#terminate({
        reason: 'peer-closed',
        alert: name,
        error: new DtlsClientError('ERR_DTLS_PEER_CLOSED', 'server sent close_notify', { alert: description }),
      });
    } else if (level === AlertLevel.fatal) {
      this.#terminate({
        reason: 'fatal-alert',
        alert: name,
        error: new DtlsClientError('ERR_DTLS_ALERT_RECEIVED', `server sent fatal alert ${name}`, { alert: description }),
      });
    }
    // Warning alerts other than close_notify (e.g. no_renegotiation) change nothing.
  }

  // ------------------------------------------------------------------ handshake

  #feedHandshake(type: number, epoch: number, payload: Buffer): void {
    let step: HandshakeStep;
    try {
      step = this.#handshake!.handleRecord(type, epoch, payload);
    } catch (error) {
      const failure = isDtlsClientError(error)
        ? error
        : new DtlsClientError('ERR_DTLS_DECODE', 'handshake processing failed', { cause: error });
      const alert = failure.alert === undefined ? null : this.#sealAlert(AlertLevel.fatal, failure.alert);
      this.#terminate({ reason: 'handshake-failed', error: failure }, alert);
      return;
    }
    this.#applyStep(step);
  }

  #applyStep(step: HandshakeStep): void {
    if (step.keys !== undefined) {
      this.#protection = recordProtectionFor('client', step.keys);
    }
    if (step.flight !== undefined) {
      this.#sendFlight(step.flight);
      this.#retransmitTimer.flightSent();
    } else if (step.retransmit === true) {
      this.#retransmitFlight();
    }
    if (step.established === true) this.#onEstablished();
  }

  #onEstablished(): void {
    this.#retransmitTimer.stop();
    this.#session = this.#handshake!.sessionInfo;
    this.#handshake = null;
    this.#state = 'established';
    this.#stats.handshakes++;
    const resolve = this.#resolveConnect!;
    this.#resolveConnect = null;
    this.#rejectConnect = null;
    resolve();
  }

  #retransmitFlight(): void {
    if (this.#handshake === null) return;
    this.#stats.handshakeRetransmissions++;
    this.#sendFlight(this.#handshake.lastFlight);
  }

  #onHandshakeTimeout(retransmissions: number): void {
    if (this.#state !== 'connecting') return;
    const lastError = this.#lastSocketError === null ? '' : ` (last socket error: ${this.#lastSocketError.message})`;
    this.#terminate({
      reason: 'handshake-failed',
      error: new DtlsClientError('ERR_DTLS_HANDSHAKE_TIMEOUT',
        `no handshake with ${this.#options.host}:${this.#options.port} after ${retransmissions} retransmissions${lastError}`),
    });
  }

  // ------------------------------------------------------------------ outbound

  #sendFlight(records: readonly OutgoingRecord[]): void {
    // One record per datagram: the server handles coalesced records one datagram late.
    for (const record of records) {
      if (record.epoch === 0) {
        this.#transmit(encodePlaintextRecord(record.type, 0, this.#epoch0Sequence++, record.payload));
      } else {
        const sequence = this.#epoch1Sequence++;
        this.#stats.lastOutboundSeq = sequence;
        this.#transmit(this.#protection!.seal(record.type, 1, sequence, record.payload));
      }
    }
  }

  /** An alert record in the current write epoch: plaintext until our keys exist. */
  #sealAlert(level: number, description: number): Buffer {
    const payload = Buffer.of(level, description);
    if (this.#protection === null) return encodePlaintextRecord(ContentType.alert, 0, this.#epoch0Sequence++, payload);
    const sequence = this.#epoch1Sequence++;
    this.#stats.lastOutboundSeq = sequence;
    return this.#protection.seal(ContentType.alert, 1, sequence, payload);
  }

  /** No send callback: it would cost a tick per datagram, and send errors reach the socket's 'error' event. */
  #transmit(datagram: Buffer): void {
    this.#stats.recordsOut++;
    this.#stats.bytesOut += datagram.length;
    this.#socket!.send(datagram);
  }

  readonly #onSocketError = (error: Error): void => {
    this.#stats.socketErrors++;
    this.#lastSocketError = error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined && TRANSIENT_SOCKET_ERRORS.has(code)) return;
    if (this.#state === 'closed') return;
    this.#terminate({ reason: 'socket-error', error: asSocketError(error, 'UDP socket failed') });
  };

  // ------------------------------------------------------------------ teardown

  /** Ends the session once; `farewell` (close_notify or a fatal alert) leaves before the socket closes. */
  #terminate(info: CloseInfo, farewell: Buffer | null = null): void {
    if (this.#state === 'closed') return;
    const wasConnecting = this.#state === 'connecting';
    this.#state = 'closed';
    this.#retransmitTimer.stop();
    this.#handshake = null;
    this.#protection = null;
    const socket = this.#socket;
    if (socket !== null) {
      socket.off('message', this.#onDatagram);
      const closeSocket = (): void => {
        try {
          socket.close();
        } catch {
          // Already closed.
        }
      };
      if (farewell === null) {
        closeSocket();
      } else {
        this.#stats.recordsOut++;
        this.#stats.bytesOut += farewell.length;
        socket.send(farewell, closeSocket);
      }
    }

    if (wasConnecting && this.#rejectConnect !== null) {
      const reject = this.#rejectConnect;
      this.#resolveConnect = null;
      this.#rejectConnect = null;
      reject(info.error ?? new DtlsClientError('ERR_DTLS_CLOSED', 'closed before the handshake completed'));
    }
    this.emit('close', info);
    if (info.error !== undefined && info.reason === 'socket-error' && this.listenerCount('error') > 0) {
      this.emit('error', info.error);
    }
  }
}

function isHandshakeContent(type: number): boolean {
  return type === ContentType.handshake || type === ContentType.changeCipherSpec;
}

function asSocketError(error: unknown, message: string): DtlsClientError {
  if (isDtlsClientError(error)) return error;
  const detail = error instanceof Error ? `: ${error.message}` : '';
  return new DtlsClientError('ERR_DTLS_SOCKET', `${message}${detail}`, { cause: error });
}

/** Runs bind/connect, turning the socket's 'error' event during setup into a rejection. */
function settleSocket(socket: Socket, start: (done: (error?: Error) => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    start((error?: Error) => {
      socket.off('error', onError);
      if (error) reject(error);
      else resolve();
    });
  });
}
