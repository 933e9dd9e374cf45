import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { DEVICE_FINGERPRINT_BYTES } from '../../api/device-identity.ts';
import type { Session } from '../session/session.ts';

/**
 * Carries device payloads to the upstream UDP service and its replies back.
 *
 * - `per-session` (default): each session gets its own upstream socket, so the backend tells devices
 *   apart by source port and needs no change. Sockets open on first use and close when idle.
 * - `prefixed`: one shared socket; every datagram both ways starts with the 32-byte device
 *   fingerprint (SHA-256 of its raw public key), so the backend knows which device spoke.
 */
export type UpstreamMode = 'per-session' | 'prefixed';

/** Resolved once at start: an IP address, not a name, so no lookup happens per datagram. */
export interface UpstreamTarget {
  host: string;
  port: number;
}

export interface ForwarderEvents {
  reply(session: Session, payload: Buffer): void;
  /** Sent to or received from upstream (payload bytes, prefix excluded). */
  sent(bytes: number): void;
  received(bytes: number): void;
  error(error: Error): void;
}

/** Marks a session known to the shared socket in prefixed mode. */
const PREFIXED = Symbol('prefixed');

interface UpstreamSlot {
  socket: dgram.Socket;
  lastUsedAt: number;
}

export class UpstreamForwarder {
  private readonly target: UpstreamTarget;
  private readonly mode: UpstreamMode;
  private readonly events: ForwarderEvents;
  private readonly now: () => number;
  private readonly type: 'udp4' | 'udp6';
  private shared: dgram.Socket | null = null;
  /** prefixed mode: fingerprint (hex) -> session, to route replies. */
  private readonly byFingerprint = new Map<string, Session>();
  private readonly slots = new Set<Session>();

  constructor(options: { target: UpstreamTarget; mode: UpstreamMode; events: ForwarderEvents; now?: () => number }) {
    this.target = options.target;
    this.mode = options.mode;
    this.events = options.events;
    this.now = options.now ?? Date.now;
    if (isIP(options.target.host) === 0) throw new TypeError(`upstream host must be resolved to an IP address first, got "${options.target.host}"`);
    this.type = isIP(options.target.host) === 6 ? 'udp6' : 'udp4';
  }

  get openSockets(): number {
    return this.slots.size + (this.shared === null ? 0 : 1);
  }

  forward(session: Session, payload: Buffer): void {
    if (this.mode === 'prefixed') {
      const socket = this.sharedSocket();
      // Registered once per session, so replies can find it; not again per datagram.
      if (session.upstream !== PREFIXED) {
        this.byFingerprint.set(session.deviceId, session);
        session.upstream = PREFIXED;
      }
      socket.send([session.fingerprint, payload], this.target.port, this.target.host, this.onSendError);
    } else {
      this.slotOf(session).socket.send(payload, this.target.port, this.target.host, this.onSendError);
    }
    this.events.sent(payload.length);
  }

  /** A session ended or moved away: its upstream socket goes. */
  forget(session: Session): void {
    const upstream = session.upstream;
    session.upstream = undefined;
    if (upstream === PREFIXED) {
      if (this.byFingerprint.get(session.deviceId) === session) this.byFingerprint.delete(session.deviceId);
    } else if (upstream !== undefined) {
      this.slots.delete(session);
      (upstream as UpstreamSlot).socket.close();
    }
  }

  /** Closes per-session sockets unused for `idleMs`. */
  sweep(idleMs: number, now = this.now()): void {
    for (const session of this.slots) {
      const slot = session.upstream as UpstreamSlot;
      if (now - slot.lastUsedAt >= idleMs) this.forget(session);
    }
  }

  close(): void {
    for (const session of [...this.slots]) this.forget(session);
    this.shared?.close();
    this.shared = null;
    this.byFingerprint.clear();
  }

  private readonly onSendError = (error: Error | null): void => {
    if (error !== null) this.events.error(error);
  };

  /** Unconnected sockets take datagrams from anyone; only the upstream's count as replies. */
  private fromUpstream(rinfo: { address: string; port: number }): boolean {
    return rinfo.port === this.target.port && rinfo.address === this.target.host;
  }

  private slotOf(session: Session): UpstreamSlot {
    let slot = session.upstream as UpstreamSlot | undefined;
    if (slot === undefined) {
      const socket = dgram.createSocket(this.type);
      socket.on('error', (error) => this.events.error(error));
      socket.on('message', (payload, rinfo) => {
        if (session.upstream !== slot || !this.fromUpstream(rinfo)) return;
        slot!.lastUsedAt = this.now();
        this.events.received(payload.length);
        this.events.reply(session, payload);
      });
      slot = { socket, lastUsedAt: this.now() };
      session.upstream = slot;
      this.slots.add(session);
    }
    slot.lastUsedAt = this.now();
    return slot;
  }

  private sharedSocket(): dgram.Socket {
    if (this.shared === null) {
      const socket = dgram.createSocket(this.type);
      socket.on('error', (error) => this.events.error(error));
      socket.on('message', (datagram, rinfo) => {
        if (!this.fromUpstream(rinfo)) return;
        if (datagram.length < DEVICE_FINGERPRINT_BYTES) {
          this.events.error(new Error(`upstream datagram of ${datagram.length} bytes is shorter than the ${DEVICE_FINGERPRINT_BYTES}-byte device prefix`));
          return;
        }
        const session = this.byFingerprint.get(datagram.toString('hex', 0, DEVICE_FINGERPRINT_BYTES));
        if (session === undefined) return;
        const payload = datagram.subarray(DEVICE_FINGERPRINT_BYTES);
        this.events.received(payload.length);
        this.events.reply(session, payload);
      });
      this.shared = socket;
    }
    return this.shared;
  }
}
