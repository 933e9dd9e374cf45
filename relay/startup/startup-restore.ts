import type { Logger } from 'pino';
import { doublePodName } from '../../api/fleet.ts';
import type { RelayState, RestoreRequest, RestoreResponse } from '../../api/management.ts';
import type { PodReader } from './kubernetes-api.ts';
import { decideAtDeadline, decideAtStart, type RestoreFacts } from './restore-decision.ts';

/** What the start-up restore needs from the relay (implemented by Relay). */
export interface StartupRestoreHost {
  readonly state: RelayState;
  /** When the last restore began (driven or not), on the timers' clock; null before any. */
  readonly restoreStartedAt: number | null;
  /** The restore path of POST /v1/restore: `{ from }` restores from a relay, `{ empty: true }` serves empty. */
  restore(request: RestoreRequest): Promise<RestoreResponse>;
}

export interface StartupTimers {
  now(): number;
  /** Returns a function that cancels the timer. */
  after(ms: number, run: () => void): () => void;
}

export const realTimers: StartupTimers = {
  now: () => performance.now(),
  after(ms, run) {
    const timer = setTimeout(run, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

export interface StartupRestoreOptions {
  host: StartupRestoreHost;
  /** null: no Kubernetes API (offReason says why). */
  reader: PodReader | null;
  offReason: string;
  podName: string;
  ownMgmtPort: number;
  waitMs: number;
  log: Logger;
  timers?: StartupTimers;
}

/**
 * Runs the start-up restore decision of a relay started with --await-restore (see restore-decision.ts):
 * gathers the facts, decides, logs the decision with its reason, and acts through the same restore path
 * as POST /v1/restore. The wait restarts whenever somebody begins a restore, so an orchestrator that is
 * driving the pair is never raced; it ends when the relay serves.
 */
export class StartupRestore {
  private readonly options: StartupRestoreOptions;
  private readonly timers: StartupTimers;
  private cancelTimer: (() => void) | null = null;
  private cancelled = false;
  /** Resolves when the decision has run its course (serving, driven, or cancelled). */
  private finish!: () => void;
  readonly settled: Promise<void>;

  constructor(options: StartupRestoreOptions) {
    this.options = options;
    this.timers = options.timers ?? realTimers;
    this.settled = new Promise((resolve) => (this.finish = resolve));
  }

  async begin(): Promise<void> {
    const startedAt = this.timers.now();
    const facts = await this.gather();
    if (this.cancelled) return;
    const decision = decideAtStart(facts);
    this.options.log.info({ restoreDecision: decision.action, reason: decision.reason, waitMs: this.options.waitMs }, `start-up restore: ${decision.message}`);
    if (decision.action === 'serve-empty') {
      await this.serveEmpty();
      return;
    }
    this.arm(startedAt);
  }

  cancel(): void {
    this.cancelled = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.finish();
  }

  private arm(from: number): void {
    const due = from + this.options.waitMs;
    this.cancelTimer = this.timers.after(Math.max(0, due - this.timers.now()), () => void this.onDeadline(from));
  }

  private async onDeadline(armedFrom: number): Promise<void> {
    this.cancelTimer = null;
    if (this.cancelled) return;
    const { host, log } = this.options;
    const lastStart = host.restoreStartedAt;
    if (host.state !== 'awaiting-restore' && host.state !== 'restoring') {
      // Driven and done (serving), or stopping: nothing left to decide.
      this.finish();
      return;
    }
    if (lastStart !== null && lastStart > armedFrom) {
      // Somebody drove a restore meanwhile: give them the full wait again from its start.
      log.debug({ state: host.state }, 'start-up restore: a restore was driven; waiting again');
      this.arm(lastStart);
      return;
    }
    if (host.state === 'restoring') {
      this.arm(this.timers.now());
      return;
    }
    const facts = await this.gather();
    if (this.cancelled) return;
    if (host.state !== 'awaiting-restore') {
      this.finish();
      return;
    }
    const decision = decideAtDeadline(facts, this.timers.now() - armedFrom);
    log.info({ restoreDecision: decision.action, reason: decision.reason, ...(decision.action === 'restore' ? { from: decision.from } : {}) }, `start-up restore: ${decision.message}`);
    if (decision.action === 'restore') {
      try {
        const outcome = await host.restore({ from: decision.from });
        log.info({ from: decision.from, sessions: outcome.sessions }, `start-up restore: restored ${outcome.sessions} sessions from ${decision.double}`);
        this.finish();
        return;
      } catch (error) {
        log.warn({ from: decision.from, code: (error as { code?: string }).code }, `start-up restore: restore from ${decision.double} failed (${(error as Error).message}); serving empty`);
      }
    }
    await this.serveEmpty();
  }

  private async serveEmpty(): Promise<void> {
    try {
      await this.options.host.restore({ empty: true });
    } catch (error) {
      // Driven meanwhile (a restore runs or ran): that one decides.
      this.options.log.info({ code: (error as { code?: string }).code }, `start-up restore: not serving empty: ${(error as Error).message}`);
    }
    this.finish();
  }

  private async gather(): Promise<RestoreFacts> {
    const { reader, podName, ownMgmtPort, offReason } = this.options;
    if (reader === null) return { api: 'off', why: offReason };
    const double = doublePodName(podName);
    if (double === null) return { api: 'read', self: { name: podName, pod: null }, double: { name: null, pod: null }, ownMgmtPort };
    try {
      const [self, doublePod] = await Promise.all([reader.getPod(podName), reader.getPod(double)]);
      return { api: 'read', self: { name: podName, pod: self }, double: { name: double, pod: doublePod }, ownMgmtPort };
    } catch (error) {
      return { api: 'unreadable', error: (error as Error).message };
    }
  }
}
