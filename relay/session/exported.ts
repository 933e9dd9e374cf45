import { ReplayWindow } from '../../api/dtls/replay-window.ts';
import type { Arena } from './arena.ts';
import { packSecrets, type DtlsSecrets } from './secrets.ts';
import { Session, peerKey, type PeerAddress, type Via } from './session.ts';
import type { SessionEntry } from './table.ts';

/** Everything a successor relay needs to serve a session without a handshake. */
export interface ExportedSession {
  peer: PeerAddress;
  deviceKey: Buffer;
  createdAt: number;
  lastSeenAt: number;
  dtls: DtlsSecrets;
  replay: { epoch: number; top: number; window: Buffer };
}

/** A session's state as it is now, given its secrets (read from wherever the session keeps them). */
export function exportSession(session: Session, dtls: DtlsSecrets): ExportedSession {
  return {
    peer: session.peer,
    deviceKey: session.deviceKey,
    createdAt: session.createdAt,
    lastSeenAt: session.lastSeenAt,
    dtls,
    replay: { epoch: session.replay.epoch, top: session.replay.top, window: session.replay.toBytes() },
  };
}

/**
 * A parked table entry for a session another relay exported: no native socket until its first
 * datagram. Everything long-lived is copied into `arena`, so nothing keeps the decoded stream
 * alive. The caller has validated it and applied the nonce fence to `dtls.outSeq`.
 */
export function importedEntry(exported: ExportedSession, via: Via, arena: Arena): SessionEntry<never> {
  const peer = { address: exported.peer.address, port: exported.peer.port };
  const replay = ReplayWindow.fromBytes(exported.replay.epoch, exported.replay.top, exported.replay.window);
  const session = new Session(peerKey(peer), peer, via, arena.copy(exported.deviceKey), exported.createdAt, exported.lastSeenAt, replay);
  session.outEpoch = exported.dtls.outEpoch;
  session.outSequence = exported.dtls.outSeq - 1;
  session.parked = true;
  return { session, secrets: packSecrets(exported.dtls, arena), native: null };
}
