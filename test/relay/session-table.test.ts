import { describe, expect, it } from 'vitest';
import { ReplayWindow } from '../../api/dtls/replay-window.ts';
import { Arena } from '../../relay/session/arena.ts';
import { packSecrets, type PackedSecrets } from '../../relay/session/secrets.ts';
import { Session, peerKey } from '../../relay/session/session.ts';
import { SessionTable, type RemovalReason, type SessionEntry, type SessionTableLimits } from '../../relay/session/table.ts';

/** What a live entry holds in these tests instead of a native socket. */
interface FakeNative {
  readonly id: number;
}
type Entry = SessionEntry<FakeNative>;

const arena = new Arena();
const secrets = (): PackedSecrets => packSecrets({
  cipherSuite: 0xc0ae, randoms: Buffer.alloc(64, 1), master: Buffer.alloc(48, 2), sessionId: Buffer.alloc(32, 3), inEpoch: 1, outEpoch: 1, outSeq: 10,
}, arena);

/** A table on a manual clock whose owner records what the table asked of it. */
function tableOf(limits: Partial<SessionTableLimits> = {}) {
  const clock = { now: 1_000_000 };
  const parkedByTable: string[] = [];
  const removed: Array<[string, RemovalReason]> = [];
  let nextNative = 1;
  const table: SessionTable<Entry> = new SessionTable<Entry>(
    { maxSessions: 3, parkAfterIdleMs: 60_000, expireAfterIdleMs: 3_600_000, ...limits },
    {
      park: (entry) => {
        parkedByTable.push(entry.session.key);
        table.parked(entry, secrets());
      },
      removed: (entry, reason) => removed.push([entry.session.key, reason]),
    },
  );
  const entry = (port: number, live = true): Entry => {
    const peer = { address: '192.0.2.1', port };
    const session = new Session(peerKey(peer), peer, null, Buffer.alloc(91, port), clock.now, clock.now, new ReplayWindow(1));
    session.parked = !live;
    return { session, secrets: live ? null : secrets(), native: live ? { id: nextNative++ } : null };
  };
  return { table, clock, parkedByTable, removed, entry };
}

describe('SessionTable', () => {
  it('holds sessions up to capacity and refuses the next new address, but not a replacement', () => {
    const { table, entry, removed } = tableOf({ maxSessions: 2 });
    expect(table.add(entry(1))).toBe(true);
    expect(table.add(entry(2, false))).toBe(true);
    expect(table.room).toBe(0);
    const third = entry(3);
    expect(table.add(third)).toBe(false);
    expect(table.get(third.session.key)).toBeUndefined();
    expect(removed).toEqual([]);

    const again = entry(1);
    expect(table.add(again)).toBe(true);
    expect(table.get(again.session.key)).toBe(again);
    expect(removed).toEqual([['192.0.2.1:1', 'replaced']]);
    expect(table.size).toBe(2);
    expect(table.liveCount).toBe(1);
  });

  it('adds a batch all or none, counting only new addresses against capacity', () => {
    const { table, entry, removed } = tableOf({ maxSessions: 3 });
    table.add(entry(1));
    table.add(entry(2));
    expect(table.addAll([entry(3, false), entry(4, false)])).toBe(false);
    expect([...table.values()].map((e) => e.session.key)).toEqual(['192.0.2.1:1', '192.0.2.1:2']);
    expect(removed).toEqual([]);
    // Two replacements and one new address fit in one free place.
    expect(table.addAll([entry(1, false), entry(2, false), entry(3, false)])).toBe(true);
    expect(table.size).toBe(3);
    expect(table.liveCount).toBe(0);
    expect(removed).toEqual([['192.0.2.1:1', 'replaced'], ['192.0.2.1:2', 'replaced']]);
  });

  it('parks live sessions idle for parkAfterIdleMs, on the clock it is given', () => {
    const { table, entry, clock, parkedByTable } = tableOf();
    const idle = entry(1);
    const busy = entry(2);
    const parked = entry(3, false);
    for (const e of [idle, busy, parked]) table.add(e);
    clock.now += 59_999;
    busy.session.lastSeenAt = clock.now;
    table.sweep(clock.now);
    expect(parkedByTable).toEqual([]);
    clock.now += 1;
    table.sweep(clock.now);
    expect(parkedByTable).toEqual(['192.0.2.1:1']);
    expect(idle.native).toBeNull();
    expect(idle.secrets).not.toBeNull();
    expect(idle.session.parked).toBe(true);
    expect(table.liveCount).toBe(1);
    expect(table.size).toBe(3);
    // A minute later the other one is idle too; the parked one is not parked twice.
    table.sweep(clock.now + 60_000);
    expect(parkedByTable).toEqual(['192.0.2.1:1', '192.0.2.1:2']);
  });

  it('resumes a parked session into the live index and parks it again when idle', () => {
    const { table, entry, clock, parkedByTable } = tableOf();
    const e = entry(1, false);
    table.add(e);
    expect(table.liveCount).toBe(0);
    table.resumed(e, { id: 99 });
    expect(e.secrets).toBeNull();
    expect(e.session.parked).toBe(false);
    expect(table.liveCount).toBe(1);
    table.sweep(clock.now + 60_000);
    expect(parkedByTable).toEqual(['192.0.2.1:1']);
    expect(table.liveCount).toBe(0);
  });

  it('expires sessions idle for expireAfterIdleMs, live or parked, through the one removal path', () => {
    const { table, entry, clock, removed, parkedByTable } = tableOf({ parkAfterIdleMs: 10_000, expireAfterIdleMs: 20_000 });
    const live = entry(1);
    const parked = entry(2, false);
    const fresh = entry(3);
    for (const e of [live, parked, fresh]) table.add(e);
    fresh.session.lastSeenAt = clock.now + 15_000;
    table.sweep(clock.now + 20_000);
    expect(removed).toEqual([['192.0.2.1:1', 'expired'], ['192.0.2.1:2', 'expired']]);
    // An expiring session is removed, not parked first.
    expect(parkedByTable).toEqual([]);
    expect(table.size).toBe(1);
    expect(table.liveCount).toBe(1);
    expect(table.get(live.session.key)).toBeUndefined();
  });

  it('removal cleans every index, tells the owner exactly once, and ignores an entry it does not hold', () => {
    const { table, entry, removed, clock, parkedByTable } = tableOf();
    const e = entry(1);
    table.add(e);
    expect(table.remove(e, 'error')).toBe(true);
    expect(table.get(e.session.key)).toBeUndefined();
    expect(table.liveCount).toBe(0);
    expect(table.size).toBe(0);
    expect(table.holds(e)).toBe(false);
    expect(table.remove(e, 'error')).toBe(false);
    expect(removed).toEqual([['192.0.2.1:1', 'error']]);
    // A removed live entry is not in the live index any more: a sweep does not park it.
    table.sweep(clock.now + 3_600_000);
    expect(parkedByTable).toEqual([]);
    // A replaced entry is no longer held: removing the old one leaves the new one alone.
    const first = entry(2);
    const second = entry(2);
    table.add(first);
    table.add(second);
    expect(table.remove(first, 'discarded')).toBe(false);
    expect(table.get(second.session.key)).toBe(second);
    expect(table.room).toBe(2);
  });

  it('clears everything for one reason, and parks all live entries on demand', () => {
    const { table, entry, removed, parkedByTable } = tableOf();
    table.add(entry(1));
    table.add(entry(2));
    table.add(entry(3, false));
    table.parkAll();
    expect(parkedByTable).toEqual(['192.0.2.1:1', '192.0.2.1:2']);
    expect(table.liveCount).toBe(0);
    table.clear('discarded');
    expect(removed.map(([, reason]) => reason)).toEqual(['discarded', 'discarded', 'discarded']);
    expect(table.size).toBe(0);
    expect(table.room).toBe(3);
  });
});
