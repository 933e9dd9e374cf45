import { deviceFingerprint } from '../../api/device-identity.ts';
import type { ReplayWindow } from '../../api/dtls/replay-window.ts';
import { view, type ArenaRef } from './arena.ts';

/** Where a device's datagrams come from and answers go to. */
export interface PeerAddress {
  readonly address: string;
  readonly port: number;
}

/**
 * How a datagram reached the relay: straight from the device (null), or through the straggler
 * tunnel of an old relay (then answers must go back the same way, so NAT and load-balancer mappings
 * hold). Opaque to the session layer.
 */
export type Via = object | null;

/**
 * A DTLS session the relay serves, as the rest of the relay sees it. Mutated only by the DTLS adapter
 * and the session table. A relay may hold 100,000 of these mostly parked, so it is kept small: the
 * fingerprint and the device id are computed on first use.
 */
let nextSerial = 1;

export class Session {
  /** Unique in this process: tells a replaced session from the one it replaced at the same address. */
  readonly serial = nextSerial++;
  readonly key: string;
  peer: PeerAddress;
  via: Via;
  readonly createdAt: number;
  lastSeenAt: number;
  recordsIn = 0;
  recordsOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Highest authenticated inbound record, and the window below it. */
  readonly replay: ReplayWindow;
  /** Epoch and sequence number of the last record sent. -1 before the first. */
  outEpoch = -1;
  outSequence = -1;
  /** True while the session holds no native socket (idle, or restored and not yet resumed). */
  parked = false;
  /** Slot for the upstream forwarder; the adapter never reads it. */
  upstream: unknown = undefined;
  readonly #deviceKey: ArenaRef;
  #fingerprint: Buffer | undefined;
  #deviceId: string | undefined;

  constructor(key: string, peer: PeerAddress, via: Via, deviceKey: ArenaRef | Buffer, createdAt: number, lastSeenAt: number, replay: ReplayWindow) {
    this.key = key;
    this.peer = peer;
    this.via = via;
    this.#deviceKey = Buffer.isBuffer(deviceKey) ? { slab: deviceKey, offset: 0, length: deviceKey.length } : deviceKey;
    this.createdAt = createdAt;
    this.lastSeenAt = lastSeenAt;
    this.replay = replay;
  }

  /** SubjectPublicKeyInfo DER of the device key (RFC 7250): a view made on each call, kept by nobody. */
  get deviceKey(): Buffer {
    return view(this.#deviceKey);
  }

  /** SHA-256 of the device key: what upstream prefixing carries. */
  get fingerprint(): Buffer {
    return (this.#fingerprint ??= deviceFingerprint(this.deviceKey));
  }

  /** The fingerprint in hex: the device id of logs, metrics and the state format. */
  get deviceId(): string {
    return (this.#deviceId ??= this.fingerprint.toString('hex'));
  }
}

export function peerKey(peer: PeerAddress): string {
  return peer.address.includes(':') ? `[${peer.address}]:${peer.port}` : `${peer.address}:${peer.port}`;
}

/** The inverse of peerKey. */
export function parsePeerKey(key: string): PeerAddress {
  const colon = key.lastIndexOf(':');
  const host = key.slice(0, colon);
  return { address: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(key.slice(colon + 1)) };
}
