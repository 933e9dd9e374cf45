import type { PeerAddress } from '../session/session.ts';

/**
 * What reaches a paused relay while it hands its sessions over: device datagrams and upstream
 * replies. Nothing may be decrypted or encrypted then (the successor owns the sequence numbers from
 * the snapshot on), so they wait here and go to the successor after commit, or back into this relay
 * on abort. Bounded in datagrams and bytes; beyond that new arrivals are dropped and counted.
 */
export type PausedItem =
  | { kind: 'device'; datagram: Buffer; peer: PeerAddress }
  | { kind: 'upstream'; payload: Buffer; peer: PeerAddress };

export class PauseQueue {
  private items: PausedItem[] = [];
  private bytes = 0;
  dropped = 0;
  readonly maxItems: number;
  readonly maxBytes: number;

  constructor(maxItems = 50_000, maxBytes = 32 * 1024 * 1024) {
    this.maxItems = maxItems;
    this.maxBytes = maxBytes;
  }

  get length(): number {
    return this.items.length;
  }

  push(item: PausedItem): boolean {
    const size = item.kind === 'device' ? item.datagram.length : item.payload.length;
    if (this.items.length >= this.maxItems || this.bytes + size > this.maxBytes) {
      this.dropped++;
      return false;
    }
    this.items.push(item);
    this.bytes += size;
    return true;
  }

  /** Empties the queue, oldest first. */
  drain(): PausedItem[] {
    const items = this.items;
    this.items = [];
    this.bytes = 0;
    return items;
  }
}
