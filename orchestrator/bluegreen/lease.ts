import { withTimeout } from '../clock.ts';
import { ErrorCode, OrchestratorError, isLockHeldError, isOrchestratorError, lockLostError, summarizeError } from '../errors.ts';
import type { LockLease } from '../platform/platform.ts';
import type { Run } from './runtime.ts';
import { Reason } from './status.ts';

/**
 * Holds the update lock for one run: takes it (waiting up to lockWaitMs for a dead run's lease to expire),
 * renews it every third of its ttl, and stops the run the moment it can no longer be sure it holds it.
 */
export class LeaseKeeper {
  readonly #run: Run;
  readonly #lease: LockLease;
  #expiresAt: number;
  readonly #stopRenewing = new AbortController();
  #renewing: Promise<void> | null = null;

  private constructor(run: Run, lease: LockLease) {
    this.#run = run;
    this.#lease = lease;
    this.#expiresAt = lease.expiresAt;
  }

  /** Throws LockHeldError when the lock stays held past lockWaitMs. */
  static async acquire(run: Run): Promise<LeaseKeeper> {
    const { name, owner, lockTtlMs, lockWaitMs } = run.settings;
    const waitUntil = run.now() + lockWaitMs;
    for (;;) {
      try {
        // If a lost answer hid a success, the retry reports our own lease as held: the safe mistake.
        const lease = await run.call(`lock.acquire ${name}`, () => run.platform.lock.acquire(name, owner, lockTtlMs), {
          retry: true,
        });
        return new LeaseKeeper(run, lease);
      } catch (error) {
        if (!isLockHeldError(error) || error.expiresAt >= waitUntil) throw error;
        run.noteWaiting(null, Reason.UpdateInProgress, `lock held by ${error.holder}; waiting for it to expire`);
        // Just past the expiry, so the next attempt may take over the lease.
        await run.sleep(Math.max(0, error.expiresAt - run.now()) + 1);
      }
    }
  }

  get expiresAt(): number {
    return this.#expiresAt;
  }

  startRenewing(): void {
    this.#renewing ??= this.#renewLoop();
  }

  async #renewLoop(): Promise<void> {
    const run = this.#run;
    const interval = Math.max(1, Math.floor(run.settings.lockTtlMs / 3));
    for (;;) {
      try {
        await run.clock.sleep(interval, AbortSignal.any([this.#stopRenewing.signal, run.signal]));
      } catch {
        return;
      }
      try {
        // Not through run.call: renewal must go on after the run's deadline passed, while a rollback starts.
        this.#expiresAt = await bounded(run, () => this.#lease.renew(), interval, 'lease renewal');
      } catch (error) {
        if (this.#stopRenewing.signal.aborted) return;
        const lost = isOrchestratorError(error) && error.code === ErrorCode.LockLost;
        // One more try fits before expiry; after that, someone else may legitimately take over.
        if (lost || run.now() + interval >= this.#expiresAt) {
          const reason = lost
            ? (error as OrchestratorError)
            : lockLostError(run.settings.name, run.settings.owner, `renewal failed until expiry: ${summarizeError(error).message}`);
          run.stopWith(new OrchestratorError(ErrorCode.LockLost, reason.message, { reason: Reason.LockLost, cause: error }));
          return;
        }
        run.emit({ type: 'warning', step: run.step, reason: Reason.LockLost, message: `lease renewal failed, will retry: ${summarizeError(error).message}` });
      }
    }
  }

  /** Stops renewing and releases the lock (best effort: an unreleased lease expires by itself). */
  async release(): Promise<void> {
    this.#stopRenewing.abort();
    await this.#renewing;
    if (this.#run.signal.aborted && isOrchestratorError(this.#run.signal.reason) && this.#run.signal.reason.code === ErrorCode.LockLost) {
      return;
    }
    try {
      await bounded(this.#run, () => this.#lease.release(), this.#run.settings.timeouts.callMs, 'lock release');
    } catch (error) {
      this.#run.emit({ type: 'warning', step: 'release', reason: Reason.LockLost, message: `lock release failed: ${summarizeError(error).message}` });
    }
  }
}

function bounded<T>(run: Run, fn: () => Promise<T>, ms: number, label: string): Promise<T> {
  return withTimeout(run.clock, Promise.resolve().then(fn), ms, () =>
    new OrchestratorError(ErrorCode.CallTimeout, `${label}: no answer within ${ms} ms`, { transient: true }),
  );
}
