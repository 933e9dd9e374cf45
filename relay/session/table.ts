import type { PackedSecrets } from './secrets.ts';
import type { Session } from './session.ts';

/**
 * The relay's sessions by device address: capacity, the index of live sessions (those holding a
 * native socket), idle parking and expiry, and one removal path that cleans every index. No I/O
 * and no clock of its own: time comes in with `sweep(now)`. What a live entry holds natively is
 * its owner's business; the table only tells the owner when to park an entry and when one is gone.
 *
 * Kept narrow on purpose (get, add, remove, the live/parked transitions, sweep) so that its
 * storage can change without touching its users.
 */

/** Why a session was closed; reported to the relay (metrics, upstream socket). */
export type CloseReason = 'peer-closed' | 'error' | 'expired' | 'replaced' | 'evicted' | 'shutdown';

/**
 * Why an entry left the table: a close, or `discarded`: the session lives on elsewhere (handed
 * over, claimed by a sibling) or its import was undone, so nobody is told.
 */
export type RemovalReason = CloseReason | 'discarded';

export interface SessionEntry<Native = unknown> {
  readonly session: Session;
  /** While parked: the secrets, packed. Null while live. */
  secrets: PackedSecrets | null;
  /** While live: what the owner keeps for the native socket. Null while parked. */
  native: Native | null;
}

export interface SessionTableLimits {
  /** Established plus parked sessions. */
  readonly maxSessions: number;
  /** A live session idle this long is parked. */
  readonly parkAfterIdleMs: number;
  /** A session idle this long is removed ('expired'). */
  readonly expireAfterIdleMs: number;
}

export interface SessionTableEvents<E> {
  /** An idle live entry: pack its secrets and free its native socket, then call `table.parked`. */
  park(entry: E): void;
  /** The entry has left every index (called exactly once per entry that leaves). */
  removed(entry: E, reason: RemovalReason): void;
}

export class SessionTable<E extends SessionEntry> {
  readonly limits: Readonly<SessionTableLimits>;
  private readonly events: SessionTableEvents<E>;
  private readonly byKey = new Map<string, E>();
  private readonly live = new Set<E>();

  constructor(limits: SessionTableLimits, events: SessionTableEvents<E>) {
    this.limits = limits;
    this.events = events;
  }

  get size(): number {
    return this.byKey.size;
  }

  get liveCount(): number {
    return this.live.size;
  }

  /** How many more sessions fit. */
  get room(): number {
    return Math.max(0, this.limits.maxSessions - this.byKey.size);
  }

  get(key: string): E | undefined {
    return this.byKey.get(key);
  }

  /** True when `entry` is the one the table holds for its address. */
  holds(entry: E): boolean {
    return this.byKey.get(entry.session.key) === entry;
  }

  values(): IterableIterator<E> {
    return this.byKey.values();
  }

  /** Adds an entry, replacing one at the same address. False (and nothing changes) when the table is full. */
  add(entry: E): boolean {
    const previous = this.byKey.get(entry.session.key);
    if (previous === undefined && this.byKey.size >= this.limits.maxSessions) return false;
    if (previous !== undefined) this.remove(previous, 'replaced');
    this.insert(entry);
    return true;
  }

  /**
   * Adds all entries or none: false when the ones at new addresses do not fit. Entries at an
   * address already held replace what is there.
   */
  addAll(entries: readonly E[]): boolean {
    // Counting the new addresses is needed only when all of them being new would not fit.
    if (this.byKey.size + entries.length > this.limits.maxSessions) {
      let added = 0;
      for (const entry of entries) if (!this.byKey.has(entry.session.key)) added++;
      if (this.byKey.size + added > this.limits.maxSessions) return false;
    }
    for (const entry of entries) {
      const previous = this.byKey.get(entry.session.key);
      if (previous !== undefined) this.remove(previous, 'replaced');
      this.insert(entry);
    }
    return true;
  }

  /** The one way out of the table: every index forgets the entry, then the owner is told once. */
  remove(entry: E, reason: RemovalReason): boolean {
    if (this.byKey.get(entry.session.key) !== entry) return false;
    this.byKey.delete(entry.session.key);
    this.live.delete(entry);
    this.events.removed(entry, reason);
    return true;
  }

  /** Removes every entry (for `reason`), e.g. at shutdown. */
  clear(reason: RemovalReason): void {
    for (const entry of this.byKey.values()) this.remove(entry, reason);
  }

  /** The entry holds a native socket now (it was resumed). */
  resumed(entry: E, native: NonNullable<E['native']>): void {
    entry.native = native;
    entry.secrets = null;
    entry.session.parked = false;
    if (this.holds(entry)) this.live.add(entry);
  }

  /** The entry gave its native socket back; `secrets` is what it keeps instead. */
  parked(entry: E, secrets: PackedSecrets): void {
    entry.native = null;
    entry.secrets = secrets;
    entry.session.parked = true;
    this.live.delete(entry);
  }

  /** Removes sessions idle past expiry and parks live ones idle past the park time. */
  sweep(now: number): void {
    const { expireAfterIdleMs, parkAfterIdleMs } = this.limits;
    for (const entry of this.byKey.values()) {
      if (now - entry.session.lastSeenAt >= expireAfterIdleMs) this.remove(entry, 'expired');
    }
    for (const entry of this.live) {
      if (now - entry.session.lastSeenAt >= parkAfterIdleMs) this.events.park(entry);
    }
  }

  /** Parks every live entry now (before a snapshot, and in tests). */
  parkAll(): void {
    for (const entry of this.live) this.events.park(entry);
  }

  private insert(entry: E): void {
    this.byKey.set(entry.session.key, entry);
    if (entry.native !== null) this.live.add(entry);
  }
}
