/**
 * The local cluster as files, shared by every relayctl process and the service process:
 *
 *   <stateDir>/
 *     pki/                      certificates and the DTLS key (pki.ts); kept by teardown
 *     local/
 *       .lock                   held during every read-modify-write (state-fs.ts)
 *       cluster.json            ClusterRecord: base name, service and upstream addresses, pod subnet
 *       revision                last resourceVersion handed out (one counter for all sets, like etcd's)
 *       service.json            ServiceRecord: the service process, and the backends its front routes to
 *       sets/<set>.json         SetRecord ("StatefulSet"): replicas, image, labels, annotations, resourceVersion
 *       pods/<pod>.json         PodRecord ("Pod"): addresses, labels, pid, deletion mark
 *       leases/<lock>.json      LeaseRecord: the update lock
 *       peers                   host:port of every live pod's management API, one per line (relayd --peers-file)
 *       logs/<pod>.log          relayd's JSON lines; logs/service.log the service's
 *
 * Pods are files of their own, not part of their set's file, so that labelling a pod does not change the set's
 * resourceVersion (as in Kubernetes, where they are separate objects).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { readJson, writeJsonAtomic } from './state-fs.ts';

export const STATE_VERSION = 1;

export interface LocalPaths {
  stateDir: string;
  local: string;
  lock: string;
  cluster: string;
  revision: string;
  service: string;
  sets: string;
  pods: string;
  leases: string;
  logs: string;
}

export function localPaths(stateDir: string): LocalPaths {
  const root = path.resolve(stateDir);
  const local = path.join(root, 'local');
  return {
    stateDir: root,
    local,
    lock: path.join(local, '.lock'),
    cluster: path.join(local, 'cluster.json'),
    revision: path.join(local, 'revision'),
    service: path.join(local, 'service.json'),
    sets: path.join(local, 'sets'),
    pods: path.join(local, 'pods'),
    leases: path.join(local, 'leases'),
    logs: path.join(local, 'logs'),
  };
}

export const setFile = (paths: LocalPaths, set: string): string => path.join(paths.sets, `${set}.json`);
export const podFile = (paths: LocalPaths, pod: string): string => path.join(paths.pods, `${pod}.json`);
export const peersFile = (paths: LocalPaths): string => path.join(paths.local, 'peers');
export const podLog = (paths: LocalPaths, pod: string): string => path.join(paths.logs, `${pod}.log`);
export const serviceLog = (paths: LocalPaths): string => path.join(paths.logs, 'service.log');
// Lock names are free text; encoding keeps them one path segment.
export const leaseFile = (paths: LocalPaths, name: string): string => path.join(paths.leases, `${encodeURIComponent(name)}.json`);

export async function ensureLayout(paths: LocalPaths): Promise<void> {
  for (const dir of [paths.local, paths.sets, paths.pods, paths.leases, paths.logs]) await fs.mkdir(dir, { recursive: true, mode: 0o700 });
}

/**
 * How pods get addresses. pod-ips: each pod its own loopback IP with the container's fixed ports (Linux routes all
 * of 127.0.0.0/8 to lo). shared: every pod on 127.0.0.1 with ports of its own, for systems where only 127.0.0.1
 * exists (macOS without aliases).
 */
export type NetworkMode = 'pod-ips' | 'shared';

export interface ClusterRecord {
  version: typeof STATE_VERSION;
  /** Base name of the fleet: sets are <name>-a and <name>-b, pods carry app=<name>. */
  name: string;
  createdAt: number;
  network: NetworkMode;
  /** pod-ips: pods of set slot s, ordinal n get 127.<b>.<c + s>.<n + 1>. */
  subnet: { b: number; c: number };
  /** Chosen at the first deploy and kept: the service process binds them again whenever it restarts. */
  service: { address: string; port: number };
  upstream: { address: string; port: number };
  affinityMs: number;
}

export interface SetRecord {
  version: typeof STATE_VERSION;
  name: string;
  replicas: number;
  image: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  resourceVersion: string;
  createdAt: number;
  /** Whether its relays start with --await-restore (every set but the one deploy creates). */
  awaitRestore: boolean;
  /** Third-octet offset of its pods in pod-ips mode. */
  slot: number;
}

export interface PodRecord {
  version: typeof STATE_VERSION;
  name: string;
  set: string;
  ordinal: number;
  image: string;
  labels: Record<string, string>;
  address: string;
  dtlsPort: number;
  mgmtPort: number;
  /** Null between writing the record and starting the process (a crash there leaves a Failed pod). */
  pid: number | null;
  createdAt: number;
  /** Set by deleteSet: the pod is terminating and leaves listPods once its process is gone. */
  deletingAt: number | null;
  /**
   * SHA-256 fingerprint of the relay certificate its process was started with; deploy restarts a relay whose
   * certificate was reissued since. Absent in records of a relayctl that did not note it.
   */
  tlsCertificate?: string;
}

export interface ServiceBackend {
  id: string;
  address: string;
  port: number;
  ready: boolean;
}

export interface ServiceRecord {
  version: typeof STATE_VERSION;
  pid: number;
  startedAt: number;
  service: { address: string; port: number };
  upstream: { address: string; port: number };
  /** What the front routes to, as of `updatedAt`; rewritten only when it changes. */
  backends: ServiceBackend[];
  updatedAt: number;
  /** SHA-256 fingerprint of the operator certificate it probes relays with (see PodRecord.tlsCertificate). */
  tlsCertificate?: string;
}

export interface LeaseRecord {
  version: typeof STATE_VERSION;
  name: string;
  owner: string;
  /** Identifies one acquisition: renew and release act only on their own. */
  token: string;
  acquiredAt: number;
  expiresAt: number;
}

// ---- shape checks: files may have been edited by hand -----------------------------------------------------------

type Shape = Record<string, (value: unknown) => boolean>;

const isString = (value: unknown): boolean => typeof value === 'string';
const isInt = (value: unknown): boolean => Number.isInteger(value);
const isNumber = (value: unknown): boolean => typeof value === 'number' && Number.isFinite(value);
const isBool = (value: unknown): boolean => typeof value === 'boolean';
const nullable = (check: (value: unknown) => boolean) => (value: unknown): boolean => value === null || check(value);
const optional = (check: (value: unknown) => boolean) => (value: unknown): boolean => value === undefined || check(value);
const isStringMap = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((entry) => typeof entry === 'string');
const isEndpoint = (value: unknown): boolean => matches(value, { address: isString, port: isInt });

function matches(value: unknown, shape: Shape): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const record = value as Record<string, unknown>;
  return Object.entries(shape).every(([key, check]) => check(record[key]));
}

const versioned = (value: unknown): boolean => value === STATE_VERSION;

export const isClusterRecord = (value: unknown): value is ClusterRecord =>
  matches(value, {
    version: versioned,
    name: isString,
    createdAt: isNumber,
    network: (v) => v === 'pod-ips' || v === 'shared',
    subnet: (v) => matches(v, { b: isInt, c: isInt }),
    service: isEndpoint,
    upstream: isEndpoint,
    affinityMs: isInt,
  });

export const isSetRecord = (value: unknown): value is SetRecord =>
  matches(value, {
    version: versioned,
    name: isString,
    replicas: isInt,
    image: isString,
    labels: isStringMap,
    annotations: isStringMap,
    resourceVersion: isString,
    createdAt: isNumber,
    awaitRestore: isBool,
    slot: isInt,
  });

export const isPodRecord = (value: unknown): value is PodRecord =>
  matches(value, {
    version: versioned,
    name: isString,
    set: isString,
    ordinal: isInt,
    image: isString,
    labels: isStringMap,
    address: isString,
    dtlsPort: isInt,
    mgmtPort: isInt,
    pid: nullable(isInt),
    createdAt: isNumber,
    deletingAt: nullable(isNumber),
    tlsCertificate: optional(isString),
  });

export const isServiceRecord = (value: unknown): value is ServiceRecord =>
  matches(value, {
    version: versioned,
    pid: isInt,
    startedAt: isNumber,
    service: isEndpoint,
    upstream: isEndpoint,
    backends: (v) => Array.isArray(v) && v.every((b) => matches(b, { id: isString, address: isString, port: isInt, ready: isBool })),
    updatedAt: isNumber,
    tlsCertificate: optional(isString),
  });

export const isLeaseRecord = (value: unknown): value is LeaseRecord =>
  matches(value, { version: versioned, name: isString, owner: isString, token: isString, acquiredAt: isNumber, expiresAt: isNumber });

export const readCluster = (paths: LocalPaths): Promise<ClusterRecord | null> =>
  readJson(paths.cluster, isClusterRecord, `a local cluster record (version ${STATE_VERSION})`);
export const readService = (paths: LocalPaths): Promise<ServiceRecord | null> =>
  readJson(paths.service, isServiceRecord, `a service record (version ${STATE_VERSION})`);
export const readSet = (paths: LocalPaths, set: string): Promise<SetRecord | null> =>
  readJson(setFile(paths, set), isSetRecord, `a set record (version ${STATE_VERSION})`);
export const readPod = (paths: LocalPaths, pod: string): Promise<PodRecord | null> =>
  readJson(podFile(paths, pod), isPodRecord, `a pod record (version ${STATE_VERSION})`);
export const readLease = (paths: LocalPaths, name: string): Promise<LeaseRecord | null> =>
  readJson(leaseFile(paths, name), isLeaseRecord, `a lease record (version ${STATE_VERSION})`);

/** The next resourceVersion. Call only under the state lock. */
export async function nextRevision(paths: LocalPaths): Promise<string> {
  let current = 0;
  try {
    current = Number.parseInt(await fs.readFile(paths.revision, 'utf8'), 10);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  // A lost or mangled counter restarts from the clock, which is above anything handed out before.
  const next = Number.isSafeInteger(current) && current > 0 ? current + 1 : Date.now();
  await writeJsonAtomic(paths.revision, next);
  return String(next);
}

/** Kubernetes object names (DNS-1123 labels): they become file names and process arguments. */
const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function isObjectName(name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name);
}
