/**
 * The Kubernetes platform: the only part of relayctl that imports @kubernetes/client-node. See
 * kubernetes-platform.ts (the Platform), config.ts (which cluster, context and namespace), mgmt-access.ts (how the
 * relays are reached), lease-lock.ts (the update lock), dry-run.ts (--dry-run).
 */
import { systemClock, type Clock } from '../../clock.ts';
import { resolveConfig, type ConfigEnvironment, type ConfigOptions } from './config.ts';
import { WriteLog, type DryRunMode, type WriteRecord } from './dry-run.ts';
import { KubeApi } from './kube-api.ts';
import { KubeErrorCode, KubernetesPlatformError } from './kube-errors.ts';
import { isDnsLabel } from './labels.ts';
import { LeaseLocks } from './lease-lock.ts';
import { MgmtAccess, chooseMgmtPath, type MgmtAccessMode, type MgmtPath, type MgmtTlsMaterial } from './mgmt-access.ts';
import { KubernetesPlatform, type PlatformLogEvent } from './kubernetes-platform.ts';
import { KubernetesRelays } from './relay-api.ts';

export interface KubernetesPlatformOptions extends ConfigOptions {
  /** The fleet's base name: StatefulSets `<name>-a`/`<name>-b`, Lease `relayctl-<name>`, Secret `<name>-relayctl-tls`. */
  name: string;
  /** How to reach the relays' management API. Default auto (direct in a cluster, else port-forward). */
  mgmtAccess?: MgmtAccessMode;
  /** relayctl's operator certificate (PEM); else read from Secret `<name>-relayctl-tls` when first needed. */
  mgmtTls?: MgmtTlsMaterial;
  /** Default none. */
  dryRun?: DryRunMode;
  /** Each write a dry run records, as it happens (also kept in `writes`). */
  onWrite?: (record: WriteRecord) => void;
  clock?: Clock;
  /** Warnings the platform has for the user (a watch that fails and falls back to reads). */
  log?: (event: PlatformLogEvent) => void;
  /** One API request. Default 30 s. */
  requestTimeoutMs?: number;
  /** One restore call. Default 120 s. */
  restoreTimeoutMs?: number;
  /** How long the API server keeps each watch open before the platform resumes it. Default 25 s. */
  watchTimeoutSeconds?: number;
  /** Where config resolution looks (environment, home, service account); tests pass their own. */
  environment?: ConfigEnvironment;
}

/** What the platform acts on: the CLI prints it on stderr before any write. */
export interface KubernetesTarget {
  context: string;
  namespace: string;
  server: string;
  user: string;
  /** Where the configuration came from (the kubeconfig files, or the in-cluster service account). */
  source: string;
  inCluster: boolean;
  mgmtAccess: MgmtPath;
  dryRun: DryRunMode;
}

export interface OpenedKubernetesPlatform {
  platform: KubernetesPlatform;
  target: KubernetesTarget;
  /** The writes a dry run recorded, in order (empty without a dry run). */
  writes: readonly WriteRecord[];
  /** Stops the watches, aborts calls in flight and closes the connections to relays. Idempotent. */
  close(): Promise<void>;
}

export async function openKubernetesPlatform(options: KubernetesPlatformOptions): Promise<OpenedKubernetesPlatform> {
  // "<name>-a" must leave room for the controller's revision-hash label (see createSet).
  if (typeof options.name !== 'string' || !isDnsLabel(options.name) || options.name.length > 50) {
    throw new KubernetesPlatformError(KubeErrorCode.Config, `name must be a DNS label of at most 50 characters (the sets are <name>-a and <name>-b), got ${JSON.stringify(options.name)}`);
  }
  const config = resolveConfig(options, options.environment);
  const clock = options.clock ?? systemClock;
  const writes = new WriteLog(options.dryRun ?? 'none', options.onWrite);
  const api = new KubeApi({
    kubeConfig: config.kubeConfig,
    server: config.server,
    namespace: config.namespace,
    identity: `${config.user} (context ${config.context})`,
    writes,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  });
  const access = new MgmtAccess({
    path: chooseMgmtPath(options.mgmtAccess ?? 'auto', config.inCluster),
    api,
    fleet: options.name,
    ...(options.mgmtTls === undefined ? {} : { tls: options.mgmtTls }),
    portForward: { kubeConfig: config.kubeConfig, describeFailure: (error, call) => api.describeFailure(error, call) },
  });
  const platform = new KubernetesPlatform({
    api,
    fleet: options.name,
    lock: new LeaseLocks(api, () => clock.now()),
    relay: new KubernetesRelays({ api, access, writes, ...(options.restoreTimeoutMs === undefined ? {} : { restoreTimeoutMs: options.restoreTimeoutMs }) }),
    clock,
    log: options.log ?? (() => undefined),
    ...(options.watchTimeoutSeconds === undefined ? {} : { watchTimeoutSeconds: options.watchTimeoutSeconds }),
  });
  let closing: Promise<void> | null = null;
  return {
    platform,
    target: {
      context: config.context,
      namespace: config.namespace,
      server: config.server,
      user: config.user,
      source: config.source,
      inCluster: config.inCluster,
      mgmtAccess: access.path,
      dryRun: writes.mode,
    },
    writes: writes.records,
    close() {
      closing ??= (async () => {
        platform.stop();
        api.close();
        await access.close();
      })();
      return closing;
    },
  };
}

export { KubernetesPlatform, type PlatformLogEvent } from './kubernetes-platform.ts';
export { KubeErrorCode, KubernetesPlatformError, isKubernetesPlatformError } from './kube-errors.ts';
export type { DryRunMode, WriteRecord } from './dry-run.ts';
export type { MgmtAccessMode, MgmtPath, MgmtTlsMaterial } from './mgmt-access.ts';
export type { ConfigEnvironment } from './config.ts';
