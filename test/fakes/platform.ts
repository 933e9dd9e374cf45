import { ManualClock } from '../../orchestrator/clock.ts';
import { runAbort, runRollback, runUpdate, type RunOptions } from '../../orchestrator/index.ts';
import { PROGRESS_ANNOTATION, type ProgressRecord } from '../../orchestrator/bluegreen/progress.ts';
import type { RunResult } from '../../orchestrator/bluegreen/result.ts';
import type { ControlSpec, UpdateSpec } from '../../orchestrator/bluegreen/spec.ts';
import type { UpdateEvent } from '../../orchestrator/events.ts';
import {
  LockHeldError,
  alreadyExistsError,
  conflictError,
  lockLostError,
  notFoundError,
  restoreFailedError,
  restoreRefusedError,
  unavailableError,
} from '../../orchestrator/errors.ts';
import {
  applyMergePatch,
  restoreForbiddenBecause,
  type CreateSetSpec,
  type LockInfo,
  type LockLease,
  type Platform,
  type PodInfo,
  type RelayState,
  type RelayStatus,
  type RestoreOutcome,
  type SetInfo,
} from '../../orchestrator/platform/platform.ts';

/**
 * An in-memory platform double with relays inside. Time is the ManualClock's: pods start, readiness probes lag,
 * transfers take time and stragglers decay in virtual time, so a whole blue/green update runs in milliseconds.
 *
 * - Every call is logged in order (`calls`), and fault rules can make any call fail, fail after taking effect
 *   (answer lost), hang, conflict, or kill the calling process (before or after the call took effect).
 * - Each `process()` is one relayctl process. Once killed, every later call of that process throws
 *   ProcessKilledError without reaching the cluster, as if it had never been made; a new process reruns.
 * - The relays enforce the restore label rule, move sessions on restore and flip readiness like the real ones.
 * - After every call the session invariant is checked: each ordinal's sessions are held by exactly one relay
 *   that exists, runs and serves them. Breaches go to `violations`.
 */

export type MethodName =
  | 'getSet'
  | 'createSet'
  | 'deleteSet'
  | 'listPods'
  | 'patchPodLabels'
  | 'patchSetAnnotations'
  | 'lock.acquire'
  | 'lock.inspect'
  | 'lease.renew'
  | 'lease.release'
  | 'relay.status'
  | 'relay.restore';

/** Calls that change something; the rest only read. */
export const WRITE_METHODS: readonly MethodName[] = [
  'createSet',
  'deleteSet',
  'patchPodLabels',
  'patchSetAnnotations',
  'lock.acquire',
  'lease.release',
  'relay.restore',
];

export class ProcessKilledError extends Error {
  override name = 'ProcessKilledError';
  readonly code = 'TEST_PROCESS_KILLED';
  constructor(process: number) {
    super(`process ${process} was killed`);
  }
}

export type FaultEffect =
  /** Throws before the call takes effect (default: platform unavailable; restore: restore failed). */
  | { kind: 'fail'; error?: () => Error }
  /** The call takes effect, then throws: the caller never learns it worked. */
  | { kind: 'fail-after'; error?: () => Error }
  /** Restore only: the transfer starts, then aborts; both relays go back to what they were. */
  | { kind: 'fail-midway' }
  /** Never answers and never takes effect. */
  | { kind: 'hang' }
  /** Takes effect, never answers. */
  | { kind: 'hang-after' }
  /** patchSetAnnotations: somebody else writes the set just before, so the expected resourceVersion is stale. */
  | { kind: 'conflict'; annotations?: Record<string, string> }
  /** The calling process dies before the call reaches the cluster. */
  | { kind: 'kill-before' }
  /** The call takes effect, then the calling process dies. */
  | { kind: 'kill' };

export interface CallInfo {
  method: MethodName;
  /** The set, pod or lock the call is about (restore: the target pod). */
  target: string;
  args: string;
}

export interface FaultRule {
  method?: MethodName;
  target?: string | RegExp;
  when?: (call: CallInfo) => boolean;
  /** The first matching call affected (1-based). Default 1. */
  nth?: number;
  /** How many matching calls from `nth` on are affected. Default 1; Infinity for all. */
  times?: number;
  effect: FaultEffect;
}

export interface CallRecord extends CallInfo {
  index: number;
  process: number;
  at: number;
  outcome: 'ok' | 'error' | 'hang' | 'killed';
  error?: string;
}

export interface WorldOptions {
  /** Time from pod creation to Running; Infinity never starts (image pull failure). */
  podStartMs: number | ((pod: string) => number);
  /** Readiness probe lag: how long the platform takes to notice a relay's readiness change. */
  readinessLagMs: number;
  /** Duration of one session transfer. */
  restoreMs: number;
  /** How long deleted pods stay listed (terminating). */
  terminationMs: number;
  /** How long a deleted set is still returned by getSet (finalizers, foreground deletion). */
  setDeletionMs: number;
  /** Datagrams an old relay forwards after the hand-over, arriving at a decaying rate. */
  stragglers: number;
  stragglerTauMs: number;
  /** Chatty devices whose conntrack entries never expire: forwarding never stops. */
  forwardForever: boolean;
  /** Time from pod Running to its relay listening (state `starting` until then). */
  relayListenMs: number;
  bytesPerSession: number;
}

const DEFAULT_WORLD: WorldOptions = {
  podStartMs: 3000,
  readinessLagMs: 1000,
  restoreMs: 400,
  terminationMs: 2000,
  setDeletionMs: 0,
  stragglers: 40,
  stragglerTauMs: 1500,
  forwardForever: false,
  relayListenMs: 300,
  bytesPerSession: 297,
};

interface FakeRelay {
  state: RelayState;
  sessions: number;
  ready: boolean;
  readyChangedAt: number;
  readyBefore: boolean;
  /** Forwarded datagrams from earlier forwarding periods. */
  forwardedBase: number;
  forwardingSince: number | null;
}

interface FakePod {
  name: string;
  set: string;
  ordinal: number;
  image: string;
  labels: Record<string, string>;
  createdAt: number;
  startMs: number;
  deletingAt: number | null;
  relay: FakeRelay;
}

interface FakeLease {
  owner: string;
  token: number;
  expiresAt: number;
}

export interface SeedOptions {
  name: string;
  set?: string;
  replicas: number;
  image: string;
  /** Sessions per ordinal (default 100 each). */
  sessions?: number[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface TransferRecord {
  target: string;
  source: string;
  ordinal: number;
  at: number;
  sessions: number;
  process: number;
}

export class FakeCluster {
  readonly clock: ManualClock;
  readonly world: WorldOptions;
  readonly calls: CallRecord[] = [];
  readonly violations: string[] = [];
  /** Committed transfers, in order. */
  readonly transfers: TransferRecord[] = [];
  /** Straggler datagrams still on their way to a pod when it was deleted. */
  stragglersDropped = 0;

  readonly #sets = new Map<string, SetInfo>();
  /** Sets being deleted, and when they disappear. */
  readonly #setsLeaving = new Map<string, number>();
  readonly #pods = new Map<string, FakePod>();
  readonly #leases = new Map<string, FakeLease>();
  /** Which pod holds each ordinal's sessions, by base name and ordinal; and how many sessions there are. */
  readonly #holders = new Map<string, { pod: string; sessions: number }>();
  #rules: { rule: FaultRule; seen: number }[] = [];
  #resourceVersion = 100;
  #leaseToken = 0;
  #processes = 0;

  constructor(clock: ManualClock, world: Partial<WorldOptions> = {}) {
    this.clock = clock;
    this.world = { ...DEFAULT_WORLD, ...world };
  }

  // ---- setup and inspection (not calls: never logged, never faulted) -------------------------------------------

  /** An active set whose pods run and serve, as before any update. */
  seed(options: SeedOptions): void {
    const setName = options.set ?? `${options.name}-a`;
    const now = this.clock.now();
    this.#sets.set(setName, {
      name: setName,
      replicas: options.replicas,
      image: options.image,
      labels: { app: options.name, ...options.labels },
      annotations: { ...options.annotations },
      resourceVersion: this.#nextVersion(),
      createdAt: now,
    });
    for (let ordinal = 0; ordinal < options.replicas; ordinal++) {
      const pod = this.#newPod(this.#sets.get(setName) as SetInfo, ordinal, 0);
      pod.createdAt = now - 60_000;
      const sessions = options.sessions?.[ordinal] ?? 100;
      pod.relay = { ...pod.relay, state: 'serving', sessions, ready: true, readyBefore: true, readyChangedAt: now - 60_000 };
      this.#holders.set(`${options.name}/${ordinal}`, { pod: pod.name, sessions });
    }
  }

  process(): Platform & { readonly id: number; readonly dead: boolean } {
    return new FakeProcess(this, ++this.#processes);
  }

  addFault(rule: FaultRule): void {
    this.#rules.push({ rule, seen: 0 });
  }

  clearFaults(): void {
    this.#rules = [];
  }

  /** Kills the calling process right after the `n`th call (any method) from now on took effect. */
  killAfterCall(n: number): void {
    this.addFault({ nth: n, effect: { kind: 'kill' } });
  }

  set(name: string): SetInfo | null {
    const set = this.#liveSet(name);
    return set === undefined ? null : structuredClone(set);
  }

  pods(set: string): PodInfo[] {
    return this.#listed(set).map((pod) => this.#podInfo(pod));
  }

  relayOf(pod: string): RelayStatus | null {
    const fake = this.#pods.get(pod);
    return fake === undefined ? null : this.#relayStatus(fake);
  }

  holders(): Record<string, string> {
    return Object.fromEntries([...this.#holders].map(([key, holder]) => [key, holder.pod]));
  }

  lease(name: string): LockInfo | null {
    const lease = this.#leases.get(name);
    return lease === undefined ? null : { name, owner: lease.owner, expiresAt: lease.expiresAt };
  }

  /** Someone else holds the lock (another relayctl). */
  holdLock(name: string, owner: string, ttlMs: number): void {
    this.#leases.set(name, { owner, token: ++this.#leaseToken, expiresAt: this.clock.now() + ttlMs });
  }

  /** Direct edits, as a human with kubectl would make them. */
  editSetAnnotations(set: string, annotations: Record<string, string | null>): void {
    const info = this.#liveSet(set);
    if (info === undefined) throw new Error(`no set ${set}`);
    this.#sets.set(set, { ...info, annotations: applyMergePatch(info.annotations, annotations), resourceVersion: this.#nextVersion() });
  }

  editPodLabels(pod: string, labels: Record<string, string | null>): void {
    const fake = this.#pods.get(pod);
    if (fake === undefined) throw new Error(`no pod ${pod}`);
    fake.labels = applyMergePatch(fake.labels, labels);
  }

  /** A relay changes by itself (crash, misconfiguration): its state and readiness. */
  setRelay(pod: string, change: { state?: RelayState; ready?: boolean }): void {
    const fake = this.#pods.get(pod);
    if (fake === undefined) throw new Error(`no pod ${pod}`);
    if (change.state !== undefined) fake.relay.state = change.state;
    if (change.ready !== undefined) this.#setReady(fake, change.ready);
  }

  /** Called before each logged call reaches the cluster: lets a test act at an exact call boundary. */
  beforeCall: ((call: CallRecord) => void) | null = null;

  /** The session invariant now; empty when every ordinal is served. */
  checkInvariant(): string[] {
    const problems: string[] = [];
    for (const [key, holder] of this.#holders) {
      const pod = this.#pods.get(holder.pod);
      if (pod === undefined || this.#gone(pod)) problems.push(`${key}: sessions on ${holder.pod}, which is gone`);
      else if (pod.deletingAt !== null) problems.push(`${key}: sessions on ${holder.pod}, which is being deleted`);
      else if (this.#phase(pod) !== 'Running') problems.push(`${key}: sessions on ${holder.pod}, which is not running`);
      else if (pod.relay.state !== 'serving' && pod.relay.state !== 'handing-over') {
        problems.push(`${key}: sessions on ${holder.pod}, whose relay is ${pod.relay.state}`);
      } else if (pod.relay.sessions !== holder.sessions) {
        problems.push(`${key}: ${holder.pod} has ${pod.relay.sessions} sessions, expected ${holder.sessions}`);
      }
    }
    return problems;
  }

  /** `method target args` for each logged call, optionally only writes. */
  log(options: { writesOnly?: boolean; process?: number } = {}): string[] {
    return this.calls
      .filter((call) => (!options.writesOnly || WRITE_METHODS.includes(call.method)) && (options.process === undefined || call.process === options.process))
      .map((call) => `${call.method} ${call.target}${call.args ? ` ${call.args}` : ''}${call.outcome === 'ok' ? '' : ` !${call.outcome}`}`);
  }

  // ---- the platform, reached through a process -------------------------------------------------------------------

  /**
   * @internal every platform call of every process goes through here. A kill rule composes with any other
   * effect: the call fails, hangs or succeeds as the other rule says, and the process dies right after.
   */
  async invoke<T>(process: FakeProcess, info: CallInfo, execute: (effect: FaultEffect | undefined) => T | Promise<T>): Promise<T> {
    if (process.dead) throw new ProcessKilledError(process.id);
    const call: CallRecord = { ...info, index: this.calls.length + 1, process: process.id, at: this.clock.now(), outcome: 'ok' };
    this.calls.push(call);
    this.beforeCall?.(call);
    const { effect, kill } = this.#faultFor(call);
    const die = (): never => {
      process.dead = true;
      call.outcome = 'killed';
      throw new ProcessKilledError(process.id);
    };
    if (kill === 'before') return die();
    if (effect?.kind === 'fail') {
      call.outcome = 'error';
      const error = effect.error?.() ?? (info.method === 'relay.restore' ? restoreFailedError(info.target, '?', 'injected') : unavailableError(info.method));
      call.error = codeOf(error);
      if (kill === 'after') die();
      throw error;
    }
    if (effect?.kind === 'hang') {
      if (kill === 'after') die();
      call.outcome = 'hang';
      return new Promise<T>(() => {});
    }
    if (effect?.kind === 'conflict') {
      this.editSetAnnotations(info.target, effect.annotations ?? { 'someone-else': String(this.#resourceVersion) });
    }
    let result: T;
    try {
      result = await execute(effect);
    } catch (error) {
      call.outcome = 'error';
      call.error = codeOf(error);
      this.#audit(call);
      if (process.dead || kill === 'after') die();
      throw error;
    }
    this.#audit(call);
    // Died while waiting for the answer (another call of the same process killed it), or killed now.
    if (process.dead || kill === 'after') die();
    switch (effect?.kind) {
      case 'fail-after': {
        call.outcome = 'error';
        const error = effect.error?.() ?? unavailableError(info.method);
        call.error = codeOf(error);
        throw error;
      }
      case 'hang-after':
        call.outcome = 'hang';
        return new Promise<T>(() => {});
      default:
        return copyOut(result);
    }
  }

  /** The first matching non-kill effect, and whether a kill rule matched too. Every matching rule counts the call. */
  #faultFor(call: CallRecord): { effect: FaultEffect | undefined; kill: 'before' | 'after' | null } {
    let effect: FaultEffect | undefined;
    let kill: 'before' | 'after' | null = null;
    for (const entry of this.#rules) {
      const { rule } = entry;
      if (rule.method !== undefined && rule.method !== call.method) continue;
      if (rule.target !== undefined && !(typeof rule.target === 'string' ? call.target === rule.target : rule.target.test(call.target))) continue;
      if (rule.when !== undefined && !rule.when(call)) continue;
      entry.seen++;
      const first = rule.nth ?? 1;
      if (entry.seen < first || entry.seen >= first + (rule.times ?? 1)) continue;
      if (rule.effect.kind === 'kill') kill ??= 'after';
      else if (rule.effect.kind === 'kill-before') kill = 'before';
      else effect ??= rule.effect;
    }
    return { effect, kill };
  }

  #audit(call: CallRecord): void {
    for (const problem of this.checkInvariant()) {
      const line = `after call ${call.index} (${call.method} ${call.target}) at ${call.at}: ${problem}`;
      if (!this.violations.includes(line)) this.violations.push(line);
    }
  }

  getSet(name: string): SetInfo | null {
    return this.#liveSet(name) ?? null;
  }

  /** The set, unless it was deleted and its deletion has completed by now. */
  #liveSet(name: string): SetInfo | undefined {
    const leavesAt = this.#setsLeaving.get(name);
    if (leavesAt !== undefined && this.clock.now() >= leavesAt) {
      this.#sets.delete(name);
      this.#setsLeaving.delete(name);
    }
    return this.#sets.get(name);
  }

  createSet(spec: CreateSetSpec): SetInfo {
    if (this.#liveSet(spec.name) !== undefined) throw alreadyExistsError(`set ${spec.name}`);
    const set: SetInfo = {
      name: spec.name,
      replicas: spec.replicas,
      image: spec.image,
      labels: { ...spec.template.labels },
      annotations: { ...spec.annotations },
      resourceVersion: this.#nextVersion(),
      createdAt: this.clock.now(),
    };
    this.#sets.set(spec.name, set);
    for (let ordinal = 0; ordinal < spec.replicas; ordinal++) {
      const name = `${spec.name}-${ordinal}`;
      const start = this.world.podStartMs;
      this.#newPod(set, ordinal, typeof start === 'function' ? start(name) : start);
    }
    return set;
  }

  deleteSet(name: string): void {
    if (this.#liveSet(name) === undefined || this.#setsLeaving.has(name)) return;
    const now = this.clock.now();
    this.#setsLeaving.set(name, now + this.world.setDeletionMs);
    this.#liveSet(name);
    for (const pod of this.#pods.values()) {
      if (pod.set !== name || pod.deletingAt !== null) continue;
      this.stragglersDropped += this.#stragglersLeft(pod);
      pod.deletingAt = now;
      pod.relay.state = 'stopping';
      this.#setReady(pod, false);
    }
  }

  listPods(set: string): PodInfo[] {
    return this.#listed(set).map((pod) => this.#podInfo(pod));
  }

  patchPodLabels(name: string, labels: Record<string, string | null>): void {
    const pod = this.#pods.get(name);
    if (pod === undefined || this.#gone(pod)) throw notFoundError(`pod ${name}`);
    pod.labels = applyMergePatch(pod.labels, labels);
  }

  patchSetAnnotations(name: string, annotations: Record<string, string | null>, expected?: string): SetInfo {
    const set = this.#liveSet(name);
    if (set === undefined) throw notFoundError(`set ${name}`);
    if (expected !== undefined && expected !== set.resourceVersion) throw conflictError(`set ${name}`, expected, set.resourceVersion);
    const updated = { ...set, annotations: applyMergePatch(set.annotations, annotations), resourceVersion: this.#nextVersion() };
    this.#sets.set(name, updated);
    return updated;
  }

  acquire(process: FakeProcess, name: string, owner: string, ttlMs: number): LockLease {
    const now = this.clock.now();
    const held = this.#leases.get(name);
    if (held !== undefined && held.expiresAt > now) throw new LockHeldError(name, held.owner, held.expiresAt);
    const lease: FakeLease = { owner, token: ++this.#leaseToken, expiresAt: now + ttlMs };
    this.#leases.set(name, lease);
    const cluster = this;
    return {
      name,
      owner,
      expiresAt: lease.expiresAt,
      renew: () =>
        cluster.invoke(process, { method: 'lease.renew', target: name, args: '' }, () => {
          const current = cluster.#leases.get(name);
          if (current?.token !== lease.token) throw lockLostError(name, owner, 'taken over');
          if (current.expiresAt <= cluster.clock.now()) throw lockLostError(name, owner, 'expired');
          current.expiresAt = cluster.clock.now() + ttlMs;
          return current.expiresAt;
        }),
      release: () =>
        cluster.invoke(process, { method: 'lease.release', target: name, args: '' }, () => {
          if (cluster.#leases.get(name)?.token === lease.token) cluster.#leases.delete(name);
        }),
    };
  }

  inspect(name: string): LockInfo | null {
    const lease = this.#leases.get(name);
    if (lease === undefined || lease.expiresAt <= this.clock.now()) return null;
    return { name, owner: lease.owner, expiresAt: lease.expiresAt };
  }

  status(pod: PodInfo): RelayStatus {
    const fake = this.#reachable(pod.name);
    return this.#relayStatus(fake);
  }

  /** A transfer in virtual time: both relays show it in flight, then the sessions move at commit. */
  async restore(process: FakeProcess, target: PodInfo, source: PodInfo, abortMidway: boolean): Promise<RestoreOutcome> {
    const to = this.#reachable(target.name);
    const from = this.#reachable(source.name);
    const forbidden = restoreForbiddenBecause(to, from);
    if (forbidden !== null) throw restoreRefusedError(to.name, from.name, forbidden);
    if (to.ordinal !== from.ordinal) throw restoreRefusedError(to.name, from.name, 'not its double');
    // The relays' own rules (relay/handover/source.ts and successor.ts).
    if (from.relay.state !== 'serving') throw restoreFailedError(to.name, from.name, `source is ${from.relay.state}`);
    const targetState = this.#relayState(to);
    if (targetState === 'handing-over' || targetState === 'stopping' || targetState === 'starting' || targetState === 'restoring') {
      throw restoreFailedError(to.name, from.name, `target is ${targetState}`);
    }
    if (targetState === 'serving' && to.relay.sessions > 0) throw restoreFailedError(to.name, from.name, 'target has sessions');
    const targetWas = to.relay.state;
    from.relay.state = 'handing-over';
    to.relay.state = 'restoring';
    const started = this.clock.now();
    await this.clock.sleep(this.world.restoreMs);
    if (abortMidway || from.deletingAt !== null || to.deletingAt !== null) {
      // The relays' two-phase handoff: nothing committed, the source resumes serving.
      if (from.deletingAt === null) from.relay.state = 'serving';
      if (to.deletingAt === null) to.relay.state = targetWas;
      throw restoreFailedError(to.name, from.name, 'transfer aborted');
    }
    const sessions = from.relay.sessions;
    to.relay.sessions += sessions;
    from.relay.sessions = 0;
    to.relay.state = 'serving';
    to.relay.forwardedBase = 0;
    to.relay.forwardingSince = null;
    this.#setReady(to, true);
    from.relay.state = 'forwarding';
    from.relay.forwardingSince = this.clock.now();
    this.#setReady(from, false);
    const base = to.set.replace(/-[ab]$/, '');
    this.#holders.set(`${base}/${to.ordinal}`, { pod: to.name, sessions: to.relay.sessions });
    this.transfers.push({ target: to.name, source: from.name, ordinal: to.ordinal, at: this.clock.now(), sessions, process: process.id });
    const durationMs = this.clock.now() - started;
    return { sessions, skipped: 0, bytes: sessions * this.world.bytesPerSession, durationMs, pauseMs: Math.min(durationMs, 50) };
  }

  // ---- simulation ------------------------------------------------------------------------------------------------

  #nextVersion(): string {
    return String(++this.#resourceVersion);
  }

  #newPod(set: SetInfo, ordinal: number, startMs: number): FakePod {
    const now = this.clock.now();
    const pod: FakePod = {
      name: `${set.name}-${ordinal}`,
      set: set.name,
      ordinal,
      image: set.image,
      labels: { ...set.labels },
      createdAt: now,
      startMs,
      deletingAt: null,
      relay: {
        state: 'awaiting-restore',
        sessions: 0,
        ready: false,
        readyBefore: false,
        readyChangedAt: now,
        forwardedBase: 0,
        forwardingSince: null,
      },
    };
    this.#pods.set(pod.name, pod);
    return pod;
  }

  #gone(pod: FakePod): boolean {
    return pod.deletingAt !== null && this.clock.now() >= pod.deletingAt + this.world.terminationMs;
  }

  #listed(set: string): FakePod[] {
    return [...this.#pods.values()].filter((pod) => pod.set === set && !this.#gone(pod)).sort((x, y) => x.ordinal - y.ordinal);
  }

  #phase(pod: FakePod): PodInfo['phase'] {
    return this.clock.now() >= pod.createdAt + pod.startMs ? 'Running' : 'Pending';
  }

  #podInfo(pod: FakePod): PodInfo {
    const running = this.#phase(pod) === 'Running';
    const lagged = this.clock.now() - pod.relay.readyChangedAt >= this.world.readinessLagMs ? pod.relay.ready : pod.relay.readyBefore;
    return {
      name: pod.name,
      set: pod.set,
      ordinal: pod.ordinal,
      phase: this.#phase(pod),
      ready: running && pod.deletingAt === null && lagged,
      labels: { ...pod.labels },
      mgmtUrl: running && pod.deletingAt === null ? `https://${pod.name}.relay.test:5884` : null,
      image: pod.image,
    };
  }

  #reachable(name: string): FakePod {
    const pod = this.#pods.get(name);
    if (pod === undefined || this.#gone(pod) || pod.deletingAt !== null || this.#phase(pod) !== 'Running') {
      throw unavailableError(`relay ${name}: connection refused`);
    }
    return pod;
  }

  #setReady(pod: FakePod, ready: boolean): void {
    if (pod.relay.ready === ready) return;
    const now = this.clock.now();
    // What the probe reported until now becomes "before"; the platform notices the change after the lag.
    pod.relay.readyBefore = now - pod.relay.readyChangedAt >= this.world.readinessLagMs ? pod.relay.ready : pod.relay.readyBefore;
    pod.relay.ready = ready;
    pod.relay.readyChangedAt = now;
  }

  #forwarded(pod: FakePod): { count: number; lastAt: number | null } {
    const { relay } = pod;
    if (relay.forwardingSince === null) return { count: relay.forwardedBase, lastAt: null };
    const elapsed = this.clock.now() - relay.forwardingSince;
    if (this.world.forwardForever) {
      const count = Math.floor(elapsed / 500);
      return { count: relay.forwardedBase + count, lastAt: count === 0 ? null : relay.forwardingSince + count * 500 };
    }
    const total = this.world.stragglers;
    const tau = this.world.stragglerTauMs;
    const count = Math.round(total * (1 - Math.exp(-elapsed / tau)));
    // The moment the rounded count reached its current value.
    const lastAt = count === 0 ? null : relay.forwardingSince + Math.ceil(-tau * Math.log(1 - (count - 0.5) / total));
    return { count: relay.forwardedBase + count, lastAt };
  }

  #stragglersLeft(pod: FakePod): number {
    if (pod.relay.forwardingSince === null) return 0;
    if (this.world.forwardForever) return 1;
    return this.world.stragglers - (this.#forwarded(pod).count - pod.relay.forwardedBase);
  }

  /** The relay reports `starting` until it listens, then its own state. */
  #relayState(pod: FakePod): RelayState {
    const listening = this.clock.now() >= pod.createdAt + pod.startMs + this.world.relayListenMs;
    return listening ? pod.relay.state : 'starting';
  }

  #relayStatus(pod: FakePod): RelayStatus {
    const forwarded = this.#forwarded(pod);
    return {
      pod: pod.name,
      state: this.#relayState(pod),
      ready: pod.relay.ready,
      sessions: pod.relay.sessions,
      forwardedDatagrams: forwarded.count,
      lastForwardAt: forwarded.lastAt,
      version: pod.image,
    };
  }
}

/** One relayctl process talking to the cluster. */
class FakeProcess implements Platform {
  readonly name = 'fake';
  readonly id: number;
  dead = false;
  readonly #cluster: FakeCluster;
  readonly lock: Platform['lock'];
  readonly relay: Platform['relay'];

  constructor(cluster: FakeCluster, id: number) {
    this.#cluster = cluster;
    this.id = id;
    this.lock = {
      acquire: (name, owner, ttlMs) =>
        cluster.invoke(this, { method: 'lock.acquire', target: name, args: owner }, () => cluster.acquire(this, name, owner, ttlMs)),
      inspect: (name) => cluster.invoke(this, { method: 'lock.inspect', target: name, args: '' }, () => cluster.inspect(name)),
    };
    this.relay = {
      status: (pod) => cluster.invoke(this, { method: 'relay.status', target: pod.name, args: '' }, () => cluster.status(pod)),
      restore: (target, source) =>
        cluster.invoke(this, { method: 'relay.restore', target: target.name, args: `<- ${source.name}` }, (effect) =>
          cluster.restore(this, target, source, effect?.kind === 'fail-midway'),
        ),
    };
  }

  getSet(name: string): Promise<SetInfo | null> {
    return this.#cluster.invoke(this, { method: 'getSet', target: name, args: '' }, () => this.#cluster.getSet(name));
  }

  createSet(spec: CreateSetSpec): Promise<SetInfo> {
    return this.#cluster.invoke(this, { method: 'createSet', target: spec.name, args: `${spec.image} x${spec.replicas}` }, () =>
      this.#cluster.createSet(spec),
    );
  }

  deleteSet(name: string): Promise<void> {
    return this.#cluster.invoke(this, { method: 'deleteSet', target: name, args: '' }, () => this.#cluster.deleteSet(name));
  }

  listPods(set: string): Promise<PodInfo[]> {
    return this.#cluster.invoke(this, { method: 'listPods', target: set, args: '' }, () => this.#cluster.listPods(set));
  }

  patchPodLabels(pod: string, labels: Record<string, string | null>): Promise<void> {
    return this.#cluster.invoke(this, { method: 'patchPodLabels', target: pod, args: JSON.stringify(labels) }, () =>
      this.#cluster.patchPodLabels(pod, labels),
    );
  }

  patchSetAnnotations(set: string, annotations: Record<string, string | null>, expectedResourceVersion?: string): Promise<SetInfo> {
    return this.#cluster.invoke(this, { method: 'patchSetAnnotations', target: set, args: Object.keys(annotations).join(',') }, () =>
      this.#cluster.patchSetAnnotations(set, annotations, expectedResourceVersion),
    );
  }
}

/** Callers get copies, so they can never change the cluster's state by mutating a result. Leases keep methods. */
function copyOut<T>(value: T): T {
  if (typeof value === 'object' && value !== null && Object.values(value).some((field) => typeof field === 'function')) return value;
  return structuredClone(value);
}

function codeOf(error: unknown): string {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : String(error);
}

// ---- test harness: one cluster, one clock, an event log, and the commands run against them ----------------------

export interface ScenarioOptions {
  world?: Partial<WorldOptions>;
  seed?: Partial<SeedOptions>;
  /** Virtual time after which the auto-advancing clock gives up (a test that would hang fails instead). */
  limitMs?: number;
}

/**
 * Given a seeded fleet (`relay-a`, 3 replicas, image relay:1, 100 sessions per ordinal) and a clock that
 * auto-advances, run commands as separate relayctl processes and inspect what happened.
 */
export class Scenario {
  readonly clock: ManualClock;
  readonly cluster: FakeCluster;
  readonly events: UpdateEvent[] = [];
  readonly name: string;
  #ids = 0;

  constructor(options: ScenarioOptions = {}) {
    this.clock = new ManualClock({ limitMs: options.limitMs ?? 24 * 3600_000 });
    this.clock.setAutoAdvance(true);
    this.cluster = new FakeCluster(this.clock, options.world);
    this.name = options.seed?.name ?? 'relay';
    this.cluster.seed({ name: this.name, replicas: 3, image: 'relay:1', ...options.seed });
  }

  spec(overrides: Partial<UpdateSpec> = {}): UpdateSpec {
    return { name: this.name, image: 'relay:2', owner: 'alice@test', ...overrides };
  }

  control(overrides: Partial<ControlSpec> = {}): ControlSpec {
    return { name: this.name, owner: 'alice@test', ...overrides };
  }

  update(spec: Partial<UpdateSpec> = {}, process = this.cluster.process()): Promise<RunResult> {
    return runUpdate(this.spec(spec), process, (event) => this.events.push(event), this.#options());
  }

  abort(spec: Partial<ControlSpec> = {}, process = this.cluster.process()): Promise<RunResult> {
    return runAbort(this.control(spec), process, (event) => this.events.push(event), this.#options());
  }

  rollback(spec: Partial<ControlSpec> = {}, process = this.cluster.process()): Promise<RunResult> {
    return runRollback(this.control(spec), process, (event) => this.events.push(event), this.#options());
  }

  #options(): RunOptions {
    return { clock: this.clock, newUpdateId: () => `upd-${++this.#ids}` };
  }

  /** The progress record as stored on `set`, or null. */
  record(set: string): ProgressRecord | null {
    const info = this.cluster.set(set);
    const raw = info?.annotations[PROGRESS_ANNOTATION];
    return raw === undefined ? null : (JSON.parse(raw) as ProgressRecord);
  }

  eventsOf<Type extends UpdateEvent['type']>(type: Type): Extract<UpdateEvent, { type: Type }>[] {
    return this.events.filter((event): event is Extract<UpdateEvent, { type: Type }> => event.type === type);
  }

  /** Lets every pending transfer and probe settle (relays keep working after relayctl stops). */
  async settle(ms = 10_000): Promise<void> {
    await this.clock.sleep(ms);
  }

  /**
   * The fleet is whole on exactly one set: its pods run the image, every pod is ready and serving its ordinal's
   * sessions, no pod carries the restore label, the other set is gone, and no invariant was ever broken.
   */
  expectCleanOn(set: string, image: string): void {
    const problems: string[] = [...this.cluster.violations, ...this.cluster.checkInvariant()];
    const info = this.cluster.set(set);
    if (info === null) problems.push(`${set} does not exist`);
    else if (info.image !== image) problems.push(`${set} runs ${info.image}, expected ${image}`);
    const other = set.endsWith('-a') ? set.replace(/-a$/, '-b') : set.replace(/-b$/, '-a');
    if (this.cluster.set(other) !== null) problems.push(`${other} still exists`);
    if (this.cluster.pods(other).length > 0) problems.push(`${other} still has pods`);
    for (const pod of this.cluster.pods(set)) {
      if (!pod.ready) problems.push(`${pod.name} not ready`);
      if ('restore' in pod.labels) problems.push(`${pod.name} carries restore=${pod.labels['restore']}`);
      const relay = this.cluster.relayOf(pod.name);
      if (relay?.state !== 'serving') problems.push(`${pod.name} relay is ${relay?.state}`);
    }
    for (const [ordinal, holder] of Object.entries(this.cluster.holders())) {
      if (!holder.startsWith(`${set}-`)) problems.push(`${ordinal} held by ${holder}`);
    }
    if (problems.length > 0) throw new Error(`fleet not clean on ${set}:\n  ${problems.join('\n  ')}`);
  }
}
