import type { SessionState } from '../../api/state-format.ts';
import { StateDecoder } from '../../api/state-codec.ts';
import { RelayError } from '../errors.ts';
import { peerKey } from '../session/session.ts';

/**
 * Reads one sibling's answer to a batch of claims: a state stream of the sessions it gave. All or
 * nothing, like a restore: the sessions are returned only once the trailer's count and SHA-256
 * checked out. An answer that announces more sessions than were claimed, is a delta, or carries a
 * session nobody claimed (or one twice) is refused as soon as it shows it, so an answer never
 * holds more than one session per claim in memory.
 */
export async function readClaimAnswer(body: AsyncIterable<Uint8Array>, claimed: ReadonlySet<string>, now: number): Promise<SessionState[]> {
  const given = new Map<string, SessionState>();
  const refuse = (message: string): never => {
    throw new RelayError('ERR_RELAY_CLAIM', `claim answer refused: ${message}`);
  };
  const decoder = new StateDecoder({
    now,
    onHeader: (header) => {
      if (header.base !== undefined) refuse('it is a delta stream');
      if (header.count > claimed.size) refuse(`it announces ${header.count} sessions for ${claimed.size} claims`);
    },
    onSession: (session, index) => {
      const key = peerKey(session.peer);
      if (!claimed.has(key)) refuse(`record ${index} is a session for ${key}, which was not claimed`);
      if (given.has(key)) refuse(`record ${index} repeats the session for ${key}`);
      given.set(key, session);
    },
  });
  for await (const chunk of body) decoder.push(chunk);
  decoder.finish();
  return [...given.values()];
}
