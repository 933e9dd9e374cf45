/**
 * The Platform over the local cluster's state folder: sets and pods are files (state.ts), pods are detached relayd
 * processes on loopback addresses (relays.ts), the lock is a lease file (leases.ts). Every method re-reads the
 * files, so any number of relayctl processes can work on one cluster; writes happen under the state lock.
 *
 * Pod phase and readiness are observed when asked, like a kubelet that probes on demand:
 *   Failed   the process is gone (or never started) and the pod was not being deleted
 *   Pending  the process runs but has not listened yet
 *   Running  the process runs and its management port answered (or its log says it listened)
 * A deleted pod stays listed (Running, not ready, no address) until its process has exited.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ManagementClient } from '../../../api/management-client.ts';
import {
  alreadyExistsError,
  conflictError,
  notFoundError,
  restoreRefusedError,
  unavailableError,
} from '../../errors.ts';
import {
  applyMergePatch,
  restoreForbiddenBecause,
  type CreateSetSpec,
  type Platform,
  type PodInfo,
  type RelayApi,
  type RelayStatus,
  type RestoreOutcome,
  type SetInfo,
} from '../platform.ts';
import {
  HOST_ADDRESS,
  MAX_REPLICAS,
  POD_PORTS,
  SLOTS,
  checkPodPortsFree,
  podAddress,
  preferredSlot,
  stablePort,
} from './addresses.ts';
import { LocalLocks } from './leases.ts';
import { LocalErrorCode, LocalPlatformError } from './local-errors.ts';
import { loadLocalPki, operatorClientTlsOptions, type LocalPki } from './pki.ts';
import { killNow, processMatches, stopProcesses, type Target } from './processes.ts';
import {
  mgmtUrlOf,
  probeReadiness,
  relayListened,
  relayTarget,
  restoreError,
  startRelay,
  toRelayStatus,
  toRestoreOutcome,
} from './relays.ts';
import { serviceMarkers } from './service.ts';
import { listJson, removeFile, withStateLock, writeJsonAtomic, writeTextAtomic } from './state-fs.ts';
import {
  STATE_VERSION,
  ensureLayout,
  isObjectName,
  localPaths,
  nextRevision,
  peersFile,
  podFile,
  podLog,
  readCluster,
  readPod,
  readService,
  readSet,
  setFile,
  type ClusterRecord,
  type LocalPaths,
  type PodRecord,
  type SetRecord,
} from './state.ts';

export interface LocalPlatformOptions {
  /** Base name the state folder must hold (checked against cluster.json). */
  name?: string;
  /** Between SIGTERM and SIGKILL when a set is deleted. Default 7 s (relayd gives itself 5 s to stop). */
  terminationGraceMs?: number;
  /** Readiness and status calls to a relay. Default 2 s. */
  probeTimeoutMs?: number;
  /** One restore call (the orchestrator bounds it too). Default 120 s. */
  restoreTimeoutMs?: number;
  /** deleteSet waits at most this long for the service front to stop routing to the pods. Default 2 s. */
  endpointDrainMs?: number;
}

/** A relay deploy started again: its process had exited, or ran with a certificate reissued since. */
export interface RestartedPod {
  pod: string;
  reason: 'exited' | 'certificate-reissued';
}

/** What deploy asks of createSet beyond the Platform's CreateSetSpec. */
export interface SetTemplate {
  name: string;
  replicas: number;
  image: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  awaitRestore: boolean;
}

export class LocalPlatform implements Platform {
  readonly name = 'local';
  readonly paths: LocalPaths;
  readonly pki: LocalPki;
  readonly lock: LocalLocks;
  readonly relay: RelayApi;
  readonly #client: ManagementClient;
  readonly #graceMs: number;
  readonly #restoreTimeoutMs: number;
  readonly #endpointDrainMs: number;

  private constructor(paths: LocalPaths, pki: LocalPki, options: LocalPlatformOptions) {
    this.paths = paths;
    this.pki = pki;
    this.lock = new LocalLocks(paths);
    this.#graceMs = options.terminationGraceMs ?? 7_000;
    this.#restoreTimeoutMs = options.restoreTimeoutMs ?? 120_000;
    this.#endpointDrainMs = options.endpointDrainMs ?? 2_000;
    this.#client = new ManagementClient(operatorClientTlsOptions(pki), { timeoutMs: options.probeTimeoutMs ?? 2_000 });
    this.relay = {
      status: (pod) => this.#status(pod),
      restore: (target, source) => this.#restore(target, source),
    };
  }

  /** Opens the cluster deployed in `stateDir`; throws ERR_LOCAL_NOT_DEPLOYED when there is none. */
  static async open(stateDir: string, options: LocalPlatformOptions = {}): Promise<LocalPlatform> {
    const paths = localPaths(stateDir);
    const cluster = await readCluster(paths);
    if (cluster === null) {
      throw new LocalPlatformError(LocalErrorCode.NotDeployed, `no local cluster in ${paths.stateDir} (${paths.cluster} is missing): deploy first`, {
        subject: paths.cluster,
      });
    }
    if (options.name !== undefined && options.name !== cluster.name) {
      throw new LocalPlatformError(
        LocalErrorCode.OtherFleet,
        `the local cluster in ${paths.stateDir} runs fleet "${cluster.name}", not "${options.name}"; use another state folder for another fleet`,
        { subject: paths.cluster },
      );
    }
    return new LocalPlatform(paths, await loadLocalPki(paths.stateDir), options);
  }

  /** Closes the connections to relays (keep-alive sockets would hold the process open for a few seconds). */
  close(): Promise<void> {
    return this.#client.close();
  }

  // ---- sets ---------------------------------------------------------------------------------------------------

  async getSet(name: string): Promise<SetInfo | null> {
    if (!isObjectName(name)) return null;
    const record = await readSet(this.paths, name);
    return record === null ? null : toSetInfo(record);
  }

  async createSet(spec: CreateSetSpec): Promise<SetInfo> {
    if (typeof spec !== 'object' || spec === null || typeof spec.template !== 'object' || spec.template === null) {
      throw new LocalPlatformError(LocalErrorCode.InvalidOption, 'createSet: expected { name, replicas, image, template, annotations }');
    }
    // CreateSetSpec: a new set's relays wait in awaiting-restore until their double's sessions arrive.
    return this.createSetFrom({
      name: spec.name,
      replicas: spec.replicas,
      image: spec.image,
      labels: { ...spec.template.labels },
      annotations: { ...spec.annotations },
      awaitRestore: true,
    });
  }

  /** createSet with everything spelled out (deploy's first set serves at once). */
  async createSetFrom(template: SetTemplate): Promise<SetInfo> {
    checkTemplate(template);
    const paths = this.paths;
    return withStateLock(paths.lock, async () => {
      await ensureLayout(paths);
      const cluster = await this.#cluster();
      if ((await readSet(paths, template.name)) !== null) throw alreadyExistsError(`set ${template.name}`);
      const pods = await this.#podRecords();
      for (const leftover of pods.filter((pod) => pod.set === template.name)) {
        if (this.#alive(leftover)) {
          throw unavailableError(`createSet ${template.name}: ${leftover.name} of a deleted set ${template.name} is still terminating`);
        }
        await removeFile(podFile(paths, leftover.name));
      }
      const others = pods.filter((pod) => pod.set !== template.name);
      const slot = await this.#freeSlot(template.name);
      const records: PodRecord[] = [];
      const taken = new Set(others.flatMap((pod) => [pod.dtlsPort, pod.mgmtPort]));
      const now = Date.now();
      for (let ordinal = 0; ordinal < template.replicas; ordinal++) {
        const name = `${template.name}-${ordinal}`;
        const shared = cluster.network === 'shared';
        const dtlsPort = shared ? await stablePort('udp', taken) : POD_PORTS.dtls;
        taken.add(dtlsPort);
        const mgmtPort = shared ? await stablePort('tcp', taken) : POD_PORTS.mgmt;
        taken.add(mgmtPort);
        const address = shared ? HOST_ADDRESS : podAddress(cluster.subnet, slot, ordinal);
        records.push({
          version: STATE_VERSION,
          name,
          set: template.name,
          ordinal,
          image: template.image,
          labels: { ...template.labels },
          address,
          dtlsPort,
          mgmtPort,
          pid: null,
          createdAt: now,
          deletingAt: null,
        });
      }
      await Promise.all(records.map((pod) => checkPodPortsFree(pod.name, pod.address, pod.dtlsPort, pod.mgmtPort)));
      const set: SetRecord = {
        version: STATE_VERSION,
        name: template.name,
        replicas: template.replicas,
        image: template.image,
        labels: { ...template.labels },
        annotations: { ...template.annotations },
        resourceVersion: await nextRevision(paths),
        createdAt: now,
        awaitRestore: template.awaitRestore,
        slot,
      };
      await writeJsonAtomic(setFile(paths, set.name), set);
      for (const pod of records) await this.#launch(cluster, pod, template.awaitRestore);
      return toSetInfo(set);
    });
  }

  /**
   * Starts again the relays of `set` whose process is gone, as a StatefulSet controller recreates pods, and first
   * stops those that run with a relay certificate other than the folder's (reissued since they started: they would
   * keep presenting the old one, without its role or from a replaced CA). Stopping a relay ends its sessions: their
   * devices handshake again with the restarted one. Used by deploy; `awaitRestore` as the caller decides.
   */
  async restartPods(set: string, awaitRestore: boolean): Promise<RestartedPod[]> {
    const outdated = (await this.#podRecords()).filter(
      (pod) => pod.set === set && pod.deletingAt === null && this.#alive(pod) && pod.tlsCertificate !== this.pki.relay.fingerprint256,
    );
    await stopProcesses(this.#targets(outdated), this.#graceMs);
    return withStateLock(this.paths.lock, async () => {
      const cluster = await this.#cluster();
      const restarted: RestartedPod[] = [];
      for (const pod of await this.#podRecords()) {
        if (pod.set !== set || pod.deletingAt !== null || this.#alive(pod)) continue;
        // Shared mode's ports were free when the pod was made; something else may hold them by now.
        await checkPodPortsFree(pod.name, pod.address, pod.dtlsPort, pod.mgmtPort);
        await this.#launch(cluster, { ...pod, createdAt: Date.now(), pid: null }, awaitRestore);
        restarted.push({ pod: pod.name, reason: outdated.some((stopped) => stopped.name === pod.name) ? 'certificate-reissued' : 'exited' });
      }
      return restarted;
    });
  }

  async #launch(cluster: ClusterRecord, started: PodRecord, awaitRestore: boolean): Promise<void> {
    const pod: PodRecord = { ...started, tlsCertificate: this.pki.relay.fingerprint256 };
    // The record comes first: a crash between the two writes leaves a Failed pod, never an unknown process.
    await writeJsonAtomic(podFile(this.paths, pod.name), pod);
    await this.#writePeers();
    const pid = await startRelay(this.paths, { pod, pki: this.pki, upstream: cluster.upstream, awaitRestore, peersFile: peersFile(this.paths) });
    await writeJsonAtomic(podFile(this.paths, pod.name), { ...pod, pid });
  }

  /**
   * Every live pod's management endpoint, one per line: what a headless Service's DNS name gives relays on
   * Kubernetes, so that a relay can claim the session of a device the front moved to it. Relays re-read it every
   * few seconds, so pods started earlier learn about later ones and forget deleted ones. Call under the state lock.
   */
  async #writePeers(): Promise<void> {
    const lines = (await this.#podRecords()).filter((pod) => pod.deletingAt === null).map((pod) => `${pod.address}:${pod.mgmtPort}\n`);
    await writeTextAtomic(peersFile(this.paths), lines.join(''));
  }

  /** The preferred slot of `set`, or the next one no other set of this cluster uses. */
  async #freeSlot(set: string): Promise<number> {
    const used = new Set<number>();
    for (const name of await listJson(this.paths.sets)) {
      const other = name === set ? null : await readSet(this.paths, name);
      if (other !== null) used.add(other.slot);
    }
    const first = preferredSlot(set);
    for (let step = 0; step < SLOTS; step++) {
      const slot = (first + step) % SLOTS;
      if (!used.has(slot)) return slot;
    }
    throw new LocalPlatformError(LocalErrorCode.InvalidOption, `createSet ${set}: a local cluster holds at most ${SLOTS} sets`);
  }

  async deleteSet(name: string): Promise<void> {
    if (!isObjectName(name)) return;
    const paths = this.paths;
    const pods = await withStateLock(paths.lock, async () => {
      await removeFile(setFile(paths, name));
      const mine = (await this.#podRecords()).filter((pod) => pod.set === name);
      const now = Date.now();
      for (const pod of mine) {
        if (pod.deletingAt === null) await writeJsonAtomic(podFile(paths, pod.name), { ...pod, deletingAt: now });
      }
      if (mine.length > 0) await this.#writePeers();
      return mine;
    });
    await this.#awaitEndpointsRemoved(pods.map((pod) => pod.name));
    await stopProcesses(this.#targets(pods), this.#graceMs);
    await this.#reap(name);
  }

  /**
   * Waits (at most endpointDrainMs) until the service front no longer routes to `pods`, before they get SIGTERM:
   * their flows then move to the ready relays instead of reaching a relay that is shutting down. The preStop
   * hook that waits for kube-proxy does the same on Kubernetes. No service process, no wait.
   */
  async #awaitEndpointsRemoved(pods: readonly string[]): Promise<void> {
    const until = Date.now() + this.#endpointDrainMs;
    while (pods.length > 0 && Date.now() < until) {
      const service = await readService(this.paths).catch(() => null);
      if (service === null || !processMatches(service.pid, serviceMarkers(this.paths.stateDir))) return;
      if (!service.backends.some((backend) => pods.includes(backend.id))) return;
      await sleep(50);
    }
  }

  /** Removes the files of `set`'s deleted pods whose process is gone. */
  async #reap(set: string): Promise<void> {
    await withStateLock(this.paths.lock, async () => {
      for (const pod of await this.#podRecords()) {
        if (pod.set !== set || pod.deletingAt === null || this.#alive(pod)) continue;
        await removeFile(podFile(this.paths, pod.name));
        await removeFile(podLog(this.paths, pod.name));
      }
    });
  }

  // ---- pods ---------------------------------------------------------------------------------------------------

  async listPods(set: string): Promise<PodInfo[]> {
    if (!isObjectName(set)) return [];
    const records = (await this.#podRecords()).filter((pod) => pod.set === set).sort((x, y) => x.ordinal - y.ordinal);
    const terminated = records.filter((pod) => pod.deletingAt !== null && !this.#alive(pod));
    if (terminated.length > 0) await this.#reap(set);
    // A deleteSet whose caller died before SIGKILL: finish its job.
    const overdue = records.filter((pod) => pod.deletingAt !== null && Date.now() - pod.deletingAt > this.#endpointDrainMs + this.#graceMs);
    killNow(this.#targets(overdue));
    return Promise.all(records.filter((pod) => !terminated.includes(pod)).map((pod) => this.#observe(pod)));
  }

  async #observe(pod: PodRecord): Promise<PodInfo> {
    const base = { name: pod.name, set: pod.set, ordinal: pod.ordinal, labels: { ...pod.labels }, image: pod.image };
    const alive = this.#alive(pod);
    if (pod.deletingAt !== null) return { ...base, phase: 'Running', ready: false, mgmtUrl: null };
    if (!alive) return { ...base, phase: 'Failed', ready: false, mgmtUrl: null };
    const url = mgmtUrlOf(pod);
    const probe = await probeReadiness(this.#client, url);
    const running = probe.answered || (await relayListened(this.paths, pod.name));
    return { ...base, phase: running ? 'Running' : 'Pending', ready: running && probe.ready, mgmtUrl: running ? url : null };
  }

  async patchPodLabels(pod: string, labels: Record<string, string | null>): Promise<void> {
    checkPatch('patchPodLabels', labels);
    if (!isObjectName(pod)) throw notFoundError(`pod ${pod}`);
    await withStateLock(this.paths.lock, async () => {
      const record = await readPod(this.paths, pod);
      if (record === null) throw notFoundError(`pod ${pod}`);
      await writeJsonAtomic(podFile(this.paths, pod), { ...record, labels: applyMergePatch(record.labels, labels) });
    });
  }

  async patchSetAnnotations(set: string, annotations: Record<string, string | null>, expectedResourceVersion?: string): Promise<SetInfo> {
    checkPatch('patchSetAnnotations', annotations);
    if (!isObjectName(set)) throw notFoundError(`set ${set}`);
    return withStateLock(this.paths.lock, async () => {
      const record = await readSet(this.paths, set);
      if (record === null) throw notFoundError(`set ${set}`);
      if (expectedResourceVersion !== undefined && expectedResourceVersion !== record.resourceVersion) {
        throw conflictError(`set ${set}`, expectedResourceVersion, record.resourceVersion);
      }
      const updated: SetRecord = {
        ...record,
        annotations: applyMergePatch(record.annotations, annotations),
        resourceVersion: await nextRevision(this.paths),
      };
      await writeJsonAtomic(setFile(this.paths, set), updated);
      return toSetInfo(updated);
    });
  }

  // ---- relays -------------------------------------------------------------------------------------------------

  async #status(pod: PodInfo): Promise<RelayStatus> {
    if (pod.mgmtUrl === null) throw unavailableError(`relay.status ${pod.name}: the pod has no management address (${pod.phase})`);
    try {
      return toRelayStatus(pod.name, await this.#client.status(pod.mgmtUrl));
    } catch (error) {
      throw unavailableError(`relay.status ${pod.name}: ${(error as Error).message}`, error);
    }
  }

  async #restore(target: PodInfo, source: PodInfo): Promise<RestoreOutcome> {
    // Labels as they are now, not as the caller saw them.
    const [to, from] = await Promise.all([this.#livePod(target.name), this.#livePod(source.name)]);
    const forbidden = restoreForbiddenBecause(to, from);
    if (forbidden !== null) throw restoreRefusedError(to.name, from.name, forbidden);
    if (to.ordinal !== from.ordinal) {
      throw restoreRefusedError(to.name, from.name, `${from.name} (ordinal ${from.ordinal}) is not the double of ${to.name} (ordinal ${to.ordinal})`);
    }
    try {
      return toRestoreOutcome(await this.#client.restore(mgmtUrlOf(to), { from: mgmtUrlOf(from) }, this.#restoreTimeoutMs));
    } catch (error) {
      throw restoreError(to.name, from.name, error);
    }
  }

  async #livePod(name: string): Promise<PodRecord> {
    const pod = isObjectName(name) ? await readPod(this.paths, name) : null;
    if (pod === null) throw unavailableError(`relay ${name}: no such pod`);
    if (pod.deletingAt !== null) throw unavailableError(`relay ${name}: the pod is terminating`);
    if (!this.#alive(pod)) throw unavailableError(`relay ${name}: its process is not running`);
    return pod;
  }

  // ---- helpers ------------------------------------------------------------------------------------------------

  async #cluster(): Promise<ClusterRecord> {
    const cluster = await readCluster(this.paths);
    if (cluster === null) {
      throw new LocalPlatformError(LocalErrorCode.NotDeployed, `the local cluster in ${this.paths.stateDir} was torn down (${this.paths.cluster} is missing)`, {
        subject: this.paths.cluster,
      });
    }
    return cluster;
  }

  async #podRecords(): Promise<PodRecord[]> {
    const records = await Promise.all((await listJson(this.paths.pods)).map((name) => readPod(this.paths, name)));
    return records.filter((pod): pod is PodRecord => pod !== null);
  }

  #alive(pod: Pick<PodRecord, 'name' | 'pid'>): boolean {
    const target = relayTarget(this.pki, pod);
    return target !== null && processMatches(target.pid, target.markers);
  }

  #targets(pods: readonly PodRecord[]): Target[] {
    return pods.map((pod) => relayTarget(this.pki, pod)).filter((target): target is Target => target !== null);
  }
}

function toSetInfo(record: SetRecord): SetInfo {
  return {
    name: record.name,
    replicas: record.replicas,
    image: record.image,
    labels: { ...record.labels },
    annotations: { ...record.annotations },
    resourceVersion: record.resourceVersion,
    createdAt: record.createdAt,
  };
}

function checkPatch(operation: string, patch: unknown): asserts patch is Record<string, string | null> {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
    throw new LocalPlatformError(LocalErrorCode.InvalidOption, `${operation}: expected an object of string or null values, got ${JSON.stringify(patch)}`);
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key === '' || (value !== null && typeof value !== 'string')) {
      throw new LocalPlatformError(LocalErrorCode.InvalidOption, `${operation}: ${JSON.stringify(key)} must map to a string or null, got ${JSON.stringify(value)}`);
    }
  }
}

function checkTemplate(template: SetTemplate): void {
  const bad = (field: string, expected: string, got: unknown): never => {
    throw new LocalPlatformError(LocalErrorCode.InvalidOption, `createSet: ${field} must be ${expected}, got ${JSON.stringify(got)}`);
  };
  if (!isObjectName(template.name)) bad('name', 'a DNS label (lowercase letters, digits, "-"; at most 63)', template.name);
  // Pod names append "-<ordinal>", and must stay valid names themselves.
  if (template.name.length > 58) bad('name', 'at most 58 characters (pod names add "-<ordinal>")', template.name);
  if (!Number.isInteger(template.replicas) || template.replicas < 1 || template.replicas > MAX_REPLICAS) {
    bad('replicas', `a whole number from 1 to ${MAX_REPLICAS}`, template.replicas);
  }
  if (typeof template.image !== 'string' || template.image.trim() === '' || /\s/.test(template.image)) {
    bad('image', 'a non-empty string without spaces', template.image);
  }
  for (const [field, map] of [['labels', template.labels], ['annotations', template.annotations]] as const) {
    if (typeof map !== 'object' || map === null || Object.values(map).some((value) => typeof value !== 'string')) {
      bad(field, 'an object of string values', map);
    }
  }
}
