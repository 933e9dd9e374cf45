import { RelayError } from '../errors.ts';
import type { ExportedSession } from '../session/exported.ts';
import { parsePeerKey, type PeerAddress, type Session } from '../session/session.ts';

/**
 * Snapshots of the relay's sessions for a handover: the full state, a lazy pre-copy taken while the
 * relay keeps serving, and the delta that completes a pre-copy once the relay paused.
 */

/** What snapshots read: implemented by the DTLS adapter. */
export interface SessionSource {
  allSessions(): IterableIterator<Session>;
  sessionAt(key: string): Session | undefined;
  /** Null when the session is no longer in the table. */
  exportSession(session: Session): ExportedSession | null;
  /** Last states of the sessions that leave, until the returned function is called. */
  watchDepartures(listener: (session: Session, lastState: ExportedSession | null) => void): () => void;
}

/**
 * A session's version: its serial (a session replaced at the same address differs) and its record
 * counters. Its secrets, sequence numbers and replay window move only with records.
 */
export interface SessionVersion {
  serial: number;
  recordsIn: number;
  recordsOut: number;
}

export interface LazySnapshot {
  readonly count: number;
  /** Filled in as `sessions` is read: each session's version when it was exported. */
  readonly versions: Map<string, SessionVersion>;
  readonly sessions: Iterable<ExportedSession>;
}

/**
 * Every session, now. The caller must stop traffic first (pause), or sessions go on encrypting
 * after the snapshot and the successor would reuse their nonces.
 */
export function snapshotAll(source: SessionSource): ExportedSession[] {
  const out: ExportedSession[] = [];
  for (const session of source.allSessions()) {
    const exported = source.exportSession(session);
    if (exported !== null) out.push(exported);
  }
  return out;
}

/**
 * A snapshot taken session by session as it is read: the list of sessions is fixed now, and each
 * session's state and version are read together when the iterator reaches it. Changes made in
 * between are caught by the delta (their version moved). A listed session that leaves the table
 * before it is read is delivered as it last was (the delta then lists it as removed).
 */
export function lazySnapshot(source: SessionSource): LazySnapshot {
  const listed = [...source.allSessions()];
  const versions = new Map<string, SessionVersion>();
  // At most one entry per session that left while the snapshot was being read.
  const departed = new Map<Session, ExportedSession>();
  const stopWatching = source.watchDepartures((session, lastState) => {
    if (lastState !== null) departed.set(session, lastState);
  });
  const exportOne = (session: Session): ExportedSession => {
    versions.set(session.key, { serial: session.serial, recordsIn: session.recordsIn, recordsOut: session.recordsOut });
    const state = departed.get(session) ?? source.exportSession(session);
    departed.delete(session);
    if (state === null) throw new RelayError('ERR_RELAY_HANDOVER', `session ${session.key} left without a state to hand over`);
    return state;
  };
  return {
    count: listed.length,
    versions,
    sessions: (function* () {
      try {
        for (const session of listed) yield exportOne(session);
      } finally {
        stopWatching();
        departed.clear();
      }
    })(),
  };
}

/** The delta against a pre-copy: sessions new or changed since `versions`, and the ones gone. */
export function changedSince(source: SessionSource, versions: ReadonlyMap<string, SessionVersion>): { changed: ExportedSession[]; removed: PeerAddress[] } {
  const changed: ExportedSession[] = [];
  for (const session of source.allSessions()) {
    const before = versions.get(session.key);
    if (before !== undefined && before.serial === session.serial && before.recordsIn === session.recordsIn && before.recordsOut === session.recordsOut) continue;
    const exported = source.exportSession(session);
    if (exported !== null) changed.push(exported);
  }
  const removed: PeerAddress[] = [];
  for (const key of versions.keys()) {
    if (source.sessionAt(key) === undefined) removed.push(parsePeerKey(key));
  }
  return { changed, removed };
}
