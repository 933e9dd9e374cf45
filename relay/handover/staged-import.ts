import { StateDecoder } from '../../api/state-codec.ts';
import type { SessionState, StateHeader } from '../../api/state-format.ts';
import { RelayError } from '../errors.ts';
import { Arena } from '../session/arena.ts';
import { importedEntry } from '../session/exported.ts';
import { wipeSecrets } from '../session/secrets.ts';
import { peerKey, type PeerAddress, type Session, type Via } from '../session/session.ts';
import type { SessionEntry } from '../session/table.ts';
import { fenceSequence } from './fence.ts';

/** Where staged sessions go on commit: implemented by the DTLS adapter. */
export interface ImportTarget {
  /** How many more sessions fit. */
  readonly room: number;
  /** Adds parked entries all or none; throws ERR_RELAY_CAPACITY when they do not fit. */
  adopt(entries: ReadonlyArray<SessionEntry<never>>): Session[];
}

export interface ImportStageOptions {
  /** The route of the imported sessions' answers (the straggler tunnel, or null). */
  via?: Via;
  /**
   * Where long-lived bytes (secrets, device keys) are carved from. A restore takes a fresh one (the
   * default), so that a failed import gives all of it back at once; claims, which import a few
   * sessions at a time, share one so that each does not pin a slab of its own.
   */
  arena?: Arena;
}

/**
 * An all-or-nothing import of sessions from another relay (a restore's pre-copy and delta, a claim
 * answer). Records are built into parked, compact sessions as they arrive, with the nonce fence
 * applied, but join the table only on `commit()`; `discard()` wipes them and keeps nothing.
 *
 * Bounded by the room the relay had when the stage was opened: a stream whose header announces
 * more sessions than that is refused before any of its records is read, and no more sessions than
 * that are ever staged.
 */
export class ImportStage {
  private readonly target: ImportTarget;
  private readonly via: Via;
  private readonly arena: Arena;
  private readonly room: number;
  private readonly staged = new Map<string, SessionEntry<never>>();
  /** Sessions too close to 2^48 to fence: left out, their devices handshake again. */
  private readonly skippedKeys = new Set<string>();
  private open = true;
  private largest = 0;

  constructor(target: ImportTarget, options: ImportStageOptions = {}) {
    this.target = target;
    this.via = options.via ?? null;
    this.arena = options.arena ?? new Arena();
    this.room = target.room;
  }

  get size(): number {
    return this.staged.size;
  }

  get skipped(): number {
    return this.skippedKeys.size;
  }

  /** The most sessions staged at once: what a failed import held before it gave everything back. */
  get peak(): number {
    return this.largest;
  }

  /**
   * A decoder that feeds this stage. A full stream replaces what was staged; a delta of
   * `precopyId` (a pre-copy read into this stage) amends it.
   */
  decoder(now: number, precopyId?: string): StateDecoder {
    return new StateDecoder({ now, onHeader: (header) => this.beginStream(header, precopyId), onSession: (session) => this.add(session) });
  }

  /** A stream's header arrived: see `decoder`. Refuses one that announces more sessions than fit. */
  beginStream(header: StateHeader, precopyId?: string): void {
    this.checkOpen();
    const delta = precopyId !== undefined && header.base === precopyId;
    if (!delta) this.reset();
    else for (const peer of header.removed ?? []) this.remove(peer);
    // Records of one stream are distinct sessions: announcing more than fit means they cannot fit.
    if (header.count > this.room) throw this.capacityError(`the state from ${header.source} announces ${header.count} sessions`);
  }

  /** Stages one session with the nonce fence applied; replaces one staged at the same address. */
  add(state: SessionState): void {
    this.checkOpen();
    const key = peerKey(state.peer);
    const previous = this.staged.get(key);
    const outSeq = fenceSequence(state.dtls.outSeq);
    if (outSeq === null) {
      this.skippedKeys.add(key);
      if (previous !== undefined) this.drop(key, previous);
      return;
    }
    this.skippedKeys.delete(key);
    if (previous === undefined && this.staged.size >= this.room) throw this.capacityError(`staging session ${this.staged.size + 1}`);
    if (previous !== undefined) wipe(previous);
    this.staged.set(key, importedEntry({ ...state, dtls: { ...state.dtls, outSeq } }, this.via, this.arena));
    if (this.staged.size > this.largest) this.largest = this.staged.size;
  }

  remove(peer: PeerAddress): void {
    const key = peerKey(peer);
    this.skippedKeys.delete(key);
    const entry = this.staged.get(key);
    if (entry !== undefined) this.drop(key, entry);
  }

  /** Forgets everything staged so far (a full stream replaces a pre-copy). */
  reset(): void {
    for (const entry of this.staged.values()) wipe(entry);
    this.staged.clear();
    this.skippedKeys.clear();
  }

  /** Adds everything staged to the table, all or nothing (the relay may have filled up meanwhile). */
  commit(): Session[] {
    this.checkOpen();
    this.open = false;
    const entries = [...this.staged.values()];
    this.staged.clear();
    try {
      return this.target.adopt(entries);
    } catch (error) {
      for (const entry of entries) wipe(entry);
      throw error;
    }
  }

  /** Drops everything staged; the stage cannot be used again. */
  discard(): void {
    this.open = false;
    this.reset();
  }

  private drop(key: string, entry: SessionEntry<never>): void {
    wipe(entry);
    this.staged.delete(key);
  }

  private checkOpen(): void {
    if (!this.open) throw new RelayError('ERR_RELAY_STATE', 'import stage already committed or discarded');
  }

  private capacityError(what: string): RelayError {
    return new RelayError('ERR_RELAY_CAPACITY', `${what}; this relay has room for ${this.room} more (--max-sessions)`);
  }
}

function wipe(entry: SessionEntry<never>): void {
  if (entry.secrets !== null) wipeSecrets(entry.secrets);
}
