/**
 * The update lock as a lease file (like a Kubernetes Lease): owner, token, expiry. Every change happens under the
 * state lock, so of two processes acquiring at once exactly one writes its lease and the other reads it.
 * Expiry compares wall clocks of processes on the same machine, so they agree.
 */
import { randomUUID } from 'node:crypto';
import { LockHeldError, lockLostError } from '../../errors.ts';
import type { LockApi, LockInfo, LockLease } from '../platform.ts';
import { removeFile, withStateLock, writeJsonAtomic } from './state-fs.ts';
import { STATE_VERSION, leaseFile, readLease, type LeaseRecord, type LocalPaths } from './state.ts';

export class LocalLocks implements LockApi {
  readonly #paths: LocalPaths;
  readonly #now: () => number;

  constructor(paths: LocalPaths, now: () => number = Date.now) {
    this.#paths = paths;
    this.#now = now;
  }

  async acquire(name: string, owner: string, ttlMs: number): Promise<LockLease> {
    if (typeof name !== 'string' || name === '') throw new TypeError(`lock name must be a non-empty string, got ${JSON.stringify(name)}`);
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`lock ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
    const lease = await withStateLock(this.#paths.lock, async () => {
      const now = this.#now();
      const held = await readLease(this.#paths, name);
      if (held !== null && held.expiresAt > now) throw new LockHeldError(name, held.owner, held.expiresAt);
      const fresh: LeaseRecord = { version: STATE_VERSION, name, owner, token: randomUUID(), acquiredAt: now, expiresAt: now + ttlMs };
      await writeJsonAtomic(leaseFile(this.#paths, name), fresh);
      return fresh;
    });
    return this.#handle(lease, ttlMs);
  }

  async inspect(name: string): Promise<LockInfo | null> {
    const lease = await readLease(this.#paths, name);
    if (lease === null || lease.expiresAt <= this.#now()) return null;
    return { name, owner: lease.owner, expiresAt: lease.expiresAt };
  }

  #handle(lease: LeaseRecord, ttlMs: number): LockLease {
    const { name, owner, token } = lease;
    const paths = this.#paths;
    const now = this.#now;
    return {
      name,
      owner,
      expiresAt: lease.expiresAt,
      renew: () =>
        withStateLock(paths.lock, async () => {
          const current = await readLease(paths, name);
          if (current === null || current.token !== token) {
            throw lockLostError(name, owner, current === null ? 'released or removed' : `taken over by ${current.owner}`);
          }
          const at = now();
          if (current.expiresAt <= at) throw lockLostError(name, owner, `expired at ${new Date(current.expiresAt).toISOString()}`);
          const renewed: LeaseRecord = { ...current, expiresAt: at + ttlMs };
          await writeJsonAtomic(leaseFile(paths, name), renewed);
          return renewed.expiresAt;
        }),
      release: () =>
        withStateLock(paths.lock, async () => {
          const current = await readLease(paths, name);
          // Somebody who took over an expired lease keeps theirs.
          if (current?.token === token) await removeFile(leaseFile(paths, name));
        }),
    };
  }
}
