/**
 * The local platform's controller, run by the service process for the life of the cluster: what the StatefulSet
 * controller, the garbage collector and the kubelet do on Kubernetes, over the state folder.
 *
 * - A set lacking the pod of an ordinal (a relayctl killed inside createSet) gets it: record and relay.
 * - A pod whose relay is not running is started: at once when it never ran (a record written just before a
 *   crash; a relay of that pod found running without a recorded pid is adopted instead), else as the kubelet
 *   restarts a container (restart-backoff.ts): counted in restartCount, waiting in CrashLoopBackOff while the
 *   back-off runs. A relay of a set an update created starts awaiting restore, as that set's template says.
 * - Deleted pods stay deleted: a terminating pod is never started; one whose relay is gone is removed, one past
 *   its grace period is killed (a deleteSet whose caller died). A pod whose set is gone (or whose ordinal is beyond
 *   it) is terminated. Pods of a set whose file cannot be read are left alone: the controller does not know it.
 *
 * Each pass gathers the facts without the state lock and decides (decideController, pure); only when there is
 * something to do does it take the lock, gather and decide again, and act. A file it cannot read is skipped
 * and logged once; a failed action is logged and tried again on a later pass.
 */
import type { Logger } from 'pino';
import { formatDuration } from '../../../lib/duration.ts';
import type { LocalPki } from './pki.ts';
import { launchPod, newPodRecord, podName, portsOf, relayRuns, relayTargets, scanPods, writePeers } from './pods.ts';
import { findProcesses, killNow, terminateNow } from './processes.ts';
import { relayMarkers } from './relays.ts';
import { KUBELET_RESTART_BACKOFF, nextRestartBackoff, restartAllowedAt, type RestartBackoff, type RestartBackoffTimings } from './restart-backoff.ts';
import { listJson, removeFile, withStateLock, writeJsonAtomic } from './state-fs.ts';
import {
  podFile,
  podLog,
  previousPodLog,
  readCluster,
  readSet,
  type ClusterRecord,
  type LocalPaths,
  type PodRecord,
  type PodWaitingRecord,
  type SetRecord,
} from './state.ts';

/** The kubelet's waiting reason for a container held back by its restart back-off. */
export const CRASH_LOOP_BACK_OFF = 'CrashLoopBackOff';

export interface ControllerFacts {
  now: number;
  /** Set records that could be read, by name. */
  sets: ReadonlyMap<string, SetRecord>;
  /** Every set file, readable or not. */
  setFiles: ReadonlySet<string>;
  /** Pod records that could be read, with whether their relay runs. */
  pods: readonly { record: PodRecord; runs: boolean }[];
  /** Every pod file, readable or not: an ordinal whose file is unreadable is not created again over it. */
  podFiles: ReadonlySet<string>;
}

export type ControllerAction =
  | { kind: 'create'; set: SetRecord; ordinal: number }
  /** Its relay never ran (or a process of the pod runs without a recorded pid). */
  | { kind: 'start'; pod: PodRecord; set: SetRecord }
  | { kind: 'restart'; pod: PodRecord; set: SetRecord; backoff: RestartBackoff }
  | { kind: 'back-off'; pod: PodRecord; waiting: PodWaitingRecord }
  /** Its set is gone or no longer has its ordinal: terminate it. */
  | { kind: 'orphaned'; pod: PodRecord }
  /** Terminating, its relay gone: remove the record. */
  | { kind: 'reap'; pod: PodRecord }
  /** Terminating past the grace period and still running. */
  | { kind: 'kill'; pod: PodRecord };

export interface ControllerTimings {
  restartBackoff: RestartBackoffTimings;
  /** A terminating pod still running this long after its deletion is killed. */
  terminationGraceMs: number;
}

/** Deletion waits 2 s for the front, then 7 s for SIGTERM (local-platform.ts); this is for deleters that died. */
const DEFAULT_TERMINATION_GRACE_MS = 15_000;

/** What to do, from the facts alone. */
export function decideController(facts: ControllerFacts, timings: ControllerTimings): ControllerAction[] {
  const actions: ControllerAction[] = [];
  for (const set of facts.sets.values()) {
    for (let ordinal = 0; ordinal < set.replicas; ordinal++) {
      if (!facts.podFiles.has(podName(set.name, ordinal))) actions.push({ kind: 'create', set, ordinal });
    }
  }
  for (const { record: pod, runs } of facts.pods) {
    if (pod.deletingAt !== null) {
      if (!runs) actions.push({ kind: 'reap', pod });
      else if (facts.now - pod.deletingAt > timings.terminationGraceMs) actions.push({ kind: 'kill', pod });
      continue;
    }
    const set = facts.sets.get(pod.set);
    if (set === undefined) {
      // An unreadable set file still owns its pods.
      if (!facts.setFiles.has(pod.set)) actions.push({ kind: 'orphaned', pod });
      continue;
    }
    if (pod.ordinal >= set.replicas || pod.name !== podName(set.name, pod.ordinal)) {
      actions.push({ kind: 'orphaned', pod });
      continue;
    }
    if (runs) continue;
    if (pod.pid === null) {
      actions.push({ kind: 'start', pod, set });
      continue;
    }
    const previous = pod.restartBackoff ?? null;
    const at = pod.waiting?.until ?? restartAllowedAt(previous, facts.now, timings.restartBackoff);
    if (at <= facts.now) {
      actions.push({ kind: 'restart', pod, set, backoff: nextRestartBackoff(previous, facts.now, timings.restartBackoff) });
    } else if (pod.waiting == null) {
      const delay = formatDuration(previous?.delayMs ?? 0);
      actions.push({
        kind: 'back-off',
        pod,
        waiting: { reason: CRASH_LOOP_BACK_OFF, message: `back-off ${delay} restarting failed relay pod=${pod.name}`, until: at },
      });
    }
  }
  return actions;
}

export interface LocalControllerOptions {
  paths: LocalPaths;
  pki: LocalPki;
  log: Logger;
  /** Default: the kubelet's, 10 s doubling to 5 min. */
  restartBackoff?: RestartBackoffTimings;
  terminationGraceMs?: number;
  now?: () => number;
  /** How long one pass waits for the state lock before it gives up until the next. Default 5 s. */
  lockTimeoutMs?: number;
}

export class LocalController {
  readonly #paths: LocalPaths;
  readonly #pki: LocalPki;
  readonly #log: Logger;
  readonly #timings: ControllerTimings;
  readonly #now: () => number;
  readonly #lockTimeoutMs: number;
  /** Problems already logged, so a file that stays unreadable is reported once, not every pass. */
  #reported = new Set<string>();

  constructor(options: LocalControllerOptions) {
    const backoff = options.restartBackoff ?? KUBELET_RESTART_BACKOFF;
    if (!(backoff.initialMs > 0 && backoff.maxMs >= backoff.initialMs)) {
      throw new RangeError(`restartBackoff: expected 0 < initialMs <= maxMs, got ${JSON.stringify(backoff)}`);
    }
    this.#paths = options.paths;
    this.#pki = options.pki;
    this.#log = options.log;
    this.#timings = { restartBackoff: { ...backoff }, terminationGraceMs: options.terminationGraceMs ?? DEFAULT_TERMINATION_GRACE_MS };
    this.#now = options.now ?? Date.now;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 5_000;
  }

  /** One pass; returns what it did. Throws only when the state lock or the state folder itself fails. */
  async reconcile(): Promise<ControllerAction[]> {
    const glance = await this.#gather();
    if (glance === null || decideController(glance.facts, this.#timings).length === 0) return [];
    return withStateLock(
      this.#paths.lock,
      async () => {
        const gathered = await this.#gather();
        if (gathered === null) return [];
        const actions = decideController(gathered.facts, this.#timings);
        const taken = portsOf(gathered.facts.pods.map((pod) => pod.record));
        const done: ControllerAction[] = [];
        for (const action of actions) {
          try {
            if (await this.#apply(action, gathered.cluster, taken)) done.push(action);
          } catch (error) {
            this.#reportOnce(`${action.kind} ${subjectOf(action)}: ${(error as Error).message}`, { action: action.kind, subject: subjectOf(action) });
          }
        }
        return done;
      },
      { timeoutMs: this.#lockTimeoutMs },
    );
  }

  async #gather(): Promise<{ cluster: ClusterRecord; facts: ControllerFacts } | null> {
    const cluster = await readCluster(this.#paths);
    // Torn down: the service stops itself (service.ts).
    if (cluster === null) return null;
    const setFiles = new Set(await listJson(this.#paths.sets));
    const sets = new Map<string, SetRecord>();
    for (const name of setFiles) {
      try {
        const set = await readSet(this.#paths, name);
        if (set !== null && set.name === name) sets.set(name, set);
        else if (set !== null) this.#reportOnce(`set file ${name}.json holds set ${set.name}; leaving its pods alone`, { set: name });
      } catch (error) {
        this.#reportOnce(`cannot read set ${name}; leaving its pods alone: ${(error as Error).message}`, { set: name });
      }
    }
    const scan = await scanPods(this.#paths);
    for (const { name, error } of scan.unreadable) this.#reportOnce(`cannot read pod ${name}; leaving it alone: ${error.message}`, { pod: name });
    const pods = scan.records.map((record) => ({ record, runs: relayRuns(this.#pki, record) }));
    const podFiles = new Set([...scan.records.map((pod) => pod.name), ...scan.unreadable.map((entry) => entry.name)]);
    return { cluster, facts: { now: this.#now(), sets, setFiles, pods, podFiles } };
  }

  /** Acts on one decision; false when it has to wait for a later pass. */
  async #apply(action: ControllerAction, cluster: ClusterRecord, taken: Set<number>): Promise<boolean> {
    const paths = this.#paths;
    switch (action.kind) {
      case 'create': {
        // A relay of that name without a record (its record removed by hand) would hold the pod's ports: it goes
        // first, as a deleted pod's containers do; the pod is made on a later pass.
        const name = podName(action.set.name, action.ordinal);
        const unrecorded = findProcesses(relayMarkers(this.#pki, name));
        if (unrecorded.length > 0) {
          terminateNow(unrecorded.map((pid) => ({ pid, markers: relayMarkers(this.#pki, name) })));
          this.#reportOnce(`stopping relay ${unrecorded.join(', ')} of ${name}, which has no pod record, before making the pod`, { pod: name });
          return false;
        }
        const pod = await newPodRecord(cluster, action.set, action.ordinal, taken, this.#now());
        const started = await launchPod(paths, pod, { cluster, pki: this.#pki, awaitRestore: action.set.awaitRestore, restart: false });
        this.#log.info({ pod: pod.name, set: action.set.name, pid: started.pid, awaitRestore: action.set.awaitRestore }, 'created missing pod');
        return true;
      }
      case 'start': {
        const [orphan] = findProcesses(relayMarkers(this.#pki, action.pod.name));
        if (orphan !== undefined) {
          await writeJsonAtomic(podFile(paths, action.pod.name), { ...action.pod, pid: orphan });
          this.#log.info({ pod: action.pod.name, pid: orphan }, 'adopted a relay started without a recorded pid');
          return true;
        }
        const started = await launchPod(paths, action.pod, { cluster, pki: this.#pki, awaitRestore: action.set.awaitRestore, restart: false });
        this.#log.info({ pod: action.pod.name, pid: started.pid, awaitRestore: action.set.awaitRestore }, 'started relay that never ran');
        return true;
      }
      case 'restart': {
        const restartCount = (action.pod.restartCount ?? 0) + 1;
        const pod: PodRecord = { ...action.pod, restartCount, restartBackoff: action.backoff, waiting: null };
        const started = await launchPod(paths, pod, { cluster, pki: this.#pki, awaitRestore: action.set.awaitRestore, restart: true });
        this.#log.warn(
          { pod: pod.name, pid: started.pid, restartCount, backoffMs: action.backoff.delayMs, awaitRestore: action.set.awaitRestore },
          'restarted relay whose process exited',
        );
        return true;
      }
      case 'back-off':
        await writeJsonAtomic(podFile(paths, action.pod.name), { ...action.pod, waiting: action.waiting });
        this.#log.warn({ pod: action.pod.name, reason: action.waiting.reason, until: new Date(action.waiting.until).toISOString() }, action.waiting.message);
        return true;
      case 'orphaned':
        await writeJsonAtomic(podFile(paths, action.pod.name), { ...action.pod, deletingAt: this.#now() });
        await writePeers(paths);
        terminateNow(relayTargets(this.#pki, [action.pod]));
        this.#log.info({ pod: action.pod.name, set: action.pod.set }, 'terminating pod whose set no longer has it');
        return true;
      case 'reap':
        await removeFile(podFile(paths, action.pod.name));
        await removeFile(podLog(paths, action.pod.name));
        await removeFile(previousPodLog(paths, action.pod.name));
        this.#log.info({ pod: action.pod.name }, 'removed terminated pod');
        return true;
      case 'kill':
        killNow(relayTargets(this.#pki, [action.pod]));
        this.#log.warn({ pod: action.pod.name, deletingAt: new Date(action.pod.deletingAt!).toISOString() }, 'killed pod past its termination grace period');
        return true;
    }
  }

  #reportOnce(message: string, fields: Record<string, unknown>): void {
    if (this.#reported.has(message)) return;
    this.#reported.add(message);
    this.#log.warn(fields, message);
  }
}

function subjectOf(action: ControllerAction): string {
  return action.kind === 'create' ? podName(action.set.name, action.ordinal) : action.pod.name;
}
