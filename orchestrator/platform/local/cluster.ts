/**
 * The local cluster's life cycle: deploy (PKI, service process, first set serving), info, teardown.
 * Deploy is a reconcile, not a script: every part is checked and only what is missing is made, so running it again
 * after a crash, a reboot or a killed service brings the cluster back.
 */
import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_AFFINITY_MS, DEFAULT_NAME, DEFAULT_SERVICE_PORT } from './defaults.ts';
import { HOST_ADDRESS, MAX_REPLICAS, detectNetworkMode, stablePort, subnetFor } from './addresses.ts';
import { LocalErrorCode, LocalPlatformError } from './local-errors.ts';
import { LocalPlatform, type RestartedPod } from './local-platform.ts';
import { ensureLocalPki, localPkiPaths, type LocalPki, type LocalPkiChange } from './pki.ts';
import { findProcesses, processMatches, spawnDetached, stopProcesses, type Target } from './processes.ts';
import { RELAY_MAIN, logTail, relayTarget } from './relays.ts';
import { RESTART_BACKOFF_SCALE_FLAG, SELECTOR_LABEL, SERVICE_MAIN, serviceMarkers } from './service.ts';
import { listJson, withStateLock, writeJsonAtomic } from './state-fs.ts';
import {
  STATE_VERSION,
  ensureLayout,
  isObjectName,
  localPaths,
  podLog,
  previousPodLog,
  readCluster,
  readPod,
  readService,
  readSet,
  serviceLog,
  type ClusterRecord,
  type LocalPaths,
  type NetworkMode,
  type PodRecord,
  type ServiceRecord,
} from './state.ts';

export interface LocalOptions {
  /** The state folder (relayctl's default is ./.relayctl). */
  stateDir: string;
  /** Base name of the fleet. Default 'relay'. */
  name?: string;
}

export interface LocalClusterInfo {
  stateDir: string;
  name: string;
  /** Where devices connect (the service front, UDP). */
  service: { address: string; port: number };
  /** The UDP echo the relays forward to. */
  upstream: { address: string; port: number };
  /** SPKI DER of the relays' DTLS key: what devices pin. */
  serverPublicKey: Buffer;
  /** Sets that exist, sorted. */
  sets: string[];
  /** Whether the service process runs (devices get nowhere without it; deploy starts it again). */
  serviceRunning: boolean;
  /** Where relay and service logs are: <logs>/<pod>.log, <logs>/service.log. */
  logs: string;
  network: NetworkMode;
}

export interface DeployOptions extends LocalOptions {
  replicas: number;
  /** A version label locally: every set runs this checkout's relayd. */
  image: string;
  /**
   * UDP port of the service front on 127.0.0.1. Default 5684; 0 picks a free one below the ephemeral range, so
   * that it is still free when the service restarts. Recorded at the first deploy.
   */
  servicePort?: number;
  /** How long an idle device flow stays on its relay (kube-proxy's UDP conntrack timeout). Default 30 s. */
  affinityMs?: number;
  /** Pod addressing; detected when omitted (see state.ts NetworkMode). */
  network?: NetworkMode;
  /** How long to wait for the service and the relays. Default 60 s. */
  timeoutMs?: number;
  /** Told what deploy changed in an existing cluster (for a progress line on stderr). */
  onNotice?: (notice: DeployNotice) => void;
  /**
   * Multiplies the controller's restart back-off (the kubelet's 10 s doubling to 5 min) for a service process
   * this deploy starts; tests run it in a fraction of the time. Default 1.
   */
  restartBackoffScale?: number;
}

/**
 * What deploy changed beyond starting what was missing: PKI items it regenerated, and processes it restarted
 * because they ran with certificates reissued since (relays lose their sessions: their devices handshake again).
 */
export type DeployNotice =
  | { kind: 'pki-regenerated'; changes: LocalPkiChange[]; message: string }
  | { kind: 'service-restarted'; message: string }
  | { kind: 'relays-restarted'; set: string; pods: RestartedPod[]; message: string };

export { DEFAULT_AFFINITY_MS, DEFAULT_NAME, DEFAULT_SERVICE_PORT };

/** The service stops its front and echo within 3 s (service-main.ts). */
const SERVICE_STOP_GRACE_MS = 5_000;

interface Checked {
  stateDir: string;
  name: string;
  replicas: number;
  image: string;
  servicePort: number | undefined;
  affinityMs: number | undefined;
  network: NetworkMode | undefined;
  timeoutMs: number;
  notify: (notice: DeployNotice) => void;
  restartBackoffScale: number;
}

function invalid(field: string, expected: string, got: unknown): never {
  throw new LocalPlatformError(LocalErrorCode.InvalidOption, `deploy: ${field} must be ${expected}, got ${JSON.stringify(got)}`);
}

function checkName(options: LocalOptions): { stateDir: string; name: string } {
  if (typeof options.stateDir !== 'string' || options.stateDir === '') invalid('stateDir', 'a non-empty path', options.stateDir);
  const name = options.name ?? DEFAULT_NAME;
  // Pods are <name>-a-<ordinal>; each must stay a valid object name.
  if (!isObjectName(name) || name.length > 54) invalid('name', 'a DNS label of at most 54 characters (lowercase letters, digits, "-")', name);
  return { stateDir: options.stateDir, name };
}

function checkDeploy(options: DeployOptions): Checked {
  const { stateDir, name } = checkName(options);
  const { replicas, image, servicePort, affinityMs, network, timeoutMs = 60_000, restartBackoffScale = 1 } = options;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > MAX_REPLICAS) invalid('replicas', `a whole number from 1 to ${MAX_REPLICAS}`, replicas);
  if (typeof image !== 'string' || image.trim() === '' || /\s/.test(image)) invalid('image', 'a non-empty label without spaces', image);
  if (servicePort !== undefined && (!Number.isInteger(servicePort) || servicePort < 0 || servicePort > 65535)) {
    invalid('servicePort', 'a port 0-65535 (0: any free port)', servicePort);
  }
  if (affinityMs !== undefined && (!Number.isInteger(affinityMs) || affinityMs <= 0)) invalid('affinityMs', 'a positive whole number of ms', affinityMs);
  if (network !== undefined && network !== 'pod-ips' && network !== 'shared') invalid('network', "'pod-ips' or 'shared'", network);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) invalid('timeoutMs', 'a positive number of ms', timeoutMs);
  if (!Number.isFinite(restartBackoffScale) || restartBackoffScale <= 0 || restartBackoffScale > 1) invalid('restartBackoffScale', 'a number in (0, 1]', restartBackoffScale);
  return { stateDir, name, replicas, image, servicePort, affinityMs, network, timeoutMs, notify: options.onNotice ?? (() => undefined), restartBackoffScale };
}

/**
 * Makes sure the local cluster runs: PKI, the service process, and a serving, ready set (`<name>-a` when there is
 * none yet; an existing set is kept as it is). Idempotent.
 *
 * PKI items that are wrong are regenerated (ensureLocalPki), e.g. the role-less certificates of an older relayctl.
 * Running processes keep the certificates they started with, so deploy restarts those whose certificate is not
 * the folder's: the service process (a moment without its UDP front: devices retransmit; flows it pinned are
 * spread again, and a relay that lacks a device's session claims it from its sibling) and the relays (their
 * sessions end: those devices handshake again). It compares fingerprints recorded at start, so a deploy
 * interrupted after regenerating still restarts them the next time.
 */
export async function deployLocal(options: DeployOptions): Promise<LocalClusterInfo> {
  const spec = checkDeploy(options);
  const paths = localPaths(spec.stateDir);
  const deadline = Date.now() + spec.timeoutMs;
  const pki = await ensureLocalPki(paths.stateDir);
  if (pki.status === 'updated') {
    spec.notify({
      kind: 'pki-regenerated',
      changes: pki.changes,
      message: `regenerated in ${pki.paths.dir}: ${pki.changes.map((change) => `${change.item} (${change.reason})`).join(', ')}`,
    });
  }
  await ensureLayout(paths);
  await withStateLock(paths.lock, async () => {
    const cluster = await ensureClusterRecord(paths, spec);
    await ensureService(paths, cluster, pki, deadline, spec);
  });

  const platform = await LocalPlatform.open(paths.stateDir, { name: spec.name });
  try {
    const sets = (await listJson(paths.sets)).sort();
    if (sets.length === 0) {
      await platform.createSetFrom({
        name: `${spec.name}-a`,
        replicas: spec.replicas,
        image: spec.image,
        labels: { [SELECTOR_LABEL]: spec.name },
        annotations: {},
        awaitRestore: false,
      });
      await waitUntilServing(platform, paths, `${spec.name}-a`, deadline);
    } else if (sets.length === 1) {
      const only = sets[0]!;
      const set = await readSet(paths, only);
      if (set !== null && (set.replicas !== spec.replicas || set.image !== spec.image)) {
        throw new LocalPlatformError(
          LocalErrorCode.Mismatch,
          `${only} runs ${set.image} x${set.replicas}, deploy asked for ${spec.image} x${spec.replicas}: use update to change the image, ` +
            'or teardown to start over',
          { subject: only },
        );
      }
      // Nobody else holds sessions to restore from, so restarted relays serve at once.
      notifyRestarted(spec, only, await platform.restartPods(only, false));
      await waitUntilServing(platform, paths, only, deadline);
    } else {
      // An update is in progress: restart what died as its set's template says, and leave the rest to the update.
      for (const name of sets) {
        const set = await readSet(paths, name);
        if (set !== null) notifyRestarted(spec, name, await platform.restartPods(name, set.awaitRestore));
      }
    }
  } finally {
    await platform.close();
  }
  const info = await localClusterInfo({ stateDir: spec.stateDir, name: spec.name });
  if (info === null) throw new LocalPlatformError(LocalErrorCode.NotDeployed, `the local cluster in ${paths.stateDir} vanished during deploy`);
  return info;
}

function notifyRestarted(spec: Checked, set: string, pods: RestartedPod[]): void {
  const reissued = pods.filter((pod) => pod.reason === 'certificate-reissued').map((pod) => pod.pod);
  const exited = pods.filter((pod) => pod.reason === 'exited').map((pod) => pod.pod);
  if (pods.length === 0) return;
  const parts = [
    ...(reissued.length > 0 ? [`${reissued.join(', ')} ran with a certificate reissued since (their devices handshake again)`] : []),
    ...(exited.length > 0 ? [`${exited.join(', ')} had exited`] : []),
  ];
  spec.notify({ kind: 'relays-restarted', set, pods, message: `restarted relays of ${set}: ${parts.join('; ')}` });
}

async function ensureClusterRecord(paths: LocalPaths, spec: Checked): Promise<ClusterRecord> {
  const existing = await readCluster(paths);
  if (existing !== null) {
    if (existing.name !== spec.name) {
      throw new LocalPlatformError(
        LocalErrorCode.OtherFleet,
        `the local cluster in ${paths.stateDir} runs fleet "${existing.name}", not "${spec.name}": use another state folder, or teardown first`,
        { subject: paths.cluster },
      );
    }
    const mismatch = (field: string, has: unknown, asked: unknown): never => {
      throw new LocalPlatformError(LocalErrorCode.Mismatch, `the local cluster in ${paths.stateDir} has ${field} ${has}, deploy asked for ${asked}: teardown first to change it`, {
        subject: paths.cluster,
      });
    };
    if (spec.servicePort !== undefined && spec.servicePort !== 0 && spec.servicePort !== existing.service.port) {
      mismatch('service port', existing.service.port, spec.servicePort);
    }
    if (spec.affinityMs !== undefined && spec.affinityMs !== existing.affinityMs) mismatch('affinityMs', existing.affinityMs, spec.affinityMs);
    if (spec.network !== undefined && spec.network !== existing.network) mismatch('network', existing.network, spec.network);
    return existing;
  }
  const subnet = subnetFor(paths.stateDir);
  // Chosen once and recorded: relays are started with the upstream's port, devices pin the service's.
  const servicePort = spec.servicePort === undefined ? DEFAULT_SERVICE_PORT : spec.servicePort === 0 ? await stablePort('udp', new Set()) : spec.servicePort;
  const upstreamPort = await stablePort('udp', new Set([servicePort]));
  const cluster: ClusterRecord = {
    version: STATE_VERSION,
    name: spec.name,
    createdAt: Date.now(),
    network: spec.network ?? (await detectNetworkMode(subnet)),
    subnet,
    service: { address: HOST_ADDRESS, port: servicePort },
    upstream: { address: HOST_ADDRESS, port: upstreamPort },
    affinityMs: spec.affinityMs ?? DEFAULT_AFFINITY_MS,
  };
  await writeJsonAtomic(paths.cluster, cluster);
  return cluster;
}

/**
 * The running service's record, starting the service process when none runs, or when it runs with an operator
 * certificate other than the folder's (it could not probe relays started with a new CA). Call under the state lock.
 */
async function ensureService(
  paths: LocalPaths,
  cluster: ClusterRecord,
  pki: LocalPki,
  deadline: number,
  spec: Pick<Checked, 'notify' | 'restartBackoffScale'>,
): Promise<ServiceRecord> {
  const markers = serviceMarkers(paths.stateDir);
  const current = await readService(paths);
  if (current !== null && processMatches(current.pid, markers)) {
    if (current.tlsCertificate === pki.operator.fingerprint256) return current;
    await stopProcesses([{ pid: current.pid, markers }], SERVICE_STOP_GRACE_MS);
    spec.notify({ kind: 'service-restarted', message: 'restarted the local service: it ran with a certificate reissued since' });
  }
  const pid = await spawnDetached({
    script: SERVICE_MAIN,
    args: ['--state-dir', paths.stateDir, ...(spec.restartBackoffScale === 1 ? [] : [RESTART_BACKOFF_SCALE_FLAG, String(spec.restartBackoffScale)])],
    logFile: serviceLog(paths),
    header: { msg: 'local platform: starting the service process', service: cluster.service, upstream: cluster.upstream },
    env: {},
  });
  for (;;) {
    const record = await readService(paths).catch(() => null);
    if (record?.pid === pid) return record;
    if (!processMatches(pid, markers)) {
      throw new LocalPlatformError(
        LocalErrorCode.StartFailed,
        `the local service process exited while starting; ${serviceLog(paths)} ends with:\n${await logTail(serviceLog(paths))}`,
        { subject: serviceLog(paths) },
      );
    }
    if (Date.now() >= deadline) {
      await stopProcesses([{ pid, markers }], 1_000).catch(() => undefined);
      throw new LocalPlatformError(LocalErrorCode.DeployTimeout, `the local service process did not listen in time; see ${serviceLog(paths)}`, {
        subject: serviceLog(paths),
      });
    }
    await sleep(50);
  }
}

/**
 * Waits until every pod of `set` is ready and the service front routes to each of them. A relay that exits
 * meanwhile fails the deploy at once with the end of its log, rather than after the controller's restarts.
 */
async function waitUntilServing(platform: LocalPlatform, paths: LocalPaths, set: string, deadline: number): Promise<void> {
  let problem = 'not checked yet';
  const restartsBefore = new Map<string, number>();
  for (;;) {
    const pods = await platform.listPods(set);
    for (const pod of pods) if (!restartsBefore.has(pod.name)) restartsBefore.set(pod.name, pod.restartCount ?? 0);
    const failed = pods.find((pod) => pod.phase !== 'Running' && (pod.phase === 'Failed' || pod.waiting != null || (pod.restartCount ?? 0) > restartsBefore.get(pod.name)!));
    if (failed !== undefined) {
      // Restarted since: the run that exited logged into the previous log.
      const log = (failed.restartCount ?? 0) > restartsBefore.get(failed.name)! ? previousPodLog(paths, failed.name) : podLog(paths, failed.name);
      throw new LocalPlatformError(LocalErrorCode.StartFailed, `${failed.name} exited while starting; ${log} ends with:\n${await logTail(log)}`, {
        subject: failed.name,
      });
    }
    const notReady = pods.filter((pod) => !pod.ready).map((pod) => `${pod.name} ${pod.phase}`);
    const routed = new Set((await readService(paths))?.backends.filter((b) => b.ready).map((b) => b.id) ?? []);
    const unrouted = pods.filter((pod) => !routed.has(pod.name)).map((pod) => pod.name);
    if (pods.length > 0 && notReady.length === 0 && unrouted.length === 0) return;
    problem = notReady.length > 0 ? `not ready: ${notReady.join(', ')}` : `not yet routed by the service: ${unrouted.join(', ')}`;
    if (Date.now() >= deadline) {
      throw new LocalPlatformError(LocalErrorCode.DeployTimeout, `${set} did not become ready in time (${problem}); logs are in ${paths.logs}`, {
        subject: set,
      });
    }
    await sleep(100);
  }
}

export async function localClusterInfo(options: LocalOptions): Promise<LocalClusterInfo | null> {
  const paths = localPaths(checkStateDir(options.stateDir));
  const cluster = await readCluster(paths);
  if (cluster === null) return null;
  if (options.name !== undefined && options.name !== cluster.name) {
    throw new LocalPlatformError(LocalErrorCode.OtherFleet, `the local cluster in ${paths.stateDir} runs fleet "${cluster.name}", not "${options.name}"`, {
      subject: paths.cluster,
    });
  }
  const service = await readService(paths);
  const serviceRunning = service !== null && processMatches(service.pid, serviceMarkers(paths.stateDir));
  const keyFile = localPkiPaths(paths.stateDir).dtlsPublicKey;
  let serverPublicKey: Buffer;
  try {
    serverPublicKey = await fs.readFile(keyFile);
  } catch (error) {
    throw new LocalPlatformError(LocalErrorCode.StateIo, `cannot read the relays' DTLS public key ${keyFile}: ${(error as Error).message}; deploy again`, {
      subject: keyFile,
      cause: error,
    });
  }
  return {
    stateDir: paths.stateDir,
    name: cluster.name,
    service: serviceRunning ? { ...service.service } : { ...cluster.service },
    upstream: serviceRunning ? { ...service.upstream } : { ...cluster.upstream },
    serverPublicKey,
    sets: (await listJson(paths.sets)).sort(),
    serviceRunning,
    logs: paths.logs,
    network: cluster.network,
  };
}

function checkStateDir(stateDir: unknown): string {
  if (typeof stateDir !== 'string' || stateDir === '') {
    throw new LocalPlatformError(LocalErrorCode.InvalidOption, `stateDir must be a non-empty path, got ${JSON.stringify(stateDir)}`);
  }
  return stateDir;
}

/**
 * Stops the service process, then every relay of the state folder, then removes <stateDir>/local (the PKI stays, so
 * devices that pinned the DTLS key still trust the next deploy). The service goes first: its controller would
 * otherwise start again the relays it sees exit. Idempotent; `name` is not checked, so a cluster of any fleet is
 * torn down.
 */
export async function teardownLocal(options: LocalOptions & { graceMs?: number }): Promise<void> {
  const paths = localPaths(checkStateDir(options.stateDir));
  const pki = { paths: localPkiPaths(paths.stateDir) };
  const services: Target[] = [];
  const service = await readService(paths).catch(() => null);
  if (service !== null) services.push({ pid: service.pid, markers: serviceMarkers(paths.stateDir) });
  for (const pid of findProcesses(serviceMarkers(paths.stateDir))) services.push({ pid, markers: serviceMarkers(paths.stateDir) });
  await stopProcesses(dedupe(services), SERVICE_STOP_GRACE_MS);

  const relays: Target[] = [];
  for (const name of await listJson(paths.pods)) {
    // A corrupt record cannot name its process; the scan below still finds it.
    const pod: PodRecord | null = await readPod(paths, name).catch(() => null);
    const target = pod === null ? null : relayTarget(pki, pod);
    if (target !== null) relays.push(target);
  }
  // Processes whose records were lost (killed between spawn and write): found by their command line.
  const relayProbe = [RELAY_MAIN, pki.paths.dtlsKey];
  for (const pid of findProcesses(relayProbe)) relays.push({ pid, markers: relayProbe });
  await stopProcesses(dedupe(relays), options.graceMs ?? 7_000);
  await fs.rm(paths.local, { recursive: true, force: true });
}

function dedupe(targets: readonly Target[]): Target[] {
  const seen = new Set<number>();
  return targets.filter((target) => !seen.has(target.pid) && seen.add(target.pid) !== undefined);
}
