import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HANDOVER_HEADERS } from '../../api/management.ts';
import { encodeSessionChunks } from '../../api/state-codec.ts';
import { LIMITS, type SessionState } from '../../api/state-format.ts';
import { DtlsAdapter } from '../../relay/dtls/adapter.ts';
import type { HandoverHost } from '../../relay/handover/host.ts';
import { ImportStage } from '../../relay/handover/staged-import.ts';
import { HandoverSuccessor } from '../../relay/handover/successor.ts';
import { fixtureSessions, FIXTURE_CREATED_AT } from '../fixtures/state/fixtures.ts';
import { dtlsKeys } from '../support/adapter-harness.ts';
import { RecordingResponse, jsonRequest } from '../support/mgmt-doubles.ts';

let serverKey: Buffer;
const open: Array<{ close(): unknown }> = [];

beforeAll(async () => {
  ({ serverKey } = await dtlsKeys());
});

afterEach(() => {
  for (const item of open.splice(0)) item.close();
});

/** `n` distinct sessions (one address each), valid for the state format. */
function sessions(n: number, portBase = 1): SessionState[] {
  const [template] = fixtureSessions();
  return Array.from({ length: n }, (_, i) => ({ ...template!, peer: { address: `10.0.${(i >> 8) & 255}.${i & 255}`, port: portBase + (i >> 16) } }));
}

/**
 * A state stream whose header announces `count` and which then yields what `records` gives, one
 * MessagePack value per chunk, counting the chunks the reader pulled.
 */
function announcing(count: number, records: Iterable<SessionState>, extra: { base?: string; removed?: SessionState['peer'][] } = {}) {
  const pulled = { chunks: 0 };
  const chunks = encodeSessionChunks({ source: 'relay-a-0', createdAt: FIXTURE_CREATED_AT, count, ...extra }, records, { chunkBytes: 1 });
  const body = (async function* () {
    for (const chunk of chunks) {
      pulled.chunks++;
      yield chunk;
    }
  })();
  return { body, pulled };
}

interface Scenario {
  maxSessions: number;
  precopy: () => { body: AsyncIterable<Buffer>; pulled: { chunks: number } };
  handover: () => { body: AsyncIterable<Buffer>; pulled: { chunks: number } };
}

/** A relay awaiting its restore, with a real adapter, against a predecessor that answers what the scenario says. */
function successorFor(scenario: Scenario) {
  const adapter = new DtlsAdapter({
    serverKey,
    limits: { maxSessions: scenario.maxSessions },
    events: { transmit: () => undefined, established: () => undefined, data: () => undefined, closed: () => undefined, handshakeFailed: () => undefined, dropped: () => undefined },
  });
  open.push({ close: () => adapter.close() });
  const calls: string[] = [];
  const streams: Array<{ pulled: { chunks: number } }> = [];
  const host = {
    podName: 'relay-b-0',
    state: 'awaiting-restore',
    log: pino({ level: 'silent' }),
    adapter,
    tunnelPort: 9,
    tunnelHost: null,
    tunnel: { open: async () => undefined, shut: () => undefined },
    peers: {
      precopy: async () => {
        calls.push('precopy');
        const stream = scenario.precopy();
        streams.push(stream);
        return { headers: { [HANDOVER_HEADERS.precopyId]: 'pre-1' }, body: stream.body };
      },
      handover: async () => {
        calls.push('handover');
        const stream = scenario.handover();
        streams.push(stream);
        return { headers: { [HANDOVER_HEADERS.id]: 'h-1', [HANDOVER_HEADERS.tunnelPort]: '9' }, body: stream.body };
      },
      commit: async () => {
        calls.push('commit');
        return { handoverId: 'h-1', pauseMs: 1, queuedForwarded: 0 };
      },
      abort: async () => {
        calls.push('abort');
        return {};
      },
    },
    setRestoring: () => {
      host.state = 'restoring';
    },
    finishRestore: (outcome: { ok: boolean; previous?: string }) => {
      host.state = outcome.ok ? 'serving' : outcome.previous!;
    },
    onPredecessorFrame: () => undefined,
  };
  const successor = new HandoverSuccessor(host as unknown as HandoverHost);
  const restore = async (): Promise<RecordingResponse> => {
    const response = new RecordingResponse();
    await successor.handle(jsonRequest({ from: 'https://relay-a-0:8443' }), response.asServerResponse());
    return response;
  };
  return { adapter, calls, streams, restore, host };
}

describe('a restore never holds more sessions than the relay may', () => {
  it('imports a state that fits (control)', async () => {
    const relay = successorFor({
      maxSessions: 100,
      precopy: () => announcing(60, sessions(60)),
      handover: () => announcing(0, [], { base: 'pre-1', removed: [] }),
    });
    const response = await relay.restore();
    expect(response.statusCode).toBe(200);
    expect(relay.adapter.sessionCount).toBe(60);
    expect(relay.calls).toEqual(['precopy', 'handover', 'commit']);
  });

  it('refuses a state larger than --max-sessions from its header, before reading a record, and never pauses the old relay', async () => {
    const relay = successorFor({
      maxSessions: 100,
      precopy: () => announcing(5_000, sessions(5_000)),
      handover: () => announcing(5_000, sessions(5_000)),
    });
    await expect(relay.restore()).rejects.toMatchObject({ code: 'ERR_RELAY_CAPACITY', message: expect.stringMatching(/5000 sessions.*room for 100/) });
    expect(relay.adapter.sessionCount).toBe(0);
    expect(relay.calls).toEqual(['precopy']);
    // One chunk per MessagePack value: the header was the only thing read.
    expect(relay.streams.map((s) => s.pulled.chunks)).toEqual([1]);
    expect(relay.host.state).toBe('awaiting-restore');
  });

  it('refuses a stream announcing 2^24 sessions at its header', async () => {
    const endless = function* () {
      for (const session of sessions(20_000)) yield session;
    };
    const relay = successorFor({ maxSessions: 250_000, precopy: () => announcing(LIMITS.maxSessionCount, endless()), handover: () => announcing(LIMITS.maxSessionCount, endless()) });
    await expect(relay.restore()).rejects.toMatchObject({ code: 'ERR_RELAY_CAPACITY' });
    expect(relay.streams.map((s) => s.pulled.chunks)).toEqual([1]);
    expect(relay.adapter.sessionCount).toBe(0);
  });

  it('refuses a delta that would grow the staged state past capacity, and aborts the handover', async () => {
    const relay = successorFor({
      maxSessions: 100,
      precopy: () => announcing(80, sessions(80)),
      // 30 sessions the pre-copy did not have: 110 in all.
      handover: () => announcing(30, sessions(30, 2), { base: 'pre-1', removed: [] }),
    });
    await expect(relay.restore()).rejects.toMatchObject({ code: 'ERR_RELAY_CAPACITY' });
    expect(relay.adapter.sessionCount).toBe(0);
    expect(relay.calls).toEqual(['precopy', 'handover', 'abort']);
  });

  it('counts sessions the relay already serves against its capacity', async () => {
    const relay = successorFor({
      maxSessions: 100,
      precopy: () => announcing(60, sessions(60)),
      handover: () => announcing(0, [], { base: 'pre-1', removed: [] }),
    });
    const own = new ImportStage(relay.adapter);
    for (const session of sessions(50, 3)) own.add(session);
    own.commit();
    await expect(relay.restore()).rejects.toMatchObject({ code: 'ERR_RELAY_CAPACITY' });
    expect(relay.adapter.sessionCount).toBe(50);
    expect(relay.calls).toEqual(['precopy']);
  });
});
