/**
 * The garbage collector, for namespaced owners and dependents (pkg/controller/garbagecollector):
 *
 * - A dependent whose owners are all gone (no object with that name and uid) is deleted (background propagation:
 *   pods delete gracefully through the kubelet); owner references to owners that are gone are removed when other
 *   owners remain.
 * - An owner being deleted with the `orphan` finalizer: its dependents lose their reference to it, then the
 *   finalizer goes (and with it the owner).
 * - An owner being deleted with the `foregroundDeletion` finalizer: its dependents are deleted; once the ones with
 *   blockOwnerDeletion are gone, the finalizer goes.
 *
 * Owners are looked up by the apiVersion and kind of each reference, in the dependent's namespace.
 */
import { FINALIZER_FOREGROUND, FINALIZER_ORPHAN, tableOf, type Registry } from '../registry.ts';
import type { KubeObject, OwnerReference, ResourceType } from '../resources.ts';
import type { StoreEvent } from '../store.ts';
import { Controller } from './controller.ts';

const MANAGER = 'generic-garbage-collector';

function key(table: string, namespace: string, name: string): string {
  return `${table}|${namespace}|${name}`;
}

export class GarbageCollector extends Controller {
  private readonly registry: Registry;

  constructor(registry: Registry) {
    super('garbage-collector', registry.store);
    this.registry = registry;
    for (const type of registry.catalogue.types) {
      if (!type.namespaced) continue;
      for (const object of registry.store.list(tableOf(type))) {
        if ((object.metadata.ownerReferences ?? []).length > 0) this.queue.add(key(tableOf(type), object.metadata.namespace!, object.metadata.name!));
      }
    }
  }

  protected observe(event: StoreEvent): void {
    if (event.namespace === '') return;
    const object = event.object;
    // Dependents of an object that went away, or that is being deleted in the foreground, need a look.
    if (event.type === 'DELETED' || object.metadata.finalizers?.includes(FINALIZER_FOREGROUND)) {
      for (const dependent of this.dependentsOf(object)) this.queue.add(dependent);
    }
    if (event.type !== 'DELETED') {
      if ((object.metadata.ownerReferences ?? []).length > 0) this.queue.add(key(event.table, event.namespace, event.name));
      const finalizers = object.metadata.finalizers ?? [];
      if (object.metadata.deletionTimestamp !== undefined && (finalizers.includes(FINALIZER_ORPHAN) || finalizers.includes(FINALIZER_FOREGROUND))) {
        this.queue.add(key(event.table, event.namespace, event.name));
      }
    }
    // A dependent changing or going may let a foreground deletion finish.
    for (const ref of object.metadata.ownerReferences ?? []) {
      const owner = this.ownerType(ref);
      if (owner !== undefined) this.queue.add(key(tableOf(owner), event.namespace, ref.name));
    }
  }

  private ownerType(ref: OwnerReference): ResourceType | undefined {
    const type = this.registry.catalogue.forKind(ref.apiVersion, ref.kind);
    return type?.namespaced ? type : undefined;
  }

  private dependentsOf(owner: KubeObject): string[] {
    const out: string[] = [];
    const uid = owner.metadata.uid;
    for (const type of this.registry.catalogue.types) {
      if (!type.namespaced) continue;
      for (const object of this.registry.store.list(tableOf(type), owner.metadata.namespace)) {
        if (object.metadata.ownerReferences?.some((r) => r.uid === uid)) out.push(key(tableOf(type), object.metadata.namespace!, object.metadata.name!));
      }
    }
    return out;
  }

  private typeOfTable(table: string): ResourceType {
    const [group, resource] = table.split('/') as [string, string];
    return this.registry.catalogue.find(group, resource)!;
  }

  protected reconcile(k: string): void {
    const [table, namespace, name] = k.split('|') as [string, string, string];
    const type = this.typeOfTable(table);
    const object = this.registry.find(type, namespace, name);
    if (object === undefined) return;
    const finalizers = object.metadata.finalizers ?? [];
    if (object.metadata.deletionTimestamp !== undefined && finalizers.includes(FINALIZER_ORPHAN)) this.orphanDependents(type, object);
    else if (object.metadata.deletionTimestamp !== undefined && finalizers.includes(FINALIZER_FOREGROUND)) this.deleteDependents(type, object);
    const latest = this.registry.find(type, namespace, name);
    if (latest !== undefined) this.checkOwners(type, latest);
  }

  /** Deletes a dependent whose owners are all gone; drops references to the gone ones otherwise. */
  private checkOwners(type: ResourceType, object: KubeObject): void {
    const refs = object.metadata.ownerReferences ?? [];
    if (refs.length === 0) return;
    const namespace = object.metadata.namespace!;
    const alive: OwnerReference[] = [];
    let foregroundOwner = false;
    for (const ref of refs) {
      const ownerType = this.ownerType(ref);
      // References to kinds this server does not serve are left alone, as the real collector waits for them.
      if (ownerType === undefined) {
        alive.push(ref);
        continue;
      }
      const owner = this.registry.find(ownerType, namespace, ref.name);
      if (owner !== undefined && owner.metadata.uid === ref.uid) {
        alive.push(ref);
        if (owner.metadata.deletionTimestamp !== undefined && owner.metadata.finalizers?.includes(FINALIZER_FOREGROUND)) foregroundOwner = true;
      }
    }
    if (alive.length === 0 || foregroundOwner) {
      if (object.metadata.deletionTimestamp === undefined) this.registry.delete(type, namespace, object.metadata.name!, { preconditions: { uid: object.metadata.uid } }, { fieldManager: MANAGER });
    } else if (alive.length < refs.length) {
      this.registry.commitUpdate(type, object, { ...structuredClone(object), metadata: { ...structuredClone(object.metadata), ownerReferences: alive } }, '', { fieldManager: MANAGER }, undefined);
    }
  }

  private dependents(owner: KubeObject): { type: ResourceType; object: KubeObject }[] {
    const out: { type: ResourceType; object: KubeObject }[] = [];
    for (const type of this.registry.catalogue.types) {
      if (!type.namespaced) continue;
      for (const object of this.registry.store.list(tableOf(type), owner.metadata.namespace)) {
        if (object.metadata.ownerReferences?.some((r) => r.uid === owner.metadata.uid)) out.push({ type, object });
      }
    }
    return out;
  }

  private orphanDependents(type: ResourceType, owner: KubeObject): void {
    for (const { type: dependentType, object } of this.dependents(owner)) {
      const ownerReferences = (object.metadata.ownerReferences ?? []).filter((r) => r.uid !== owner.metadata.uid);
      const next = { ...structuredClone(object), metadata: { ...structuredClone(object.metadata), ownerReferences } } as KubeObject;
      if (ownerReferences.length === 0) delete next.metadata.ownerReferences;
      this.registry.commitUpdate(dependentType, object, next, '', { fieldManager: MANAGER }, undefined);
    }
    this.removeFinalizer(type, owner, FINALIZER_ORPHAN);
  }

  private deleteDependents(type: ResourceType, owner: KubeObject): void {
    let blocking = 0;
    for (const { type: dependentType, object } of this.dependents(owner)) {
      const ref = object.metadata.ownerReferences!.find((r) => r.uid === owner.metadata.uid)!;
      if (ref.blockOwnerDeletion === true) blocking++;
      if (object.metadata.deletionTimestamp === undefined) {
        this.registry.delete(dependentType, object.metadata.namespace!, object.metadata.name!, { preconditions: { uid: object.metadata.uid } }, { fieldManager: MANAGER });
      }
    }
    if (blocking === 0) this.removeFinalizer(type, owner, FINALIZER_FOREGROUND);
  }

  private removeFinalizer(type: ResourceType, object: KubeObject, finalizer: string): void {
    const latest = this.registry.find(type, object.metadata.namespace!, object.metadata.name!);
    if (latest === undefined) return;
    const next = structuredClone(latest) as KubeObject;
    next.metadata.finalizers = (latest.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    this.registry.commitUpdate(type, latest, next, '', { fieldManager: MANAGER }, undefined);
  }
}
