import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { formatDuration, parseDuration } from '../lib/duration.ts';
import { loadClientKeys } from './client-keys.ts';
import { parsePeers, type PeerEntry } from './cluster/peers.ts';
import type { DtlsLimits } from './dtls/adapter.ts';
import { DEFAULT_LIMITS } from './dtls/adapter.ts';
import { loadServerKey } from './dtls/server-key.ts';
import { RelayError } from './errors.ts';
import type { TlsMaterial } from './mgmt/server.ts';
import { DEFAULT_SERVICE_ACCOUNT_DIR, resolveKubernetesApi, type KubernetesApiConfig } from './startup/kubernetes-api.ts';
import type { UpstreamMode } from './upstream/forwarder.ts';
import { VERSION } from './version.ts';

/** The relay's configuration: checked once, then frozen. */
export interface RelayConfig {
  readonly podName: string;
  /** From the downward API (or flags); null outside a pod. */
  readonly podNamespace: string | null;
  readonly podIp: string | null;
  readonly dtls: { readonly host: string; readonly port: number; readonly key: Buffer };
  readonly upstream: { readonly host: string; readonly port: number; readonly mode: UpstreamMode };
  readonly mgmt: { readonly host: string; readonly port: number; readonly tls: TlsMaterial; readonly peerServername: string | undefined };
  readonly tunnel: { readonly host: string; readonly port: number };
  /** Plain-HTTP probes and metrics (no client certificate); null when off. */
  readonly health: { readonly host: string; readonly port: number } | null;
  /** Started by an update: not ready until a restore succeeded. */
  readonly awaitRestore: boolean;
  /** How long a relay awaiting restore waits to be driven before it decides alone. */
  readonly restoreWaitMs: number;
  /** Where the start-up restore decision reads its double and itself (never @kubernetes/client-node). */
  readonly kubernetesApi: KubernetesApiConfig;
  /** Sibling relays (management endpoints) that may hold a session whose device now reaches this one. */
  readonly peers: readonly PeerEntry[];
  readonly peersFile: string | null;
  /** SPKI DER (hex) of allowed device keys; null = any device with a valid key pair. */
  readonly clientKeys: ReadonlySet<string> | null;
  readonly limits: Readonly<DtlsLimits>;
  readonly logLevel: string;
}

export interface RelaydOptions {
  dtlsHost?: string;
  dtlsPort: number;
  dtlsKey: string;
  upstream: { host: string; port: number };
  upstreamIdentity: boolean;
  mgmtHost?: string;
  mgmtPort: number;
  healthHost?: string;
  healthPort: number | 'off';
  tlsCert: string;
  tlsKey: string;
  tlsCa: string;
  peerServername?: string;
  tunnelHost?: string;
  tunnelPort: number;
  awaitRestore: boolean;
  restoreWait: number;
  kubernetesApi: string;
  serviceAccountDir: string;
  peers?: PeerEntry[];
  peersFile?: string;
  podName: string;
  podNamespace?: string;
  podIp?: string;
  clientKeys?: string;
  maxSessions: number;
  maxHandshakes: number;
  handshakeTimeout: number;
  handshakeRatePerSource: number;
  parkAfter: number;
  sessionExpiry: number;
  logLevel: string;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`expected a port number 0-65535, got "${value}"`);
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive whole number, got "${value}"`);
  return n;
}

function duration(value: string): number {
  try {
    return parseDuration(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** host:port, with [v6]:port for IPv6. */
export function hostPort(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value.trim());
  if (match === null) throw new InvalidArgumentError(`expected host:port (or [ipv6]:port), got "${value}"`);
  return { host: match[1] ?? match[2]!, port: port(match[3]!) };
}

/** A port, or `off` (not null: commander turns a parser's null into ''). */
function portOrOff(value: string): number | 'off' {
  return value.trim().toLowerCase() === 'off' ? 'off' : port(value);
}

function ipAddress(value: string): string {
  if (isIP(value.trim()) === 0) throw new InvalidArgumentError(`expected an IPv4 or IPv6 address, got "${value}"`);
  return value.trim();
}

/**
 * A boolean flag that also reads its environment variable by value: commander alone would turn
 * RELAY_AWAIT_RESTORE=false on, because it only looks at whether the variable is set.
 */
function booleanValue(value: string): boolean {
  const text = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(text)) return true;
  if (['false', '0', 'no', 'off', ''].includes(text)) return false;
  throw new InvalidArgumentError(`expected true or false, got "${value}"`);
}

function booleanOption(flags: string, description: string): Option {
  return new Option(`${flags} [boolean]`, description).default(false).preset('true').argParser(booleanValue);
}

/**
 * Default addresses when the pod IP is known. UDP (devices, tunnel): the pod IP, so datagrams leave from the
 * address devices and sibling relays know. TCP (management, health): the pod IP only when it is a loopback
 * address (pods sharing one host's network, as in the tests' API stand-in); otherwise every address, because
 * kubectl port-forward (relayctl's way in from outside the cluster) connects to localhost inside the pod.
 */
export function defaultBinds(podIp: string | null): { udp: string; tcp: string } {
  if (podIp === null) return { udp: '0.0.0.0', tcp: '0.0.0.0' };
  const v6 = isIP(podIp) === 6;
  const loopback = v6 ? podIp === '::1' : podIp.startsWith('127.');
  return { udp: podIp, tcp: loopback ? podIp : v6 ? '::' : '0.0.0.0' };
}

function kubernetesApiValue(value: string): string {
  const text = value.trim();
  if (text === 'auto' || text === 'off') return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(`expected auto, off or an https URL, got "${value}"`);
  }
  if (url.protocol !== 'https:') throw new InvalidArgumentError(`expected auto, off or an https URL, got "${value}"`);
  return url.origin;
}

function peerList(value: string): PeerEntry[] {
  try {
    return parsePeers(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** How long a relay awaiting restore waits to be driven (docs/design/contracts.md). */
const DEFAULT_RESTORE_WAIT_MS = 120_000;

export function relaydCommand(): Command {
  const env = (option: Option, name: string): Option => option.env(`RELAY_${name}`);
  return new Command('relayd')
    .description('DTLS 1.2 relay: terminates device sessions, forwards payloads to an upstream UDP service, and hands sessions over to a successor without a handshake.')
    .version(VERSION)
    .addOption(env(new Option('--dtls-host <address>', 'address to listen on for devices (:: for dual-stack; default: the pod IP when given, else 0.0.0.0)'), 'DTLS_HOST'))
    .addOption(env(new Option('--dtls-port <port>', 'UDP port for devices').default(5684).argParser(port), 'DTLS_PORT'))
    .addOption(env(new Option('--dtls-key <file>', 'server private key, P-256, PEM or DER (devices pin its public key)').makeOptionMandatory(), 'DTLS_KEY'))
    .addOption(env(new Option('--upstream <host:port>', 'upstream UDP service').argParser(hostPort).makeOptionMandatory(), 'UPSTREAM'))
    .addOption(env(booleanOption('--upstream-identity', 'one shared upstream socket; prefix every datagram both ways with the 32-byte SHA-256 of the device public key'), 'UPSTREAM_IDENTITY'))
    .addOption(env(new Option('--mgmt-host <address>', 'address of the management HTTPS endpoint (default: the pod IP when it is a loopback address, else all addresses: kubectl port-forward connects to localhost in the pod)'), 'MGMT_HOST'))
    .addOption(env(new Option('--mgmt-port <port>', 'management HTTPS port (mutual TLS)').default(8443).argParser(port), 'MGMT_PORT'))
    .addOption(env(new Option('--health-host <address>', 'address of the plain-HTTP health port (default: as --mgmt-host)'), 'HEALTH_HOST'))
    .addOption(env(new Option('--health-port <port|off>', 'plain-HTTP port serving only /livez, /readyz and /metrics, for kubelet probes and Prometheus (no client certificate); 0 = any, off = none').default(8080).argParser(portOrOff), 'HEALTH_PORT'))
    .addOption(env(new Option('--tls-cert <file>', 'management certificate (PEM); also the client certificate toward other relays').makeOptionMandatory(), 'TLS_CERT'))
    .addOption(env(new Option('--tls-key <file>', 'private key of --tls-cert (PEM)').makeOptionMandatory(), 'TLS_KEY'))
    .addOption(env(new Option('--tls-ca <file>', 'CA (PEM) that signs every management client and peer relay').makeOptionMandatory(), 'TLS_CA'))
    .addOption(env(new Option('--peer-servername <name>', 'name to verify peer relay certificates against when their URLs carry IP addresses'), 'PEER_SERVERNAME'))
    .addOption(env(new Option('--tunnel-host <address>', 'address of the straggler tunnel (UDP, relay to relay; default: the pod IP when given, else 0.0.0.0)'), 'TUNNEL_HOST'))
    .addOption(env(new Option('--tunnel-port <port>', 'UDP port of the straggler tunnel (0 = any)').default(5685).argParser(port), 'TUNNEL_PORT'))
    .addOption(env(booleanOption('--await-restore', 'start not ready and wait for POST /v1/restore (set by the orchestrator on the new set); see --restore-wait'), 'AWAIT_RESTORE'))
    .addOption(env(new Option('--restore-wait <duration>', 'with --await-restore: how long to wait to be driven before deciding alone (restore from the double if it still carries the restore label, else serve empty)').default(DEFAULT_RESTORE_WAIT_MS, formatDuration(DEFAULT_RESTORE_WAIT_MS)).argParser(duration), 'RESTORE_WAIT'))
    .addOption(env(new Option('--kubernetes-api <auto|off|url>', 'where the start-up restore decision reads this pod and its double: auto = the in-cluster API with the service account when present; off; or an https URL (token and CA from --service-account-dir)').default('auto').argParser(kubernetesApiValue), 'KUBERNETES_API'))
    .addOption(env(new Option('--service-account-dir <dir>', 'folder with the service account token, ca.crt and namespace').default(DEFAULT_SERVICE_ACCOUNT_DIR), 'SERVICE_ACCOUNT_DIR'))
    .addOption(env(new Option('--peers <list>', 'sibling relays as host[:mgmt-port], comma-separated; a name may resolve to many (a headless Service). A session whose device reaches this relay is claimed from whichever holds it').argParser(peerList), 'PEERS'))
    .addOption(env(new Option('--peers-file <file>', 'like --peers, read from a file (commas or lines) and re-read every few seconds'), 'PEERS_FILE'))
    .addOption(env(new Option('--pod-name <name>', 'this pod\'s name (downward API metadata.name): status, logs, and which pod is its double').default(hostname()), 'POD_NAME'))
    .addOption(env(new Option('--pod-namespace <namespace>', 'this pod\'s namespace (downward API metadata.namespace)'), 'POD_NAMESPACE'))
    .addOption(env(new Option('--pod-ip <address>', 'this pod\'s IP (downward API status.podIP); the default address of the binds').argParser(ipAddress), 'POD_IP'))
    .addOption(env(new Option('--client-keys <path>', 'allowed device public keys: a PEM file or a folder of .pem/.der files (default: any device with a key pair; devices without a key are always refused)'), 'CLIENT_KEYS'))
    .addOption(env(new Option('--max-sessions <n>', 'sessions held at most (live and parked)').default(DEFAULT_LIMITS.maxSessions).argParser(positiveInt), 'MAX_SESSIONS'))
    .addOption(env(new Option('--max-handshakes <n>', 'handshakes in progress at most').default(DEFAULT_LIMITS.maxHandshakes).argParser(positiveInt), 'MAX_HANDSHAKES'))
    .addOption(env(new Option('--handshake-timeout <duration>', 'a handshake not finished by then is dropped').default(DEFAULT_LIMITS.handshakeTimeoutMs, formatDuration(DEFAULT_LIMITS.handshakeTimeoutMs)).argParser(duration), 'HANDSHAKE_TIMEOUT'))
    .addOption(env(new Option('--handshake-rate-per-source <n>', 'new handshakes per second per source IP (burst twice that)').default(DEFAULT_LIMITS.handshakesPerSourcePerSecond).argParser(positiveInt), 'HANDSHAKE_RATE_PER_SOURCE'))
    .addOption(env(new Option('--park-after <duration>', 'an idle session frees its native socket after this long').default(DEFAULT_LIMITS.parkAfterIdleMs, formatDuration(DEFAULT_LIMITS.parkAfterIdleMs)).argParser(duration), 'PARK_AFTER'))
    .addOption(env(new Option('--session-expiry <duration>', 'an idle session is forgotten after this long').default(DEFAULT_LIMITS.expireAfterIdleMs, formatDuration(DEFAULT_LIMITS.expireAfterIdleMs)).argParser(duration), 'SESSION_EXPIRY'))
    .addOption(env(new Option('--log-level <level>', 'fatal, error, warn, info, debug or trace').default('info').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']), 'LOG_LEVEL'));
}

async function readNamed(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new RelayError('ERR_RELAY_CONFIG', `${flag} ${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/** Reads the files named by the options and checks them; every error names the flag. */
export async function loadConfig(options: RelaydOptions): Promise<RelayConfig> {
  const key = await readNamed(options.dtlsKey, '--dtls-key');
  loadServerKey(key, `--dtls-key ${options.dtlsKey}`);
  const [cert, tlsKey, ca] = await Promise.all([
    readNamed(options.tlsCert, '--tls-cert'),
    readNamed(options.tlsKey, '--tls-key'),
    readNamed(options.tlsCa, '--tls-ca'),
  ]);
  const clientKeys = options.clientKeys === undefined ? null : await loadClientKeys(options.clientKeys);
  const podIp = options.podIp ?? null;
  const binds = defaultBinds(podIp);
  const mgmtHost = options.mgmtHost ?? binds.tcp;
  const kubernetesApi = await resolveKubernetesApi({
    setting: options.kubernetesApi,
    serviceAccountDir: options.serviceAccountDir,
    podNamespace: options.podNamespace ?? null,
    env: process.env,
  });
  return Object.freeze({
    podName: options.podName,
    podNamespace: options.podNamespace ?? (kubernetesApi.kind === 'off' ? null : kubernetesApi.namespace),
    podIp,
    dtls: Object.freeze({ host: options.dtlsHost ?? binds.udp, port: options.dtlsPort, key }),
    upstream: Object.freeze({ ...options.upstream, mode: options.upstreamIdentity ? 'prefixed' as const : 'per-session' as const }),
    mgmt: Object.freeze({ host: mgmtHost, port: options.mgmtPort, tls: Object.freeze({ cert, key: tlsKey, ca }), peerServername: options.peerServername }),
    health: options.healthPort === 'off' ? null : Object.freeze({ host: options.healthHost ?? mgmtHost, port: options.healthPort }),
    tunnel: Object.freeze({ host: options.tunnelHost ?? binds.udp, port: options.tunnelPort }),
    awaitRestore: options.awaitRestore,
    restoreWaitMs: options.restoreWait,
    kubernetesApi,
    peers: Object.freeze(options.peers ?? []),
    peersFile: options.peersFile ?? null,
    clientKeys,
    limits: Object.freeze({
      maxSessions: options.maxSessions,
      maxHandshakes: options.maxHandshakes,
      handshakeTimeoutMs: options.handshakeTimeout,
      handshakesPerSourcePerSecond: options.handshakeRatePerSource,
      handshakeBurstPerSource: options.handshakeRatePerSource * 2,
      parkAfterIdleMs: options.parkAfter,
      expireAfterIdleMs: options.sessionExpiry,
    }),
    logLevel: options.logLevel,
  });
}
