import { describe, expect, it } from 'vitest';
import { ReplayWindow } from '../../api/dtls/replay-window.ts';
import { changedSince, lazySnapshot, snapshotAll, type SessionSource } from '../../relay/handover/snapshot.ts';
import type { ExportedSession } from '../../relay/session/exported.ts';
import { Session, peerKey } from '../../relay/session/session.ts';

/** A session table reduced to what snapshots read; `leave` removes a session as the adapter would. */
function sourceOf(count: number) {
  const sessions = new Map<string, Session>();
  const listeners = new Set<(session: Session, last: ExportedSession | null) => void>();
  const stateOf = (session: Session): ExportedSession => ({
    peer: session.peer,
    deviceKey: session.deviceKey,
    createdAt: session.createdAt,
    lastSeenAt: session.lastSeenAt,
    dtls: { cipherSuite: 0xc0ae, randoms: Buffer.alloc(64), sessionId: Buffer.alloc(0), master: Buffer.alloc(48, session.recordsIn), inEpoch: 1, outEpoch: 1, outSeq: session.recordsOut },
    replay: { epoch: 1, top: session.replay.top, window: session.replay.toBytes() },
  });
  const make = (port: number): Session => {
    const peer = { address: '192.0.2.9', port };
    const session = new Session(peerKey(peer), peer, null, Buffer.alloc(91), 0, 0, new ReplayWindow(1));
    sessions.set(session.key, session);
    return session;
  };
  for (let port = 1; port <= count; port++) make(port);
  const source: SessionSource & { watching: () => number } = {
    allSessions: () => sessions.values(),
    sessionAt: (key) => sessions.get(key),
    exportSession: (session) => (sessions.get(session.key) === session ? stateOf(session) : null),
    watchDepartures: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    watching: () => listeners.size,
  };
  const leave = (session: Session): void => {
    const last = stateOf(session);
    sessions.delete(session.key);
    for (const listener of listeners) listener(session, last);
  };
  return { source, sessions, make, leave };
}

describe('snapshots', () => {
  it('takes every session at once while paused', () => {
    const { source } = sourceOf(3);
    expect(snapshotAll(source).map((s) => s.peer.port)).toEqual([1, 2, 3]);
  });

  it('reads a lazy snapshot as it goes: a session that changed is read as it is then, one that left as it last was', () => {
    const { source, sessions, make, leave } = sourceOf(3);
    const snapshot = lazySnapshot(source);
    expect(snapshot.count).toBe(3);
    const [first, second, third] = [...sessions.values()];
    second!.recordsIn = 7;
    third!.recordsOut = 9;
    leave(third!);
    make(4); // not listed: the delta will carry it
    const read = [...snapshot.sessions];
    expect(read.map((s) => s.peer.port)).toEqual([1, 2, 3]);
    expect(read[1]!.dtls.master[0]).toBe(7);
    expect(read[2]!.dtls.outSeq).toBe(9);
    expect(snapshot.versions.get(first!.key)).toEqual({ serial: first!.serial, recordsIn: 0, recordsOut: 0 });
    expect(snapshot.versions.get(second!.key)).toEqual({ serial: second!.serial, recordsIn: 7, recordsOut: 0 });
    expect(source.watching()).toBe(0);
  });

  it('stops watching departures when its reader gives up half-way', () => {
    const { source } = sourceOf(3);
    const snapshot = lazySnapshot(source);
    for (const _ of snapshot.sessions) break;
    expect(source.watching()).toBe(0);
  });

  it('computes the delta of a pre-copy: new, replaced and changed sessions, and the ones gone', () => {
    const { source, sessions, make, leave } = sourceOf(4);
    const snapshot = lazySnapshot(source);
    void [...snapshot.sessions];
    const [unchanged, changed, replaced, gone] = [...sessions.values()];
    changed!.recordsOut++;
    leave(replaced!);
    const again = make(replaced!.peer.port);
    leave(gone!);
    const fresh = make(5);
    const delta = changedSince(source, snapshot.versions);
    expect(delta.changed.map((s) => s.peer.port).sort()).toEqual([changed!.peer.port, again.peer.port, fresh.peer.port].sort());
    expect(delta.removed).toEqual([gone!.peer]);
    expect(delta.changed.some((s) => s.peer.port === unchanged!.peer.port)).toBe(false);
  });
});
