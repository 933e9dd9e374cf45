/**
 * Local pods as records and processes, shared by the Platform (createSet, deploy's restarts) and the controller in
 * the service process (controller.ts): a pod's record for a set and ordinal, whether its relay runs, how it is
 * started, and the peers file every relay reads. Writers call these under the state lock.
 */
import { rename } from 'node:fs/promises';
import { HOST_ADDRESS, POD_PORTS, podAddress, stablePort } from './addresses.ts';
import type { LocalPki } from './pki.ts';
import { processMatches, type Target } from './processes.ts';
import { relayTarget, startRelay } from './relays.ts';
import { listJson, writeJsonAtomic, writeTextAtomic } from './state-fs.ts';
import {
  STATE_VERSION,
  peersFile,
  podFile,
  podLog,
  previousPodLog,
  readPod,
  type ClusterRecord,
  type LocalPaths,
  type PodRecord,
  type SetRecord,
} from './state.ts';

export const podName = (set: string, ordinal: number): string => `${set}-${ordinal}`;

/**
 * A new pod of `set` at `ordinal`, not started. Pod-ips mode: the set's slot and the ordinal give the address, the
 * ports are the container's. Shared mode: 127.0.0.1 with free ports not in `taken` (added to it).
 */
export async function newPodRecord(
  cluster: ClusterRecord,
  set: Pick<SetRecord, 'name' | 'image' | 'labels' | 'slot'>,
  ordinal: number,
  taken: Set<number>,
  now: number,
): Promise<PodRecord> {
  const shared = cluster.network === 'shared';
  const dtlsPort = shared ? await stablePort('udp', taken) : POD_PORTS.dtls;
  taken.add(dtlsPort);
  const mgmtPort = shared ? await stablePort('tcp', taken) : POD_PORTS.mgmt;
  taken.add(mgmtPort);
  return {
    version: STATE_VERSION,
    name: podName(set.name, ordinal),
    set: set.name,
    ordinal,
    image: set.image,
    labels: { ...set.labels },
    address: shared ? HOST_ADDRESS : podAddress(cluster.subnet, set.slot, ordinal),
    dtlsPort,
    mgmtPort,
    pid: null,
    createdAt: now,
    deletingAt: null,
    restartCount: 0,
  };
}

/** Ports held by `pods` (shared mode hands out ports no other pod has). */
export function portsOf(pods: readonly PodRecord[]): Set<number> {
  return new Set(pods.flatMap((pod) => [pod.dtlsPort, pod.mgmtPort]));
}

/** Whether the relay process of `pod` runs (its recorded pid, still with this pod's command line). */
export function relayRuns(pki: Pick<LocalPki, 'paths'>, pod: Pick<PodRecord, 'name' | 'pid'>): boolean {
  const target = relayTarget(pki, pod);
  return target !== null && processMatches(target.pid, target.markers);
}

export function relayTargets(pki: Pick<LocalPki, 'paths'>, pods: readonly PodRecord[]): Target[] {
  return pods.map((pod) => relayTarget(pki, pod)).filter((target): target is Target => target !== null);
}

export interface PodScan {
  records: PodRecord[];
  /** Files in pods/ that could not be read or do not hold a pod record, with why. */
  unreadable: { name: string; error: Error }[];
}

/** Every pod record; unreadable files are listed apart, never thrown. */
export async function scanPods(paths: LocalPaths): Promise<PodScan> {
  const names = await listJson(paths.pods);
  const results = await Promise.allSettled(names.map((name) => readPod(paths, name)));
  const scan: PodScan = { records: [], unreadable: [] };
  results.forEach((result, i) => {
    if (result.status === 'rejected') scan.unreadable.push({ name: names[i]!, error: result.reason as Error });
    // null: removed since it was listed.
    else if (result.value !== null) scan.records.push(result.value);
  });
  return scan;
}

export interface PodLaunch {
  cluster: ClusterRecord;
  pki: LocalPki;
  /** Start the relay with --await-restore (every set an update created). */
  awaitRestore: boolean;
  /** The relay ran before: keep its last log as <pod>.previous.log. */
  restart: boolean;
}

/**
 * Writes `started` (pid null), refreshes the peers file, starts the relay and writes its pid. The record comes first:
 * a crash between the writes leaves a record without a pid, which the controller starts (after looking for a
 * process of that pod, so it never starts a second one). Returns the record as written last. Under the state lock.
 */
export async function launchPod(paths: LocalPaths, started: PodRecord, launch: PodLaunch): Promise<PodRecord> {
  const pod: PodRecord = { ...started, pid: null, tlsCertificate: launch.pki.relay.fingerprint256 };
  await writeJsonAtomic(podFile(paths, pod.name), pod);
  await writePeers(paths);
  if (launch.restart) await rename(podLog(paths, pod.name), previousPodLog(paths, pod.name)).catch(() => undefined);
  const pid = await startRelay(paths, {
    pod,
    pki: launch.pki,
    upstream: launch.cluster.upstream,
    awaitRestore: launch.awaitRestore,
    peersFile: peersFile(paths),
  });
  const running: PodRecord = { ...pod, pid };
  await writeJsonAtomic(podFile(paths, pod.name), running);
  return running;
}

/**
 * Every live pod's management endpoint, one per line: what a headless Service's DNS name gives relays on
 * Kubernetes, so that a relay can claim the session of a device the front moved to it. Relays re-read it every
 * few seconds, so pods started earlier learn about later ones and forget deleted ones. Under the state lock.
 */
export async function writePeers(paths: LocalPaths): Promise<void> {
  const { records } = await scanPods(paths);
  const lines = records.filter((pod) => pod.deletingAt === null).map((pod) => `${pod.address}:${pod.mgmtPort}\n`);
  await writeTextAtomic(peersFile(paths), lines.join(''));
}
