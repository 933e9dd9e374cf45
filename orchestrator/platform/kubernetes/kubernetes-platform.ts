/**
 * The Platform on Kubernetes: sets are StatefulSets, pods are the pods of the fleet, the lock is a Lease, relays
 * are reached directly or through port-forwards. Reads of sets and pods come from watch-fed caches while those are
 * fresh (so the orchestrator's wait loops cost the API server nothing), else from the API server directly; writes
 * always go to the API server and are read back through the cache only once its watch has shown them.
 */
import type { V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import type { Clock } from '../../clock.ts';
import { ErrorCode, conflictError, isOrchestratorError, notFoundError } from '../../errors.ts';
import type { CreateSetSpec, LockApi, Platform, PodInfo, RelayApi, SetInfo } from '../platform.ts';
import type { KubeApi, WatchedResource } from './kube-api.ts';
import { KubeErrorCode, KubernetesPlatformError } from './kube-errors.ts';
import { FLEET_LABELS } from '../../../api/fleet.ts';
import { invalidPatch, isDnsLabel, metadataMergePatch, selectorOf } from './labels.ts';
import { toPodInfo } from './pods.ts';
import { newSetObject, toSetInfo } from './sets.ts';
import { WatchCache, type CachedObject } from './watch-cache.ts';

export interface PlatformLogEvent {
  level: 'info' | 'warn';
  message: string;
}

export interface KubernetesPlatformParts {
  api: KubeApi;
  fleet: string;
  lock: LockApi;
  relay: RelayApi;
  clock: Clock;
  log: (event: PlatformLogEvent) => void;
  /** Server-side timeout of each watch; below client-node's 30 s inactivity limit. Default 25 s. */
  watchTimeoutSeconds?: number;
}

export class KubernetesPlatform implements Platform {
  readonly name = 'kubernetes';
  readonly lock: LockApi;
  readonly relay: RelayApi;
  readonly #api: KubeApi;
  readonly #fleet: string;
  readonly #sets: WatchCache<V1StatefulSet>;
  readonly #pods: WatchCache<V1Pod>;

  constructor(parts: KubernetesPlatformParts) {
    this.#api = parts.api;
    this.#fleet = parts.fleet;
    this.lock = parts.lock;
    this.relay = parts.relay;
    const timeoutSeconds = parts.watchTimeoutSeconds ?? 25;
    const fleetSelector = selectorOf({ [FLEET_LABELS.fleet]: parts.fleet });
    const cache = <T extends CachedObject>(resource: WatchedResource, list: () => Promise<{ items: T[]; resourceVersion: string }>, labelSelector?: string): WatchCache<T> =>
      new WatchCache<T>(
        {
          list,
          watch: (resourceVersion, onEvent) =>
            this.#api.watch(resource, { resourceVersion, timeoutSeconds, ...(labelSelector === undefined ? {} : { labelSelector }) }, onEvent),
        },
        {
          clock: parts.clock,
          onError: (error, attempt) => {
            if (attempt !== 1) return;
            const call = { verb: 'watch' as const, group: resource === 'pods' ? '' : 'apps', resource, namespace: this.#api.namespace };
            parts.log({ level: 'warn', message: `${this.#api.describeFailure(error, call).message}; reading from the API server until the watch works again` });
          },
        },
      );
    // Every StatefulSet of the namespace (a set missing the fleet label must still be found by name); only the
    // fleet's pods.
    this.#sets = cache<V1StatefulSet>('statefulsets', () => this.#api.listStatefulSets());
    this.#pods = cache<V1Pod>('pods', () => this.#api.listPods(fleetSelector), fleetSelector);
  }

  /** Whether reads of sets and pods are answered from the watch caches right now (else from the API server). */
  get cacheFresh(): boolean {
    return this.#sets.fresh && this.#pods.fresh;
  }

  /** Stops the watches. */
  stop(): void {
    this.#sets.stop();
    this.#pods.stop();
  }

  /**
   * Resolves when a watched set or pod changes, or after `timeoutMs`: a waiter can wake on the change instead of
   * its next poll. True when something changed. (Proposed as an optional Platform method.)
   */
  async waitForChange(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const before = this.#sets.changes + this.#pods.changes;
    const stop = AbortSignal.any([AbortSignal.timeout(Math.max(0, timeoutMs)), ...(signal === undefined ? [] : [signal])]);
    await Promise.race([this.#sets.changedSince(this.#sets.changes, stop), this.#pods.changedSince(this.#pods.changes, stop)]);
    return this.#sets.changes + this.#pods.changes !== before;
  }

  // ---- sets ---------------------------------------------------------------------------------------------------

  async getSet(name: string): Promise<SetInfo | null> {
    if (typeof name !== 'string' || !isDnsLabel(name)) return null;
    await this.#sets.sync();
    if (this.#sets.fresh) {
      const cached = this.#sets.get(name);
      return cached === undefined ? null : toSetInfo(cached);
    }
    const set = await this.#api.getStatefulSet(name);
    this.#sets.reconcile([name], new Map(set === null ? [] : [[name, set]]));
    return set === null ? null : toSetInfo(set);
  }

  async createSet(spec: CreateSetSpec): Promise<SetInfo> {
    checkCreateSpec(spec);
    // The active set as it is now, not as the caller saw it.
    const active = await this.#api.getStatefulSet(spec.template.name);
    if (active === null) throw notFoundError(`set ${spec.template.name} (the set to copy)`);
    const created = await this.#api.createStatefulSet(newSetObject(active, spec, this.#fleet, this.#api.namespace));
    this.#expect(this.#sets, created);
    return toSetInfo(created);
  }

  async deleteSet(name: string): Promise<void> {
    if (typeof name !== 'string' || !isDnsLabel(name)) return;
    const deleted = await this.#api.deleteStatefulSet(name);
    if (deleted && this.#api.dryRun === 'none') this.#sets.expect(name, null);
  }

  // ---- pods ---------------------------------------------------------------------------------------------------

  async listPods(set: string): Promise<PodInfo[]> {
    if (typeof set !== 'string' || !isDnsLabel(set)) return [];
    await this.#pods.sync();
    if (this.#pods.fresh) {
      return this.#pods
        .list()
        .filter((pod) => pod.metadata?.labels?.[FLEET_LABELS.set] === set)
        .map(toPodInfo);
    }
    const { items } = await this.#api.listPods(selectorOf({ [FLEET_LABELS.fleet]: this.#fleet, [FLEET_LABELS.set]: set }));
    const read = new Map(items.map((pod) => [pod.metadata?.name ?? '', pod]));
    this.#pods.reconcile(this.#pods.expectedNames, read);
    return items.map(toPodInfo);
  }

  async patchPodLabels(pod: string, labels: Record<string, string | null>): Promise<void> {
    checkPatch('patchPodLabels', labels);
    if (typeof pod !== 'string' || !isDnsLabel(pod)) throw notFoundError(`pod ${pod}`);
    const patched = await this.#api.patchPod(pod, metadataMergePatch('labels', labels));
    this.#expect(this.#pods, patched);
  }

  async patchSetAnnotations(set: string, annotations: Record<string, string | null>, expectedResourceVersion?: string): Promise<SetInfo> {
    checkPatch('patchSetAnnotations', annotations);
    if (typeof set !== 'string' || !isDnsLabel(set)) throw notFoundError(`set ${set}`);
    let patched: V1StatefulSet;
    try {
      patched = await this.#api.patchStatefulSet(set, metadataMergePatch('annotations', annotations, expectedResourceVersion));
    } catch (error) {
      if (!isOrchestratorError(error) || error.code !== ErrorCode.Conflict) throw error;
      // Say which version is there now, as the local platform does.
      const current = await this.#api.getStatefulSet(set).catch(() => null);
      throw conflictError(`set ${set}`, expectedResourceVersion, current?.metadata?.resourceVersion ?? '(unknown)');
    }
    this.#expect(this.#sets, patched);
    return toSetInfo(patched);
  }

  /** A write the cache must show before it answers reads again (dry runs wrote nothing). */
  #expect(cache: WatchCache<CachedObject>, written: CachedObject): void {
    const name = written.metadata?.name;
    const resourceVersion = written.metadata?.resourceVersion;
    if (this.#api.dryRun !== 'none' || name === undefined || resourceVersion === undefined) return;
    cache.expect(name, resourceVersion);
  }
}

function checkPatch(operation: string, patch: unknown): asserts patch is Record<string, string | null> {
  const invalid = invalidPatch(patch);
  if (invalid !== null) throw new KubernetesPlatformError(KubeErrorCode.Invalid, `${operation}: ${invalid}`);
}

function checkCreateSpec(spec: CreateSetSpec): void {
  const bad = (field: string, expected: string, got: unknown): never => {
    throw new KubernetesPlatformError(KubeErrorCode.Invalid, `createSet: ${field} must be ${expected}, got ${JSON.stringify(got)}`);
  };
  if (typeof spec !== 'object' || spec === null || typeof spec.template !== 'object' || spec.template === null) {
    bad('the spec', '{ name, replicas, image, template, annotations }', spec);
  }
  // The controller labels each pod with "<set>-<10-character revision hash>", a label value of at most 63.
  if (typeof spec.name !== 'string' || !isDnsLabel(spec.name) || spec.name.length > 52) bad('name', 'a DNS label of at most 52 characters', spec.name);
  if (!Number.isInteger(spec.replicas) || spec.replicas < 1) bad('replicas', 'a whole number of at least 1', spec.replicas);
  if (typeof spec.image !== 'string' || spec.image.trim() === '' || /\s/.test(spec.image)) bad('image', 'a non-empty image reference without spaces', spec.image);
  const invalid = invalidPatch(spec.annotations);
  if (invalid !== null || Object.values(spec.annotations).some((value) => value === null)) bad('annotations', 'an object of string values', spec.annotations);
}
