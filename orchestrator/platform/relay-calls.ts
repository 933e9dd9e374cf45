/**
 * The relay management API's answers as the platform's types and errors, for every platform that calls relays.
 */
import { ManagementError } from '../../api/management-client.ts';
import type { StatusResponse } from '../../api/management.ts';
import { restoreFailedError, unavailableError, type OrchestratorError } from '../errors.ts';
import type { RelayStatus, RestoreOutcome } from './platform.ts';

export function toRelayStatus(pod: string, status: StatusResponse): RelayStatus {
  return {
    pod: status.pod === '' ? pod : status.pod,
    state: status.state,
    ready: status.ready,
    sessions: status.sessions.total,
    forwardedDatagrams: status.forwarding.datagrams,
    lastForwardAt: status.forwarding.lastForwardAt,
    version: status.version,
  };
}

/**
 * A failed restore call. An HTTP answer means the relay ran the restore and refused or failed it (its two-phase
 * handover left the source serving): restoreFailedError. No answer (refused connection, reset, timeout) means we
 * do not know and may ask again after reading both relays: unavailableError.
 */
export function restoreError(target: string, source: string, error: unknown): OrchestratorError {
  if (error instanceof ManagementError) {
    if (error.code === 'ERR_MGMT_HTTP' || error.code === 'ERR_MGMT_PROTOCOL') {
      const remote = error.remoteCode === null ? '' : ` [${error.remoteCode}]`;
      return restoreFailedError(target, source, `${error.message}${remote}`);
    }
    return unavailableError(`relay.restore ${target} from ${source}: ${error.message}`, error);
  }
  return unavailableError(`relay.restore ${target} from ${source}: ${(error as Error).message}`, error);
}

export function toRestoreOutcome(response: { sessions: number; skipped: number; bytes: number; durationMs: number; pauseMs: number }): RestoreOutcome {
  return {
    sessions: response.sessions,
    skipped: response.skipped,
    bytes: response.bytes,
    durationMs: response.durationMs,
    pauseMs: response.pauseMs,
  };
}
