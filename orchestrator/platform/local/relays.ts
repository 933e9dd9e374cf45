/**
 * Local relay pods: how relayd is started for a pod, how its process is recognised, and what its management API
 * says, mapped to the platform's types and errors.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import type { ManagementClient } from '../../../api/management-client.ts';
import { relaydMain } from '../../../relay/entry.ts';
import { RELAYD_NODE_FLAGS } from '../../../relay/runtime-flags.ts';
import { HOST_ADDRESS } from './addresses.ts';
import type { LocalPki } from './pki.ts';
import { spawnDetached, type Target } from './processes.ts';
import { podLog, type LocalPaths, type PodRecord } from './state.ts';

// Shared with the Kubernetes platform.
export { restoreError, toRelayStatus, toRestoreOutcome } from '../relay-calls.ts';

export const RELAY_MAIN = relaydMain();

export function mgmtUrlOf(pod: Pick<PodRecord, 'address' | 'mgmtPort'>): string {
  return `https://${pod.address}:${pod.mgmtPort}`;
}

/** What identifies the relay process of `pod` on this machine: the pod name and this state folder's DTLS key. */
export function relayTarget(pki: Pick<LocalPki, 'paths'>, pod: Pick<PodRecord, 'name' | 'pid'>): Target | null {
  return pod.pid === null ? null : { pid: pod.pid, markers: relayMarkers(pki, pod.name) };
}

export function relayMarkers(pki: Pick<LocalPki, 'paths'>, pod: string): string[] {
  return [RELAY_MAIN, pod, pki.paths.dtlsKey];
}

export interface RelayLaunch {
  pod: PodRecord;
  pki: Pick<LocalPki, 'paths' | 'servername'>;
  upstream: { address: string; port: number };
  awaitRestore: boolean;
  logLevel?: string;
  /** File listing every pod's management endpoint: relays claim sessions from each other through it. */
  peersFile?: string;
}

/**
 * Starts relayd for a pod, detached. The straggler tunnel listens on 127.0.0.1, not on the pod address: a relay's
 * outgoing connections leave from 127.0.0.1 (the kernel's source address for all of 127.0.0.0/8), and the old
 * relay sends stragglers to the address the successor's restore request came from. On Kubernetes both are the
 * pod IP. Its port is any free one: relays announce it to each other during the handover.
 */
export function startRelay(paths: LocalPaths, launch: RelayLaunch): Promise<number> {
  const { pod, pki } = launch;
  const args = [
    '--pod-name', pod.name,
    '--dtls-host', pod.address, '--dtls-port', String(pod.dtlsPort),
    '--mgmt-host', pod.address, '--mgmt-port', String(pod.mgmtPort),
    '--tunnel-host', HOST_ADDRESS, '--tunnel-port', '0',
    // Probes here go to the management port; a fixed health port would clash where pods share 127.0.0.1.
    '--health-port', '0',
    '--dtls-key', pki.paths.dtlsKey,
    '--tls-cert', pki.paths.relayCert, '--tls-key', pki.paths.relayKey, '--tls-ca', pki.paths.ca,
    '--peer-servername', pki.servername,
    '--upstream', `${launch.upstream.address}:${launch.upstream.port}`,
    '--log-level', launch.logLevel ?? 'info',
    ...(launch.awaitRestore ? ['--await-restore'] : []),
    ...(launch.peersFile === undefined ? [] : ['--peers-file', launch.peersFile]),
  ];
  return spawnDetached({
    script: RELAY_MAIN,
    nodeArgs: RELAYD_NODE_FLAGS,
    args,
    logFile: podLog(paths, pod.name),
    // The image is only a label locally (every set runs this checkout); the header line and the environment
    // make it visible in the pod's log and in `ps e`.
    header: {
      msg: 'local platform: starting relay',
      pod: pod.name,
      set: pod.set,
      image: pod.image,
      address: pod.address,
      awaitRestore: launch.awaitRestore,
    },
    env: { RELAY_IMAGE: pod.image },
  });
}

/** Whether the relay ever reached "relay serving" (it listens then), from the head of its log. */
export async function relayListened(paths: LocalPaths, pod: string): Promise<boolean> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(podLog(paths, pod), 'r');
    // The line comes right after startup; a long log need not be read.
    const head = Buffer.alloc(256 * 1024);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead).includes('"msg":"relay serving"');
  } catch {
    return false;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** The last lines of a log, for error messages. */
export async function logTail(file: string, lines = 8): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface Probe {
  /** The management port answered (readyz 200 or 503). */
  answered: boolean;
  ready: boolean;
}

export async function probeReadiness(client: ManagementClient, mgmtUrl: string): Promise<Probe> {
  try {
    const readyz = await client.readyz(mgmtUrl);
    return { answered: true, ready: readyz.ready };
  } catch {
    return { answered: false, ready: false };
  }
}
