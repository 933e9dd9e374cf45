import type { RelayState } from '../../api/management.ts';

/**
 * The only interface blue/green steps see. The local platform (relay processes on loopback) and the Kubernetes
 * platform implement it; steps never import either.
 *
 * Errors: implementations throw the errors built in ../errors.ts (conflictError, notFoundError,
 * alreadyExistsError, unavailableError, LockHeldError, lockLostError, restoreFailedError, restoreRefusedError)
 * so the orchestrator can branch on `code`. Anything else is treated as a non-retryable failure.
 */

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';

export interface PodInfo {
  name: string;
  /** Name of the set (StatefulSet) that owns the pod. */
  set: string;
  /** Position in the set; a new pod's double is the old pod with the same ordinal. */
  ordinal: number;
  phase: PodPhase;
  /** The platform's readiness (Kubernetes Ready condition): whether the Service routes new flows to it. */
  ready: boolean;
  labels: Readonly<Record<string, string>>;
  /** https://host:port of the relay management API; null until the pod has an address. */
  mgmtUrl: string | null;
  image: string;
}

export interface SetInfo {
  name: string;
  replicas: number;
  image: string;
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  /** Opaque; changes on every write. Pass it back to patchSetAnnotations for optimistic concurrency. */
  resourceVersion: string;
  createdAt: number;
}

/**
 * The new set must start its relays in `awaiting-restore` (not ready, no sessions) so that nothing reaches them
 * before their double's sessions do; implementations set whatever flag the relay reads for that.
 */
export interface CreateSetSpec {
  name: string;
  replicas: number;
  image: string;
  /** The set to copy labels, pod template and Service membership from; only the image differs. */
  template: SetInfo;
  annotations: Record<string, string>;
}

/**
 * The relay's own states, as its management API reports them (api/management.ts): starting (not listening yet),
 * awaiting-restore (started by an update, not ready until restored), serving, restoring, handing-over (paused,
 * state streamed, waiting for commit), forwarding (handed over; tunnels stragglers; not ready), stopping.
 */
export type { RelayState };

export interface RelayStatus {
  pod: string;
  state: RelayState;
  ready: boolean;
  sessions: number;
  /** Datagrams tunnelled to the new owner since the hand-over; grows while stragglers still arrive. Reset by a restore. */
  forwardedDatagrams: number;
  /** The relay's own clock; the orchestrator prefers counter changes it observes itself (no clock skew). */
  lastForwardAt: number | null;
  version: string;
}

export interface RestoreOutcome {
  sessions: number;
  /** Sessions left out (sequence number too close to 2^48 to fence): those devices handshake again. */
  skipped: number;
  bytes: number;
  durationMs: number;
  /** How long devices saw no answer (the old relay held datagrams while streaming). */
  pauseMs: number;
}

export interface RelayApi {
  status(pod: PodInfo): Promise<RelayStatus>;
  /**
   * Tells `target` to pull the sessions of `source` over mTLS and start serving them. On success `target` is
   * serving and `source` is forwarding; on failure the relays' two-phase handover leaves `source` serving.
   *
   * The relays do not know about labels, so implementations must refuse (restoreRefusedError) when
   * restoreForbiddenBecause(target, source) says so, reading the labels afresh rather than trusting the PodInfo
   * passed in: that keeps an old pod from ever restoring from a new one, whatever the caller believes.
   *
   * The outcome of a call that failed or timed out is unknown (the transfer may have committed); callers must
   * read both relays' status before deciding to call again.
   */
  restore(target: PodInfo, source: PodInfo): Promise<RestoreOutcome>;
}

export interface LockInfo {
  name: string;
  owner: string;
  expiresAt: number;
}

export interface LockLease extends LockInfo {
  /** Extends the lease by its ttl; returns the new expiry. Throws lockLostError when it is no longer ours. */
  renew(): Promise<number>;
  /** Idempotent. Releasing a lease somebody else took over leaves theirs alone. */
  release(): Promise<void>;
}

export interface LockApi {
  /** Takes the lock, or takes over an expired lease. Throws LockHeldError naming the holder and expiry. */
  acquire(name: string, owner: string, ttlMs: number): Promise<LockLease>;
  /** The current holder, or null when free or expired. */
  inspect(name: string): Promise<LockInfo | null>;
}

export interface Platform {
  readonly name: 'local' | 'kubernetes' | (string & {});
  getSet(name: string): Promise<SetInfo | null>;
  /** Throws alreadyExistsError when a set with that name exists. */
  createSet(spec: CreateSetSpec): Promise<SetInfo>;
  /** Idempotent; deletes the set's pods too (they may take a while to disappear from listPods). */
  deleteSet(name: string): Promise<void>;
  /** Pods of the set, any order; empty when the set does not exist. */
  listPods(set: string): Promise<PodInfo[]>;
  /** `null` removes a label. Throws notFoundError when the pod does not exist. */
  patchPodLabels(pod: string, labels: Record<string, string | null>): Promise<void>;
  /** `null` removes an annotation. Throws conflictError when `expectedResourceVersion` is stale. */
  patchSetAnnotations(
    set: string,
    annotations: Record<string, string | null>,
    expectedResourceVersion?: string,
  ): Promise<SetInfo>;
  lock: LockApi;
  relay: RelayApi;
}

/**
 * The label that forbids an old pod ever restoring from a new one. The rule (checked by the orchestrator before
 * every restore and by platform implementations of relay.restore): a pod may restore from
 * its double only when the double carries `restore=true` and the pod itself does not. Forward, the old pods carry
 * it; a rollback swaps it per ordinal (new pod gains it first, then the old pod loses it) before handing back.
 */
export const RESTORE_LABEL = 'restore';
export const RESTORE_LABEL_VALUE = 'true';

export function carriesRestoreLabel(pod: Pick<PodInfo, 'labels'>): boolean {
  return pod.labels[RESTORE_LABEL] === RESTORE_LABEL_VALUE;
}

/** The label rule, for platform implementations and doubles: why `target` may not restore from `source`, or null. */
export function restoreForbiddenBecause(
  target: Pick<PodInfo, 'name' | 'labels'>,
  source: Pick<PodInfo, 'name' | 'labels'>,
): string | null {
  if (carriesRestoreLabel(target)) return `${target.name} carries ${RESTORE_LABEL}=${RESTORE_LABEL_VALUE}`;
  if (!carriesRestoreLabel(source)) return `${source.name} does not carry ${RESTORE_LABEL}=${RESTORE_LABEL_VALUE}`;
  return null;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * JSON merge patch (RFC 7386), as Kubernetes applies `application/merge-patch+json` and as patchPodLabels and
 * patchSetAnnotations take their maps: a key whose patch value is null is removed, an object is merged key by key,
 * anything else replaces. Returns a new value; neither argument is changed. Keys are own data properties, so a
 * "__proto__" key from a parsed request stays a key and never reaches a prototype.
 */
export function applyMergePatch(target: Readonly<Record<string, string>>, patch: Readonly<Record<string, string | null>>): Record<string, string>;
export function applyMergePatch(target: unknown, patch: JsonValue): JsonValue;
export function applyMergePatch(target: unknown, patch: JsonValue): JsonValue {
  if (!isJsonObject(patch)) return patch;
  const merged = new Map<string, JsonValue>(isJsonObject(target) ? Object.entries(target) : []);
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) merged.delete(key);
    else merged.set(key, applyMergePatch(merged.get(key), value));
  }
  return Object.fromEntries(merged);
}

function isJsonObject(value: unknown): value is { [key: string]: JsonValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
