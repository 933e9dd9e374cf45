/**
 * The relay management API (HTTPS with mutual TLS): what relays, the orchestrator and the CLI agree on.
 * Paths and bodies are versioned by the /v1 prefix; fields are only ever added.
 */

export const MANAGEMENT_PATHS = {
  livez: '/livez',
  readyz: '/readyz',
  metrics: '/metrics',
  status: '/v1/status',
  restore: '/v1/restore',
  handover: '/v1/handover',
  handoverCommit: '/v1/handover/commit',
  handoverAbort: '/v1/handover/abort',
} as const;

/**
 * starting: not yet listening. serving: owns its sessions and is ready. restoring: pulling a
 * predecessor's state (not ready). handing-over: paused, state streamed, waiting for commit.
 * forwarding: handed over; tunnels stragglers to the successor (not ready). stopping: shutting down.
 */
export type RelayState = 'starting' | 'serving' | 'restoring' | 'handing-over' | 'forwarding' | 'stopping';

export interface StatusResponse {
  pod: string;
  state: RelayState;
  ready: boolean;
  /** Why the relay is not ready, when it is not. */
  reason: string | null;
  version: string;
  uptimeSeconds: number;
  sessions: { total: number; live: number; parked: number; handshaking: number };
  dtls: { address: string; port: number; publicKeySha256: string };
  /** Straggler forwarding after a handover (zeros before). */
  forwarding: { datagrams: number; lastForwardAt: number | null; successor: string | null };
}

export interface ErrorResponse {
  error: { code: string; message: string };
}

export interface ReadyzResponse {
  ready: boolean;
  state: RelayState;
  reason: string | null;
}
