import type { ReplayWindow } from '../dtls/replay-window.ts';

/** Where a device's datagrams come from and answers go to. */
export interface PeerAddress {
  readonly address: string;
  readonly port: number;
}

/**
 * How a datagram reached the relay: straight from the device, or through the straggler tunnel of
 * an old relay (then answers must go back the same way, so NAT and load-balancer mappings hold).
 * Opaque to the session layer.
 */
export type Via = object | null;

/** A DTLS session the relay serves, as the rest of the relay sees it. Mutated only by the adapter. */
export interface Session {
  readonly key: string;
  peer: PeerAddress;
  via: Via;
  readonly deviceKey: Buffer;
  readonly deviceId: string;
  /** SHA-256 of the device key: what upstream prefixing carries. */
  readonly fingerprint: Buffer;
  readonly createdAt: number;
  lastSeenAt: number;
  recordsIn: number;
  recordsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Highest authenticated inbound record, and the window below it. */
  readonly replay: ReplayWindow;
  /** Epoch and sequence number of the last record sent. -1 before the first. */
  outEpoch: number;
  outSequence: number;
  /** True while the session holds no native socket (idle, or restored and not yet resumed). */
  parked: boolean;
  /** Slot for the upstream forwarder; the adapter never reads it. */
  upstream: unknown;
}

export function peerKey(peer: PeerAddress): string {
  return peer.address.includes(':') ? `[${peer.address}]:${peer.port}` : `${peer.address}:${peer.port}`;
}
