import { describe, expect, it } from 'vitest';
import { MAX_SEQUENCE_NUMBER } from '../../api/dtls/constants.ts';
import { encodeSessions } from '../../api/state-codec.ts';
import type { SessionState } from '../../api/state-format.ts';
import { NONCE_FENCE } from '../../relay/handover/fence.ts';
import { ImportStage, type ImportTarget } from '../../relay/handover/staged-import.ts';
import { collectGarbageNow } from '../../relay/memory.ts';
import { unpackSecrets } from '../../relay/session/secrets.ts';
import type { Session } from '../../relay/session/session.ts';
import type { SessionEntry } from '../../relay/session/table.ts';
import { FIXTURE_CREATED_AT, fixtureSessions } from '../fixtures/state/fixtures.ts';

/** A relay's table as the stage sees it: room, and what it adopted. */
function targetWithRoom(room: number) {
  const adopted: Array<SessionEntry<never>> = [];
  const target: ImportTarget & { adopted: typeof adopted; room: number } = {
    room,
    adopted,
    adopt(entries): Session[] {
      if (entries.length > this.room) throw Object.assign(new Error('full'), { code: 'ERR_RELAY_CAPACITY' });
      adopted.push(...entries);
      return entries.map((entry) => entry.session);
    },
  };
  return target;
}

function sessions(n: number, port = 1): SessionState[] {
  const [template] = fixtureSessions();
  return Array.from({ length: n }, (_, i) => ({ ...template!, peer: { address: `10.1.${(i >> 8) & 255}.${i & 255}`, port } }));
}

const stream = (list: SessionState[], extra: { base?: string; removed?: SessionState['peer'][] } = {}): Buffer =>
  encodeSessions({ source: 'relay-a-0', createdAt: FIXTURE_CREATED_AT, count: list.length, ...extra }, list);

function feed(stage: ImportStage, bytes: Buffer, precopyId?: string): void {
  const decoder = stage.decoder(FIXTURE_CREATED_AT, precopyId);
  decoder.push(bytes);
  decoder.finish();
}

describe('ImportStage', () => {
  it('builds parked sessions with the nonce fence applied, and hands them over only on commit', () => {
    const target = targetWithRoom(10);
    const stage = new ImportStage(target);
    const [first] = sessions(1);
    feed(stage, stream([first!]));
    expect(stage.size).toBe(1);
    expect(target.adopted).toEqual([]);
    const [session] = stage.commit();
    expect(session!.parked).toBe(true);
    expect(session!.outSequence).toBe(first!.dtls.outSeq + NONCE_FENCE - 1);
    expect(unpackSecrets(target.adopted[0]!.secrets!).outSeq).toBe(first!.dtls.outSeq + NONCE_FENCE);
    expect(unpackSecrets(target.adopted[0]!.secrets!).master).toEqual(first!.dtls.master);
    expect(() => stage.commit()).toThrow(expect.objectContaining({ code: 'ERR_RELAY_STATE' }));
  });

  it('leaves out a session too close to 2^48 to fence, and what was staged at its address', () => {
    const stage = new ImportStage(targetWithRoom(10));
    const [a, b] = sessions(2);
    feed(stage, stream([a!, b!]));
    stage.add({ ...b!, dtls: { ...b!.dtls, outSeq: MAX_SEQUENCE_NUMBER - NONCE_FENCE + 1 } });
    expect(stage.size).toBe(1);
    expect(stage.skipped).toBe(1);
  });

  it('starts over for a full stream after a pre-copy, and amends the pre-copy with a delta of it', () => {
    const stage = new ImportStage(targetWithRoom(10));
    const list = sessions(4);
    feed(stage, stream(list.slice(0, 3)));
    expect(stage.size).toBe(3);
    // A delta of pre-copy "p1": one session gone, one new.
    feed(stage, stream([list[3]!], { base: 'p1', removed: [list[0]!.peer] }), 'p1');
    expect(stage.size).toBe(3);
    // A stream that is not a delta of our pre-copy replaces everything.
    feed(stage, stream([list[0]!], { base: 'other', removed: [] }), 'p1');
    expect(stage.size).toBe(1);
    feed(stage, stream(list.slice(1, 3)));
    expect(stage.size).toBe(2);
  });

  it('refuses a stream announcing more than the room before decoding a record, and never stages past the room', () => {
    const target = targetWithRoom(3);
    const stage = new ImportStage(target);
    const decoder = stage.decoder(FIXTURE_CREATED_AT);
    const tooMany = stream(sessions(4));
    expect(() => decoder.push(tooMany)).toThrow(expect.objectContaining({ code: 'ERR_RELAY_CAPACITY', message: expect.stringContaining('announces 4 sessions') }));
    expect(decoder.recordsRead).toBe(0);
    // A delta may announce few records yet grow the staged set past the room.
    feed(stage, stream(sessions(3)));
    expect(() => feed(stage, stream(sessions(1, 2), { base: 'p1', removed: [] }), 'p1')).toThrow(expect.objectContaining({ code: 'ERR_RELAY_CAPACITY' }));
    expect(stage.size).toBe(3);
    stage.discard();
    expect(stage.size).toBe(0);
    expect(target.adopted).toEqual([]);
  });

  it('wipes what it staged when discarded, and when the commit finds no room', () => {
    const target = targetWithRoom(5);
    const discarded = new ImportStage(target);
    feed(discarded, stream(sessions(2)));
    // Views into the stage's arena, to look at the bytes after the stage let go of them.
    const kept = stagedEntries(discarded).map((entry) => unpackSecrets(entry.secrets!).master);
    expect(kept.every((master) => !master.equals(Buffer.alloc(48)))).toBe(true);
    discarded.discard();
    expect(kept.every((master) => master.equals(Buffer.alloc(48)))).toBe(true);
    expect(() => discarded.add(sessions(1)[0]!)).toThrow(expect.objectContaining({ code: 'ERR_RELAY_STATE' }));

    const late = new ImportStage(target);
    feed(late, stream(sessions(2)));
    const lateMasters = stagedEntries(late).map((entry) => unpackSecrets(entry.secrets!).master);
    target.room = 1; // the relay filled up while the stream was read
    expect(() => late.commit()).toThrow(expect.objectContaining({ code: 'ERR_RELAY_CAPACITY' }));
    expect(lateMasters.every((master) => master.equals(Buffer.alloc(48)))).toBe(true);
    expect(target.adopted).toEqual([]);
  });

  it('keeps nothing alive after a failed import: its sessions and the slabs holding their secrets are collected', async () => {
    if (!collectGarbageNow()) return expect.fail('a full garbage collection is needed to check this');
    const input = stream(sessions(20_000));
    /** Runs a failed import and returns weak references to what it staged. */
    const failedImport = (): Array<WeakRef<object>> => {
      const stage = new ImportStage(targetWithRoom(20_000));
      const decoder = stage.decoder(FIXTURE_CREATED_AT);
      decoder.push(input.subarray(0, input.length - 10));
      expect(stage.size).toBe(20_000);
      const entries = stagedEntries(stage);
      const held = new Set<object>([...entries.map((entry) => entry.session), ...entries.map((entry) => entry.secrets!.bytes.slab)]);
      // Secrets and device keys of 20,000 sessions: about 5 MB in 64 KiB slabs of the stage's own.
      expect(new Set(entries.map((entry) => entry.secrets!.bytes.slab)).size).toBeGreaterThan(40);
      expect(() => decoder.finish()).toThrow(expect.objectContaining({ code: 'ERR_STATE_TRUNCATED' }));
      stage.discard();
      return [...held].map((object) => new WeakRef(object));
    };
    const refs = failedImport();
    // A WeakRef keeps its target alive until the job that made it has ended; then two full collections.
    for (let round = 0; round < 2; round++) {
      await new Promise((resolve) => setImmediate(resolve));
      collectGarbageNow('compact');
    }
    const alive = refs.map((ref) => ref.deref()).filter((object) => object !== undefined);
    expect(alive.map((object) => (Buffer.isBuffer(object) ? `a slab of ${object.length} bytes` : `session ${(object as { key: string }).key}`))).toEqual([]);
  });
});

/** The entries a stage holds (test access to its private map). */
function stagedEntries(stage: ImportStage): Array<SessionEntry<never>> {
  return [...(stage as unknown as { staged: Map<string, SessionEntry<never>> }).staged.values()];
}
