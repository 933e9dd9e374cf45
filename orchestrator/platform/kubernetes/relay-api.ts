/**
 * The relays' management API as the platform's RelayApi, over whichever path MgmtAccess chose. restore re-reads
 * both pods from the API server (never the cache, never the caller's view) and refuses what the label rule or the
 * ordinals forbid before any relay is called.
 */
import { MANAGEMENT_PATHS } from '../../../api/management.ts';
import { restoreRefusedError, unavailableError } from '../../errors.ts';
import { restoreForbiddenBecause, type PodInfo, type RelayApi, type RelayStatus, type RestoreOutcome } from '../platform.ts';
import { restoreError, toRelayStatus, toRestoreOutcome } from '../relay-calls.ts';
import type { WriteLog } from './dry-run.ts';
import type { KubeApi } from './kube-api.ts';
import { isKubernetesPlatformError } from './kube-errors.ts';
import type { MgmtAccess } from './mgmt-access.ts';
import { toPodInfo } from './pods.ts';

export interface RelaysOptions {
  api: KubeApi;
  access: MgmtAccess;
  writes: WriteLog;
  /** One restore call. Default 120 s (the orchestrator bounds it too). */
  restoreTimeoutMs?: number;
}

export class KubernetesRelays implements RelayApi {
  readonly #api: KubeApi;
  readonly #access: MgmtAccess;
  readonly #writes: WriteLog;
  readonly #restoreTimeoutMs: number;

  constructor(options: RelaysOptions) {
    this.#api = options.api;
    this.#access = options.access;
    this.#writes = options.writes;
    this.#restoreTimeoutMs = options.restoreTimeoutMs ?? 120_000;
  }

  async status(pod: PodInfo): Promise<RelayStatus> {
    const mgmtUrl = pod.mgmtUrl;
    if (mgmtUrl === null) throw unavailableError(`relay.status ${pod.name}: the pod has no management address (${pod.phase})`);
    const client = await this.#access.client();
    let status: RelayStatus;
    try {
      status = toRelayStatus(pod.name, await client.status(this.#access.urlOf({ name: pod.name, mgmtUrl })));
    } catch (error) {
      throw platformCause(error) ?? unavailableError(`relay.status ${pod.name} (${this.#access.path}): ${(error as Error).message}`, error);
    }
    // A pod IP reused by another pod of the fleet would answer for the wrong relay.
    if (status.pod !== pod.name) throw unavailableError(`relay.status ${pod.name}: ${mgmtUrl} answered as ${status.pod}; the pod's address changed`);
    return status;
  }

  async restore(target: PodInfo, source: PodInfo): Promise<RestoreOutcome> {
    // Labels and addresses as the API server has them now.
    const [to, from] = await Promise.all([this.#livePod(target.name), this.#livePod(source.name)]);
    const forbidden = restoreForbiddenBecause(to, from);
    if (forbidden !== null) throw restoreRefusedError(to.name, from.name, forbidden);
    if (to.ordinal !== from.ordinal) {
      throw restoreRefusedError(to.name, from.name, `${from.name} (ordinal ${from.ordinal}) is not the double of ${to.name} (ordinal ${to.ordinal})`);
    }
    if (to.mgmtUrl === null || from.mgmtUrl === null) {
      const missing = to.mgmtUrl === null ? to : from;
      throw unavailableError(`relay.restore ${to.name} from ${from.name}: ${missing.name} has no management address (${missing.phase})`);
    }
    // The target relay reaches its double inside the cluster, by pod IP, whatever path relayctl uses.
    const body = { from: from.mgmtUrl };
    if (this.#writes.keepsBack({ verb: 'post', resource: MANAGEMENT_PATHS.restore, namespace: this.#api.namespace, name: to.name, body }, { relay: true })) {
      return { sessions: 0, skipped: 0, bytes: 0, durationMs: 0, pauseMs: 0 };
    }
    const client = await this.#access.client();
    try {
      return toRestoreOutcome(await client.restore(this.#access.urlOf({ name: to.name, mgmtUrl: to.mgmtUrl }), body, this.#restoreTimeoutMs));
    } catch (error) {
      throw platformCause(error) ?? restoreError(to.name, from.name, error);
    }
  }

  async #livePod(name: string): Promise<PodInfo> {
    const pod = await this.#api.getPod(name);
    if (pod === null) throw unavailableError(`relay ${name}: no such pod`);
    if (pod.metadata?.deletionTimestamp != null) throw unavailableError(`relay ${name}: the pod is terminating`);
    return toPodInfo(pod);
  }
}

/**
 * A tunnel the API server refused (403 on pods/portforward, a missing Secret) is not a relay that failed to answer:
 * report the platform's own error, which says what to fix.
 */
function platformCause(error: unknown): Error | null {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (isKubernetesPlatformError(current)) return current;
    current = current.cause;
  }
  return null;
}
