/**
 * The update lock as a coordination.k8s.io/v1 Lease `relayctl-<name>` (holderIdentity, leaseDurationSeconds,
 * acquireTime, renewTime, leaseTransitions), like client-go's leader election:
 * - free (no Lease, or no holder) or expired: taken with a create, or an update guarded by the resourceVersion read,
 *   never by deleting it; of two racing takers the API server lets exactly one write (the other gets 409);
 * - renewed with an update guarded by the resourceVersion of our last write: a 409 means somebody else wrote it;
 * - released by clearing the holder (the Lease stays, so the Role needs no delete).
 * Expiry is renewTime + leaseDurationSeconds by the reader's clock: hosts running relayctl must keep their clocks
 * within a fraction of the ttl of each other (NTP does). Decisions are pure functions below; the class does the I/O.
 */
import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { ErrorCode, LockHeldError, isOrchestratorError, lockLostError } from '../../errors.ts';
import type { LockApi, LockInfo, LockLease } from '../platform.ts';
import type { KubeApi } from './kube-api.ts';
import { fleetNames } from '../../../api/fleet.ts';

/** What a Lease says, in milliseconds. */
export interface LeaseState {
  holder: string;
  durationMs: number;
  acquireTime: number | null;
  renewTime: number | null;
  transitions: number;
  resourceVersion: string;
}

export function leaseStateOf(lease: V1Lease): LeaseState {
  const spec = lease.spec ?? {};
  return {
    holder: spec.holderIdentity ?? '',
    durationMs: (spec.leaseDurationSeconds ?? 0) * 1000,
    acquireTime: microTimeOf(spec.acquireTime),
    renewTime: microTimeOf(spec.renewTime),
    transitions: spec.leaseTransitions ?? 0,
    resourceVersion: lease.metadata?.resourceVersion ?? '',
  };
}

/** client-node types MicroTime as a Date but hands over the server's string (it does not know the type). */
function microTimeOf(value: Date | string | undefined): number | null {
  if (value === undefined || value === null) return null;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? null : ms;
}

/** When the lease stops counting: 0 when nobody holds it. */
export function expiryOf(state: LeaseState): number {
  if (state.holder === '') return 0;
  return (state.renewTime ?? state.acquireTime ?? 0) + state.durationMs;
}

export type AcquireDecision =
  | { action: 'create' }
  | { action: 'take-over'; transitions: number; resourceVersion: string; from: string }
  | { action: 'held'; holder: string; expiresAt: number };

export function decideAcquire(state: LeaseState | null, now: number): AcquireDecision {
  if (state === null) return { action: 'create' };
  const expiresAt = expiryOf(state);
  if (state.holder !== '' && expiresAt > now) return { action: 'held', holder: state.holder, expiresAt };
  return { action: 'take-over', transitions: state.transitions + 1, resourceVersion: state.resourceVersion, from: state.holder };
}

/** Which acquisition a handle stands for: the same owner taking the lock again is another acquisition. */
export interface Acquisition {
  owner: string;
  acquireTime: number;
}

export type RenewDecision = { action: 'renew' } | { action: 'lost'; why: string };

export function decideRenew(state: LeaseState | null, mine: Acquisition, now: number): RenewDecision {
  if (state === null) return { action: 'lost', why: 'the Lease was deleted' };
  if (state.holder !== mine.owner || state.acquireTime !== mine.acquireTime) {
    return { action: 'lost', why: state.holder === '' ? 'released' : `taken over by ${state.holder}` };
  }
  const expiresAt = expiryOf(state);
  if (expiresAt <= now) return { action: 'lost', why: `expired at ${new Date(expiresAt).toISOString()}` };
  return { action: 'renew' };
}

/** The Lease object for `owner` holding it from `acquireTime`, renewed at `renewTime`. */
export function leaseObject(options: {
  name: string;
  namespace: string;
  owner: string | null;
  ttlMs: number;
  acquireTime: number;
  renewTime: number;
  transitions: number;
  resourceVersion?: string;
}): V1Lease {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: options.name,
      namespace: options.namespace,
      ...(options.resourceVersion === undefined ? {} : { resourceVersion: options.resourceVersion }),
    },
    spec: {
      ...(options.owner === null ? {} : { holderIdentity: options.owner }),
      // Whole seconds, rounded up: a lease never lasts less than asked.
      leaseDurationSeconds: Math.max(1, Math.ceil(options.ttlMs / 1000)),
      // MicroTime: the API server wants six fractional digits (a plain Date serialises three and is refused).
      acquireTime: new V1MicroTime(options.acquireTime),
      renewTime: new V1MicroTime(options.renewTime),
      leaseTransitions: options.transitions,
    },
  };
}

export class LeaseLocks implements LockApi {
  readonly #api: KubeApi;
  readonly #now: () => number;

  constructor(api: KubeApi, now: () => number) {
    this.#api = api;
    this.#now = now;
  }

  async acquire(name: string, owner: string, ttlMs: number): Promise<LockLease> {
    if (typeof name !== 'string' || name === '') throw new TypeError(`lock name must be a non-empty string, got ${JSON.stringify(name)}`);
    if (typeof owner !== 'string' || owner === '') throw new TypeError(`lock owner must be a non-empty string, got ${JSON.stringify(owner)}`);
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`lock ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
    const lease = leaseOf(name);
    const current = await this.#api.getLease(lease);
    const now = this.#now();
    const decision = decideAcquire(current === null ? null : leaseStateOf(current), now);
    if (decision.action === 'held') throw new LockHeldError(name, decision.holder, decision.expiresAt);
    const body = leaseObject({
      name: lease,
      namespace: this.#api.namespace,
      owner,
      ttlMs,
      acquireTime: now,
      renewTime: now,
      transitions: decision.action === 'create' ? 0 : decision.transitions,
      ...(decision.action === 'take-over' ? { resourceVersion: decision.resourceVersion } : {}),
    });
    let written: V1Lease;
    try {
      written = decision.action === 'create' ? await this.#api.createLease(body) : await this.#api.replaceLease(body);
    } catch (error) {
      // Somebody else created or took it between our read and our write: they hold it now.
      if (isOrchestratorError(error) && (error.code === ErrorCode.AlreadyExists || error.code === ErrorCode.Conflict)) {
        const winner = await this.#api.getLease(lease);
        const state = winner === null ? null : leaseStateOf(winner);
        if (state !== null && state.holder !== '') throw new LockHeldError(name, state.holder, expiryOf(state));
      }
      throw error;
    }
    return new HeldLease(this.#api, this.#now, name, { owner, acquireTime: now }, ttlMs, written);
  }

  async inspect(name: string): Promise<LockInfo | null> {
    const lease = await this.#api.getLease(leaseOf(name));
    if (lease === null) return null;
    const state = leaseStateOf(lease);
    const expiresAt = expiryOf(state);
    if (state.holder === '' || expiresAt <= this.#now()) return null;
    return { name, owner: state.holder, expiresAt };
  }
}

class HeldLease implements LockLease {
  readonly name: string;
  readonly owner: string;
  /** The expiry when acquired (renew returns each new one), as the local platform's handle. */
  readonly expiresAt: number;
  readonly #api: KubeApi;
  readonly #now: () => number;
  readonly #mine: Acquisition;
  readonly #ttlMs: number;
  #last: V1Lease;

  constructor(api: KubeApi, now: () => number, name: string, mine: Acquisition, ttlMs: number, written: V1Lease) {
    this.#api = api;
    this.#now = now;
    this.name = name;
    this.owner = mine.owner;
    this.#mine = mine;
    this.#ttlMs = ttlMs;
    this.#last = written;
    this.expiresAt = expiryOf(leaseStateOf(written));
  }

  async renew(): Promise<number> {
    if (this.#api.dryRun !== 'none') return this.#dryRunRenew();
    // We expect to find our last write; a 409 means somebody wrote since, so look at who before deciding again.
    let state: LeaseState | null = leaseStateOf(this.#last);
    for (let attempt = 1; ; attempt++) {
      const now = this.#now();
      const decision = decideRenew(state, this.#mine, now);
      if (decision.action === 'lost') throw lockLostError(this.name, this.owner, decision.why);
      try {
        this.#last = await this.#api.replaceLease(this.#body(this.owner, now, state!));
        return expiryOf(leaseStateOf(this.#last));
      } catch (error) {
        if (!isOrchestratorError(error) || error.code !== ErrorCode.Conflict) throw error;
        if (attempt === 2) throw lockLostError(this.name, this.owner, 'the Lease keeps changing under us');
        state = await this.#read();
      }
    }
  }

  async release(): Promise<void> {
    // Client dry-run records the update it would send; server dry-run persisted no Lease to update.
    if (this.#api.dryRun === 'client') await this.#api.replaceLease(this.#body(null, this.#now(), leaseStateOf(this.#last)));
    if (this.#api.dryRun !== 'none') return;
    for (let attempt = 0; attempt < 2; attempt++) {
      const current = await this.#api.getLease(leaseOf(this.name));
      if (current === null) return;
      const state = leaseStateOf(current);
      // Somebody who took over an expired lease keeps theirs.
      if (state.holder !== this.owner || state.acquireTime !== this.#mine.acquireTime) return;
      this.#last = current;
      try {
        await this.#api.replaceLease(this.#body(null, this.#now(), state));
        return;
      } catch (error) {
        if (!isOrchestratorError(error) || error.code !== ErrorCode.Conflict) throw error;
      }
    }
  }

  /** Dry runs created nothing to renew: the lease would simply last another ttl. */
  #dryRunRenew(): number {
    return this.#now() + Math.max(1, Math.ceil(this.#ttlMs / 1000)) * 1000;
  }

  async #read(): Promise<LeaseState | null> {
    const lease = await this.#api.getLease(leaseOf(this.name));
    if (lease !== null) this.#last = lease;
    return lease === null ? null : leaseStateOf(lease);
  }

  #body(owner: string | null, now: number, state: LeaseState): V1Lease {
    return leaseObject({
      name: leaseOf(this.name),
      namespace: this.#api.namespace,
      owner,
      ttlMs: this.#ttlMs,
      acquireTime: this.#mine.acquireTime,
      renewTime: now,
      transitions: state.transitions,
      resourceVersion: state.resourceVersion,
    });
  }
}

function leaseOf(name: string): string {
  return fleetNames(name).lease;
}
