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
  precopy: '/v1/handover/precopy',
  claim: '/v1/sessions/claim',
  claimSettle: '/v1/sessions/claim/settle',
  sessions: '/v1/sessions',
  handoverCommit: '/v1/handover/commit',
  handoverAbort: '/v1/handover/abort',
} as const;

/**
 * starting: not yet listening. awaiting-restore: listening, but started by an update and not ready
 * until its predecessor's state is restored. serving: owns its sessions and is ready. restoring:
 * pulling a predecessor's state (not ready). handing-over: paused, state streamed, waiting for
 * commit. forwarding: handed over; tunnels stragglers to the successor (not ready).
 * stopping: shutting down.
 */
export type RelayState = 'starting' | 'awaiting-restore' | 'serving' | 'restoring' | 'handing-over' | 'forwarding' | 'stopping';

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

/**
 * POST /v1/restore on the NEW relay: pull the state of `from` and take its sessions over. Or, with
 * `empty: true` instead of `from`, start serving with no predecessor state (its old double is gone,
 * or state transfer is deliberately off): its devices will handshake again.
 */
export interface RestoreRequest {
  /** Management URL of the old relay, e.g. https://relay-a-0.relay-mgmt:8443 */
  from?: string;
  empty?: boolean;
  /** How long the old relay waits for our commit before it resumes serving (default 10 s). */
  commitTimeoutMs?: number;
}

export interface RestoreResponse {
  from: string;
  sessions: number;
  /** Sessions left out: their sequence number was too close to 2^48 to fence. */
  skipped: number;
  bytes: number;
  /** From our handover request to the old relay's commit answer. */
  durationMs: number;
  /** Time the old relay stayed paused (queued datagrams, sent nothing), as it reported. */
  pauseMs: number;
  /** Datagrams the old relay queued while paused and then forwarded to us. */
  queuedForwarded: number;
  /** Sessions received in the pre-copy (not paused), and in the paused phase (a delta, or everything). */
  precopySessions: number;
  deltaSessions: number;
  /** Whether the paused phase was a delta of the pre-copy. */
  delta: boolean;
}

/** POST /v1/handover on the OLD relay, sent by its successor. */
export interface HandoverRequest {
  successor: string;
  /** UDP port of the successor's straggler tunnel. */
  tunnelPort: number;
  /**
   * Its address, when the successor bound the tunnel to one; otherwise the address this request
   * came from (on Kubernetes the pod IP either way).
   */
  tunnelHost?: string;
  /** AES-256-GCM key of the straggler tunnel, base64; travels only inside this mTLS connection. */
  tunnelKey: string;
  commitTimeoutMs: number;
  /**
   * The pre-copy this successor already holds: the old relay then sends only what changed since
   * (a delta stream), which keeps the pause short. If it no longer has that pre-copy, it sends the
   * full state instead (the stream header says which).
   */
  precopyId?: string;
}

/** POST /v1/handover/precopy on the OLD relay: a full snapshot taken without pausing, for a later delta. */
export interface PrecopyRequest {
  successor: string;
}

export const HANDOVER_HEADERS = {
  precopyId: 'x-relayctl-precopy-id',
  id: 'x-relayctl-handover-id',
  tunnelPort: 'x-relayctl-tunnel-port',
} as const;

export const STATE_CONTENT_TYPE = 'application/vnd.relayctl.sessions+msgpack';

export interface HandoverCommitRequest {
  handoverId: string;
}

export interface HandoverCommitResponse {
  handoverId: string;
  pauseMs: number;
  queuedForwarded: number;
}

export interface HandoverAbortRequest {
  handoverId: string;
  reason: string;
}

/**
 * POST /v1/sessions/claim on a sibling relay: "these devices' flows now reach me; offer me the
 * sessions you hold". Each claim shows the device's datagram that arrived at the claimant: the owner
 * offers a session only if that record authenticates under it and is not a replay, so a spoofed
 * source address cannot pull sessions around. Answer: a state stream of the sessions offered (maybe
 * none). Batched, because deleting an old set moves thousands of flows at once.
 *
 * Two-phase: an offered session stays the owner's, held for this claim (its datagrams wait), until the
 * claimant settles the claim (POST /v1/sessions/claim/settle) saying which sessions it took. Only those
 * leave the owner; the others it keeps serving. An owner gives nothing to a claim without a `claimId`
 * (a claimant that would not say what it took).
 */
export interface ClaimRequest {
  claimant: string;
  /** Chosen by the claimant (a UUID): names the claim when it is settled. */
  claimId?: string;
  claims: Array<{
    peer: { address: string; port: number };
    /** The device's datagram, base64. */
    record: string;
  }>;
}

/**
 * POST /v1/sessions/claim/settle on the owner that offered sessions for `claimId`: the ones the claimant
 * imported (`taken`) leave the owner, the others stay with it. Sent even when nothing was taken (an answer
 * that could not be read, a claimant that could no longer take sessions). An owner that hears nothing within
 * its offer timeout (15 s) counts the offer as taken: it never risks two relays serving one session.
 */
export interface ClaimSettleRequest {
  claimant: string;
  claimId: string;
  taken: Array<{ address: string; port: number }>;
}

export interface ClaimSettleResponse {
  claimId: string;
  /** Sessions that left the owner. */
  taken: number;
  /** Sessions the owner serves again. */
  kept: number;
}

/** GET /v1/sessions?limit=N&offset=M: what the relay knows of each session. Never secrets. */
export interface SessionView {
  peer: string;
  deviceId: string;
  createdAt: number;
  lastSeenAt: number;
  recordsIn: number;
  recordsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Highest authenticated inbound record and last record sent: epoch and 48-bit sequence number. */
  inbound: { epoch: number; sequence: number };
  outbound: { epoch: number; sequence: number };
  /** No native socket right now (idle, or restored and not yet spoken to). */
  parked: boolean;
  /** Answers go out through the predecessor's tunnel (the device still reaches the old relay). */
  viaPredecessor: boolean;
}

export interface SessionsResponse {
  total: number;
  offset: number;
  sessions: SessionView[];
}
