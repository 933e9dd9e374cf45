/**
 * The StatefulSet controller, as pkg/controller/statefulset does it for what relayctl relies on:
 *
 * - Pods `<set>-<ordinal>` (ordinals from spec.ordinals.start) from the template, with the labels the real one adds
 *   (`controller-revision-hash`, `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`), hostname
 *   and subdomain (the serviceName), and a controller ownerReference (blockOwnerDeletion).
 * - Parallel: every missing pod created at once, every surplus pod deleted at once (highest ordinal first).
 *   OrderedReady: one at a time, each waiting for the previous to be Running and Ready; scale-down from the
 *   highest ordinal, waiting for each to be gone.
 * - A missing pod is recreated; a Failed or Succeeded pod is deleted and recreated; a pod that matches the selector
 *   without a controller is adopted.
 * - RollingUpdate: when the template changes, the highest-ordinal outdated pod at or above the partition is deleted
 *   (recreated with the new revision) once every pod is Running and Ready, one at a time. OnDelete: nothing.
 * - Status: observedGeneration, replicas (pods created, terminating included), readyReplicas, availableReplicas,
 *   currentReplicas, updatedReplicas, currentRevision, updateRevision, collisionCount.
 * - A set being deleted is left to the garbage collector.
 *
 * Revisions are a hash of the template; no ControllerRevision objects are kept (rollback by revision is not
 * served).
 */
import { createHash } from 'node:crypto';
import type { StatefulSetSpec } from '../kinds/apps.ts';
import type { Registry } from '../registry.ts';
import type { KubeObject, ResourceType } from '../resources.ts';
import { selectorObjectMatches, type LabelSelectorObject } from '../selectors.ts';
import type { StoreEvent } from '../store.ts';
import type { EventRecorder } from './events.ts';
import { controllerOf, isRunningAndReady, isTerminal, isTerminating } from './pod-conditions.ts';
import { Controller } from './controller.ts';

const MANAGER = 'kube-controller-manager';
export const REVISION_LABEL = 'controller-revision-hash';
export const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';
export const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';

const HASH_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** `<set>-<hash>`: the revision name pods carry in controller-revision-hash. */
export function revisionName(set: KubeObject): string {
  const spec = set.spec as StatefulSetSpec;
  const digest = createHash('sha256').update(JSON.stringify(spec.template)).digest();
  let hash = '';
  for (let i = 0; i < 10; i++) hash += HASH_ALPHABET[digest[i]! % HASH_ALPHABET.length];
  return `${set.metadata.name}-${hash}`;
}

interface SetStatus {
  observedGeneration?: number;
  replicas: number;
  readyReplicas: number;
  availableReplicas: number;
  currentReplicas: number;
  updatedReplicas: number;
  currentRevision?: string;
  updateRevision?: string;
  collisionCount: number;
}

export class StatefulSetController extends Controller {
  private readonly registry: Registry;
  private readonly events: EventRecorder;
  private readonly sets: ResourceType;
  private readonly pods: ResourceType;

  constructor(registry: Registry, events: EventRecorder) {
    super('statefulsets', registry.store);
    this.registry = registry;
    this.events = events;
    this.sets = registry.catalogue.resolve('statefulsets');
    this.pods = registry.catalogue.resolve('pods');
    for (const set of registry.store.list('apps/statefulsets')) this.queue.add(`${set.metadata.namespace}/${set.metadata.name}`);
  }

  protected observe(event: StoreEvent): void {
    if (event.table === 'apps/statefulsets') this.queue.add(`${event.namespace}/${event.name}`);
    else if (event.table === '/pods') {
      const owner = controllerOf(event.object);
      if (owner?.kind === 'StatefulSet') this.queue.add(`${event.namespace}/${owner.name}`);
      else if (owner === undefined && event.type !== 'DELETED') {
        // An orphan may be adopted by a set whose selector matches it.
        for (const set of this.registry.store.list('apps/statefulsets', event.namespace)) {
          if (selectorObjectMatches((set.spec as StatefulSetSpec).selector as LabelSelectorObject, event.object.metadata.labels)) this.queue.add(`${event.namespace}/${set.metadata.name}`);
        }
      }
    }
  }

  protected reconcile(key: string): void {
    const [namespace, name] = key.split('/') as [string, string];
    const set = this.registry.find(this.sets, namespace, name);
    if (set === undefined || isTerminating(set)) return;
    const spec = set.spec as StatefulSetSpec;
    const selector = spec.selector as LabelSelectorObject;
    const updateRevision = revisionName(set);
    const previousStatus = set.status as Partial<SetStatus> | undefined;
    const currentRevision = previousStatus?.currentRevision ?? updateRevision;

    const owned: KubeObject[] = [];
    for (const pod of this.registry.store.list('/pods', namespace)) {
      const owner = controllerOf(pod);
      if (owner?.uid === set.metadata.uid) owned.push(pod);
      else if (owner === undefined && !isTerminating(pod) && selectorObjectMatches(selector, pod.metadata.labels)) owned.push(this.adopt(set, pod));
    }

    const start = spec.ordinals?.start ?? 0;
    const replicas = spec.replicas ?? 1;
    const byOrdinal = new Map<number, KubeObject>();
    const condemned: KubeObject[] = [];
    for (const pod of owned) {
      const ordinal = this.ordinalOf(name, pod);
      if (ordinal !== null && ordinal >= start && ordinal < start + replicas) byOrdinal.set(ordinal, pod);
      else condemned.push(pod);
    }
    condemned.sort((a, b) => (this.ordinalOf(name, b) ?? -1) - (this.ordinalOf(name, a) ?? -1));

    const parallel = spec.podManagementPolicy === 'Parallel';
    // Pods that finished are replaced.
    for (const [, pod] of byOrdinal) if (isTerminal(pod) && !isTerminating(pod)) this.deletePod(set, pod);

    let blocked = false;
    for (let ordinal = start; ordinal < start + replicas; ordinal++) {
      const pod = byOrdinal.get(ordinal);
      if (pod === undefined) {
        if (!blocked) this.createPod(set, ordinal, updateRevision);
        if (!parallel) blocked = true;
      } else if (!parallel && !(isRunningAndReady(pod) && !isTerminating(pod))) blocked = true;
    }

    if (parallel) {
      for (const pod of condemned) if (!isTerminating(pod)) this.deletePod(set, pod);
    } else if (!blocked) {
      const next = condemned[0];
      if (next !== undefined && !isTerminating(next)) this.deletePod(set, next);
    }

    const allReady = [...byOrdinal.values()].length === replicas && [...byOrdinal.values()].every((p) => isRunningAndReady(p) && !isTerminating(p));
    if (spec.updateStrategy?.type !== 'OnDelete' && allReady && condemned.length === 0) {
      const partition = spec.updateStrategy?.rollingUpdate?.partition ?? 0;
      for (let ordinal = start + replicas - 1; ordinal >= start + partition; ordinal--) {
        const pod = byOrdinal.get(ordinal)!;
        if (pod.metadata.labels?.[REVISION_LABEL] !== updateRevision) {
          this.deletePod(set, pod);
          break;
        }
      }
    }

    this.writeStatus(set, currentRevision, updateRevision);
  }

  private ordinalOf(set: string, pod: KubeObject): number | null {
    const name = pod.metadata.name!;
    if (!name.startsWith(`${set}-`)) return null;
    const suffix = name.slice(set.length + 1);
    return /^(0|[1-9]\d*)$/.test(suffix) ? Number(suffix) : null;
  }

  private ownerReference(set: KubeObject): NonNullable<KubeObject['metadata']['ownerReferences']>[number] {
    return { apiVersion: 'apps/v1', kind: 'StatefulSet', name: set.metadata.name!, uid: set.metadata.uid!, controller: true, blockOwnerDeletion: true };
  }

  private adopt(set: KubeObject, pod: KubeObject): KubeObject {
    const next = structuredClone(pod) as KubeObject;
    next.metadata.ownerReferences = [...(pod.metadata.ownerReferences ?? []), this.ownerReference(set)];
    return this.registry.commitUpdate(this.pods, pod, next, '', { fieldManager: MANAGER }, undefined);
  }

  private createPod(set: KubeObject, ordinal: number, revision: string): void {
    const spec = set.spec as StatefulSetSpec;
    const name = `${set.metadata.name}-${ordinal}`;
    const template = structuredClone(spec.template);
    const pod: KubeObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        labels: { ...template.metadata?.labels, [REVISION_LABEL]: revision, [POD_NAME_LABEL]: name, [POD_INDEX_LABEL]: String(ordinal) },
        ownerReferences: [this.ownerReference(set)],
      },
      spec: { ...template.spec, hostname: name, ...(spec.serviceName ? { subdomain: spec.serviceName } : {}) },
    };
    if (template.metadata?.annotations !== undefined) pod.metadata.annotations = template.metadata.annotations;
    try {
      this.registry.create(this.pods, set.metadata.namespace!, pod, { fieldManager: MANAGER });
      this.events.record(set, 'Normal', 'SuccessfulCreate', `create Pod ${name} in StatefulSet ${set.metadata.name} successful`);
    } catch (error) {
      this.events.record(set, 'Warning', 'FailedCreate', `create Pod ${name} in StatefulSet ${set.metadata.name} failed error: ${(error as Error).message}`);
      throw error;
    }
  }

  private deletePod(set: KubeObject, pod: KubeObject): void {
    this.registry.delete(this.pods, pod.metadata.namespace!, pod.metadata.name!, { preconditions: { uid: pod.metadata.uid } }, { fieldManager: MANAGER });
    this.events.record(set, 'Normal', 'SuccessfulDelete', `delete Pod ${pod.metadata.name} in StatefulSet ${set.metadata.name} successful`);
  }

  private writeStatus(set: KubeObject, currentRevision: string, updateRevision: string): void {
    // Re-read: adoption or pod writes above do not change the set, but a status write must start from the latest.
    const latest = this.registry.find(this.sets, set.metadata.namespace!, set.metadata.name!);
    if (latest === undefined) return;
    const pods = this.registry.store.list('/pods', set.metadata.namespace).filter((p) => controllerOf(p)?.uid === set.metadata.uid);
    const status: SetStatus = {
      observedGeneration: latest.metadata.generation,
      replicas: 0,
      readyReplicas: 0,
      availableReplicas: 0,
      currentReplicas: 0,
      updatedReplicas: 0,
      currentRevision,
      updateRevision,
      collisionCount: 0,
    };
    for (const pod of pods) {
      status.replicas++;
      if (isRunningAndReady(pod)) {
        status.readyReplicas++;
        status.availableReplicas++;
      }
      if (!isTerminating(pod)) {
        const revision = pod.metadata.labels?.[REVISION_LABEL];
        if (revision === currentRevision) status.currentReplicas++;
        if (revision === updateRevision) status.updatedReplicas++;
      }
    }
    const replicas = (latest.spec as StatefulSetSpec).replicas ?? 1;
    // The rollout is complete: the update revision becomes the current one.
    if (status.updatedReplicas === replicas && status.replicas === replicas) {
      status.currentRevision = updateRevision;
      status.currentReplicas = status.updatedReplicas;
    }
    this.registry.commitUpdate(this.sets, latest, { ...latest, status }, 'status', { fieldManager: MANAGER }, undefined);
  }
}
