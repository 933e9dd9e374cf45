/**
 * The two decoders that take session state from another relay, fuzzed: a restore's (the state decoder
 * feeding an import stage) and a claim answer's. Whatever arrives, the outcome is either a complete,
 * valid import or a clear error that names what was wrong, with nothing imported; never a crash, a
 * hang or a buffer past the decoder's bound.
 *
 * 10,000 cases each by default; FUZZ_RUNS=1000000 npx vitest run test/relay/hostile-state.test.ts for
 * a long run (FUZZ_SEED to replay one).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isStateFormatError } from '../../api/state-errors.ts';
import { LIMITS, type PeerAddress } from '../../api/state-format.ts';
import { readClaimAnswer } from '../../relay/cluster/claim-answer.ts';
import { ImportStage, type ImportTarget } from '../../relay/handover/staged-import.ts';
import { peerKey, type Session } from '../../relay/session/session.ts';
import type { SessionEntry } from '../../relay/session/table.ts';
import { FIXTURE_CREATED_AT } from '../fixtures/state/fixtures.ts';
import { HOSTILE_MASTERS, chunksOf, hostileStreams, type HostileCase } from '../fixtures/state/hostile.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const PEERS: PeerAddress[] = [{ address: '198.51.100.1', port: 5684 }, { address: '2001:db8::2', port: 40_000 }, { address: '198.51.100.3', port: 1 }];
/** The relay's room in the restore cases: fewer than some streams announce. */
const ROOM = 2;

const SECRETS = HOSTILE_MASTERS.flatMap((master) => [master.toString('hex'), master.toString('base64')]);

/**
 * A clear error: one of ours, with a stable code and a message that names the problem and leaks no
 * secret. Returns its code. Plain checks rather than expect(): they run 10,000 times.
 */
function clearErrorCode(error: unknown, testCase: HostileCase, allowed: readonly string[]): string {
  const fail = (why: string): never => {
    throw new Error(`${testCase.what}: ${why}: ${(error as Error)?.stack ?? String(error)}`);
  };
  if (!isStateFormatError(error) && !allowed.includes((error as { code?: string })?.code ?? '')) fail('not a clear error');
  const { message, code, field } = error as { message: string; code: string; field?: string };
  if (message.length < 20) fail('message too short to say what was wrong');
  if (code === 'ERR_STATE_FIELD' && !field) fail('a field error that names no field');
  if (SECRETS.some((secret) => message.includes(secret))) fail('message carries a master secret');
  return code;
}

function count(tally: Map<string, number>, key: string): void {
  tally.set(key, (tally.get(key) ?? 0) + 1);
}

describe('restore: the state decoder feeding an import stage', () => {
  it(`imports all or nothing, within its bounds, whatever the stream (${RUNS} cases)`, () => {
    const outcomes = new Map<string, number>();
    fc.assert(
      fc.property(hostileStreams(PEERS), (testCase) => {
        const adopted: Array<SessionEntry<never>> = [];
        const target: ImportTarget = {
          room: ROOM,
          adopt: (entries): Session[] => {
            adopted.push(...entries);
            return entries.map((entry) => entry.session);
          },
        };
        const stage = new ImportStage(target);
        const decoder = stage.decoder(FIXTURE_CREATED_AT);
        let outcome: string;
        try {
          for (const chunk of chunksOf(testCase)) {
            decoder.push(chunk);
            if (decoder.bufferedBytes >= 2 * LIMITS.maxValueBytes) throw new Error(`${testCase.what}: ${decoder.bufferedBytes} bytes buffered`);
            if (stage.size > ROOM) throw new Error(`${testCase.what}: ${stage.size} sessions staged, room for ${ROOM}`);
          }
          const { header } = decoder.finish();
          const sessions = stage.commit();
          if (sessions.length > header.count || adopted.length !== sessions.length) throw new Error(`${testCase.what}: imported ${sessions.length} of ${header.count}`);
          outcome = 'imported';
        } catch (error) {
          if ((error as Error).message.startsWith(testCase.what)) throw error;
          stage.discard();
          outcome = clearErrorCode(error, testCase, ['ERR_RELAY_CAPACITY']);
          if (adopted.length > 0) throw new Error(`${testCase.what}: half-imported (${adopted.length} sessions) after ${outcome}`);
        }
        count(outcomes, outcome);
      }),
      { numRuns: RUNS, seed: SEED },
    );
    // Every kind of outcome was reached, not just the first check the damage trips.
    expect([...outcomes.keys()]).toEqual(expect.arrayContaining(['ERR_RELAY_CAPACITY', 'ERR_STATE_CHECKSUM', 'ERR_STATE_FIELD', 'ERR_STATE_FORMAT', 'ERR_STATE_TRUNCATED', 'imported']));
    if (process.env.FUZZ_RUNS !== undefined) console.log(outcomes);
  });
});

describe('claims: the claim answer decoder', () => {
  it(`returns the claimed sessions of an intact answer, or nothing and a clear error (${RUNS} cases)`, async () => {
    const claimed = new Set(PEERS.slice(0, 2).map(peerKey));
    const outcomes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(hostileStreams(PEERS), async (testCase) => {
        const chunks = chunksOf(testCase);
        const body = (async function* () {
          yield* chunks;
        })();
        let given;
        try {
          given = await readClaimAnswer(body, claimed, FIXTURE_CREATED_AT);
        } catch (error) {
          count(outcomes, clearErrorCode(error, testCase, ['ERR_RELAY_CLAIM']));
          return;
        }
        count(outcomes, 'answered');
        const keys = given.map((session) => peerKey(session.peer));
        if (new Set(keys).size !== keys.length || keys.some((key) => !claimed.has(key))) throw new Error(`${testCase.what}: gave ${keys.join(', ')}`);
      }),
      { numRuns: RUNS, seed: SEED },
    );
    expect([...outcomes.keys()]).toEqual(expect.arrayContaining(['ERR_RELAY_CLAIM', 'ERR_STATE_CHECKSUM', 'ERR_STATE_FIELD', 'ERR_STATE_FORMAT', 'ERR_STATE_TRUNCATED', 'answered']));
    if (process.env.FUZZ_RUNS !== undefined) console.log(outcomes);
  });
});
