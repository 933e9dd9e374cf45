import type { SessionState } from '../../api/state-format.ts';
import type { ExportedSession } from '../session/exported.ts';

/**
 * Exported sessions as state-format records, lazily. The upstream identity is derivable from the
 * device key, so it is not sent: the stream stays smaller.
 */
export function* asStateRecords(sessions: Iterable<ExportedSession>): Generator<SessionState> {
  for (const session of sessions) yield { ...session, upstream: { identity: null } };
}
