/**
 * The generic registry (k8s.io/apiserver/pkg/registry/generic/registry.Store): what create, update, patch and
 * delete do to an object before and after the store, for every resource type alike, with the type's hooks.
 *
 * - create: namespace must exist and not be terminating; resourceVersion must be empty; generateName; uid,
 *   creationTimestamp, generation 1; defaults, preparation, admission, validation; 409 AlreadyExists.
 * - update and patch: metadata.resourceVersion (when set) is a precondition (409 Conflict when stale); system
 *   metadata is carried over; generation bumps when anything but metadata and status changed; a write that changes
 *   nothing is not stored (the resourceVersion stays, no event), as in the real server.
 * - delete: preconditions (uid, resourceVersion); graceful deletion for pods; finalizers (including the orphan
 *   and foregroundDeletion ones a propagationPolicy adds) keep the object with a deletionTimestamp until removed;
 *   an update that empties the finalizers of an object being deleted removes it.
 * - dryRun: everything runs, nothing is stored, the would-be object is returned.
 */
import { randomUUID } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { serverSideApply, updateManagedFields } from './apply.ts';
import {
  alreadyExists,
  badRequest,
  conflict,
  internalError,
  invalid,
  namespaceTerminating,
  notFound,
  StatusError,
  type FieldError,
} from './errors.ts';
import { randomSuffix } from './kinds/core.ts';
import { APPLY_PATCH, decodeJsonPatch, deepEqual, JSON_PATCH, jsonPatch, MERGE_PATCH, mergePatch, strategicMergePatch, type PatchType } from './patch.ts';
import { groupResource, groupVersion, type Catalogue, type HookContext, type KubeObject, type ResourceType } from './resources.ts';
import { fieldsMatch, formatSelector, matchesAll, type FieldRequirement, type LabelSelectorObject, type Requirement } from './selectors.ts';
import type { ObjectStore } from './store.ts';
import { forbiddenField, invalidField, objectMetaErrors, objectMetaUpdateErrors, requiredField } from './validation.ts';

export interface WriteOptions {
  dryRun?: boolean;
  /** The field manager recorded in managedFields (PUT/PATCH/POST default: from the User-Agent, by the caller). */
  fieldManager?: string;
}

export interface PatchOptions extends WriteOptions {
  force?: boolean;
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  orphanDependents?: boolean;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface ListOptions {
  labelSelector?: readonly Requirement[];
  fieldSelector?: readonly FieldRequirement[];
}

export interface DeleteResult {
  /** What the response carries: the object (pods, services, or an object left in place) or a Success Status. */
  body: KubeObject | Record<string, unknown>;
  /** Whether the object is gone now (false: waiting for its grace period or finalizers). */
  removed: boolean;
}

export interface RegistryContext {
  now(): Date;
  allocateClusterIP(): string;
  allocateNodePort(): number;
}

export type Subresource = '' | 'status' | 'scale';

/** RFC 3339 with seconds, as metav1.Time serialises. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function tableOf(type: Pick<ResourceType, 'group' | 'resource'>): string {
  return `${type.group}/${type.resource}`;
}

export const FINALIZER_ORPHAN = 'orphan';
export const FINALIZER_FOREGROUND = 'foregroundDeletion';
const DEFAULT_MANAGER = 'unknown';

function withoutVolatile(object: KubeObject): unknown {
  return { ...object, metadata: { ...object.metadata, resourceVersion: undefined } };
}

/** Everything but metadata and status: a change here bumps metadata.generation. */
function specPart(object: KubeObject): unknown {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = object;
  return rest;
}

export class Registry {
  readonly catalogue: Catalogue;
  readonly store: ObjectStore;
  private readonly context: RegistryContext;
  private readonly hooks: HookContext;

  constructor(catalogue: Catalogue, store: ObjectStore, context: RegistryContext) {
    this.catalogue = catalogue;
    this.store = store;
    this.context = context;
    this.hooks = {
      now: () => context.now(),
      get: (table, namespace, name) => store.get(table, namespace, name),
      allocateClusterIP: () => context.allocateClusterIP(),
      allocateNodePort: () => context.allocateNodePort(),
    };
  }

  private now(): string {
    return rfc3339(this.context.now());
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reads
  // -------------------------------------------------------------------------------------------------------------

  get(type: ResourceType, namespace: string, name: string): KubeObject {
    const object = this.store.get(tableOf(type), type.namespaced ? namespace : '', name);
    if (object === undefined) throw notFound(groupResource(type), name);
    return object;
  }

  find(type: ResourceType, namespace: string, name: string): KubeObject | undefined {
    return this.store.get(tableOf(type), type.namespaced ? namespace : '', name);
  }

  list(type: ResourceType, namespace: string | undefined, options: ListOptions = {}): { items: KubeObject[]; revision: number } {
    const items = this.store
      .list(tableOf(type), type.namespaced ? namespace : undefined)
      .filter((o) => this.matches(o, options));
    return { items, revision: this.store.currentRevision() };
  }

  matches(object: KubeObject, options: ListOptions): boolean {
    if (options.labelSelector !== undefined && !matchesAll(options.labelSelector, object.metadata.labels)) return false;
    if (options.fieldSelector !== undefined && !fieldsMatch(options.fieldSelector, object)) return false;
    return true;
  }

  /** The autoscaling/v1 Scale of a resource with a scale subresource. */
  scaleOf(object: KubeObject): KubeObject {
    const spec = object.spec as { replicas?: number; selector?: LabelSelectorObject };
    const status = object.status as { replicas?: number } | undefined;
    const { name, namespace, uid, resourceVersion, creationTimestamp } = object.metadata;
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name, namespace, uid, resourceVersion, creationTimestamp },
      spec: { replicas: spec.replicas ?? 0 },
      status: { replicas: status?.replicas ?? 0, selector: formatSelector(spec.selector) },
    };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Create
  // -------------------------------------------------------------------------------------------------------------

  private checkTypeMeta(type: ResourceType, object: KubeObject): void {
    const expected = groupVersion(type);
    if (object.apiVersion !== undefined && object.apiVersion !== '' && object.apiVersion !== expected) {
      throw badRequest(`the API version in the data (${String(object.apiVersion)}) does not match the expected API version (${expected})`);
    }
    if (object.kind !== undefined && object.kind !== '' && object.kind !== type.kind) {
      throw badRequest(`the kind in the data (${String(object.kind)}) does not match the expected kind (${type.kind})`);
    }
    object.apiVersion = expected;
    object.kind = type.kind;
  }

  private checkNamespace(type: ResourceType, object: KubeObject, namespace: string): void {
    if (!type.namespaced) {
      delete object.metadata.namespace;
      return;
    }
    if (object.metadata.namespace !== undefined && object.metadata.namespace !== '' && object.metadata.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    object.metadata.namespace = namespace;
  }

  private validation(type: ResourceType, object: KubeObject, old: KubeObject | undefined): void {
    const errors: FieldError[] = [
      ...objectMetaErrors(object.metadata as Record<string, unknown>, { namespaced: type.namespaced, name: type.nameRule }),
      ...(type.validate?.(object, this.hooks) ?? []),
    ];
    if (old !== undefined) {
      errors.push(...objectMetaUpdateErrors(object.metadata as Record<string, unknown>, old.metadata as Record<string, unknown>));
      errors.push(...(type.validateUpdate?.(object, old, this.hooks) ?? []));
    }
    if (errors.length > 0) throw invalid({ group: type.group, kind: type.kind }, object.metadata.name ?? '', errors);
  }

  create(type: ResourceType, namespace: string, body: KubeObject, options: WriteOptions = {}, applied?: KubeObject['metadata']['managedFields']): KubeObject {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
    const object = structuredClone(body);
    object.metadata = { ...(object.metadata ?? {}) };
    this.checkTypeMeta(type, object);
    this.checkNamespace(type, object, namespace);
    const meta = object.metadata;
    if (type.namespaced) {
      const ns = this.store.get('/namespaces', '', namespace);
      if (ns === undefined) throw notFound({ group: '', resource: 'namespaces' }, namespace);
      if (ns.metadata.deletionTimestamp !== undefined) throw namespaceTerminating(groupResource(type), meta.name ?? '', namespace);
    }
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '') throw internalError('resourceVersion should not be set on objects to be created');
    if ((meta.name === undefined || meta.name === '') && meta.generateName) {
      do meta.name = `${meta.generateName}${randomSuffix(5)}`;
      while (this.find(type, namespace, meta.name) !== undefined);
    }
    meta.uid = randomUUID();
    meta.creationTimestamp = this.now();
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete meta.resourceVersion;
    if (type.hasGeneration) meta.generation = 1;
    else delete meta.generation;
    delete meta.managedFields;

    type.defaults?.(object, this.hooks);
    type.prepareForCreate?.(object, this.hooks);
    type.admitCreate?.(object, this.hooks);
    type.defaults?.(object, this.hooks);
    this.validation(type, object, undefined);
    if (this.find(type, namespace, meta.name!) !== undefined) throw alreadyExists(groupResource(type), meta.name!);

    meta.managedFields =
      applied ?? updateManagedFields(undefined, object, { manager: options.fieldManager ?? DEFAULT_MANAGER, subresource: '', apiVersion: groupVersion(type), time: this.now() });
    if (meta.managedFields.length === 0) delete meta.managedFields;
    if (options.dryRun) return object;
    return this.store.write('ADDED', tableOf(type), object);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Update and patch
  // -------------------------------------------------------------------------------------------------------------

  private checkPreconditions(type: ResourceType, old: KubeObject, next: KubeObject): void {
    const rv = next.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== old.metadata.resourceVersion) throw conflict(groupResource(type), old.metadata.name!);
    const uid = next.metadata.uid;
    if (uid !== undefined && uid !== '' && uid !== old.metadata.uid) {
      throw conflict(groupResource(type), old.metadata.name!, `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${old.metadata.uid}`);
    }
  }

  /** PUT. */
  update(type: ResourceType, namespace: string, name: string, body: KubeObject, subresource: Subresource, options: WriteOptions = {}): KubeObject {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
    const old = this.get(type, namespace, name);
    if (subresource === 'scale') return this.scaleOf(this.writeScale(type, old, body, options));
    const next = structuredClone(body);
    next.metadata = { ...(next.metadata ?? {}) };
    this.checkTypeMeta(type, next);
    if (next.metadata.name !== undefined && next.metadata.name !== name) {
      throw badRequest(`the name of the object (${next.metadata.name}) does not match the name on the URL (${name})`);
    }
    this.checkNamespace(type, next, namespace);
    this.checkPreconditions(type, old, next);
    return this.commitUpdate(type, old, next, subresource, options, undefined);
  }

  private writeScale(type: ResourceType, old: KubeObject, scale: KubeObject, options: WriteOptions): KubeObject {
    const rv = scale.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== old.metadata.resourceVersion) throw conflict(groupResource(type), old.metadata.name!);
    const replicas = (scale.spec as { replicas?: unknown } | undefined)?.replicas;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw invalid({ group: 'autoscaling', kind: 'Scale' }, old.metadata.name!, [invalidField('spec.replicas', replicas, 'must be greater than or equal to 0')]);
    }
    const next = structuredClone(old) as KubeObject;
    (next.spec as { replicas: number }).replicas = replicas;
    return this.commitUpdate(type, old, next, '', options, undefined);
  }

  /**
   * The common tail of PUT, PATCH and controller writes: carry system metadata over, prepare, validate, bump the
   * generation, record field ownership, store (or skip a no-op, or remove an object whose last finalizer went).
   */
  commitUpdate(
    type: ResourceType,
    old: KubeObject,
    input: KubeObject,
    subresource: '' | 'status',
    options: WriteOptions,
    applied: KubeObject['metadata']['managedFields'] | undefined,
  ): KubeObject {
    // `old` must be what is stored now: a caller holding a stale copy would overwrite newer writes.
    const stored = this.find(type, old.metadata.namespace ?? '', old.metadata.name!);
    if (stored === undefined) throw notFound(groupResource(type), old.metadata.name!);
    if (stored.metadata.resourceVersion !== old.metadata.resourceVersion) throw conflict(groupResource(type), old.metadata.name!);
    let next: KubeObject;
    if (subresource === 'status') {
      next = { ...structuredClone(old), status: structuredClone(input.status) } as KubeObject;
    } else {
      next = structuredClone(input);
      next.apiVersion = groupVersion(type);
      next.kind = type.kind;
      const meta = next.metadata;
      meta.name ??= old.metadata.name;
      if (type.namespaced) meta.namespace ??= old.metadata.namespace;
      if (meta.uid === undefined || meta.uid === '') meta.uid = old.metadata.uid;
      meta.creationTimestamp = old.metadata.creationTimestamp;
      if (old.metadata.deletionTimestamp !== undefined) {
        meta.deletionTimestamp = old.metadata.deletionTimestamp;
        meta.deletionGracePeriodSeconds = old.metadata.deletionGracePeriodSeconds;
      } else {
        delete meta.deletionTimestamp;
        delete meta.deletionGracePeriodSeconds;
      }
      if (type.hasGeneration) meta.generation = old.metadata.generation;
      type.defaults?.(next, this.hooks);
      type.prepareForUpdate?.(next, old, this.hooks);
      type.defaults?.(next, this.hooks);
      if (type.hasGeneration && !deepEqual(specPart(next), specPart(old))) meta.generation = (old.metadata.generation ?? 1) + 1;
    }
    this.validation(type, next, old);
    delete next.metadata.resourceVersion;
    next.metadata.managedFields =
      applied ??
      updateManagedFields(old, next, {
        manager: options.fieldManager ?? DEFAULT_MANAGER,
        subresource,
        apiVersion: groupVersion(type),
        time: this.now(),
      });
    if (next.metadata.managedFields.length === 0) delete next.metadata.managedFields;

    // A namespace's own finalizers (spec.finalizers, the namespace controller's) hold it as well.
    const specFinalizers = type.resource === 'namespaces' ? ((next.spec as { finalizers?: string[] } | undefined)?.finalizers ?? []) : [];
    const finalizersDone = (next.metadata.finalizers ?? []).length === 0 && specFinalizers.length === 0;
    const removeNow = next.metadata.deletionTimestamp !== undefined && finalizersDone && (next.metadata.deletionGracePeriodSeconds ?? 0) === 0;
    if (!removeNow && deepEqual(withoutVolatile(next), withoutVolatile(old))) return old;
    if (options.dryRun) return { ...next, metadata: { ...next.metadata, resourceVersion: old.metadata.resourceVersion } };
    return this.store.write(removeNow ? 'DELETED' : 'MODIFIED', tableOf(type), next);
  }

  /**
   * PATCH with one of the four patch types. An apply to a missing object creates it (`created` tells the caller
   * to answer 201); the other types answer 404 for a missing object.
   */
  patch(
    type: ResourceType,
    namespace: string,
    name: string,
    patchType: PatchType,
    rawBody: string,
    subresource: Subresource,
    options: PatchOptions = {},
  ): { object: KubeObject; created: boolean } {
    if (patchType !== APPLY_PATCH && options.force !== undefined) {
      throw invalid({ group: 'meta.k8s.io', kind: 'PatchOptions' }, '', [forbiddenField('force', 'may not be specified for non-apply patch')]);
    }
    if (patchType === APPLY_PATCH && (options.fieldManager === undefined || options.fieldManager === '')) {
      throw invalid({ group: 'meta.k8s.io', kind: 'PatchOptions' }, '', [requiredField('fieldManager', 'is required for apply patch')]);
    }
    let body: unknown;
    try {
      body = patchType === APPLY_PATCH ? parseYaml(rawBody) : JSON.parse(rawBody);
    } catch (error) {
      throw badRequest(`error decoding patch: ${(error as Error).message}`);
    }
    const old = this.find(type, namespace, name);

    if (patchType === APPLY_PATCH) return this.apply(type, namespace, name, old, body, subresource, options);
    if (old === undefined) throw notFound(groupResource(type), name);

    const document: KubeObject = subresource === 'scale' ? this.scaleOf(old) : (structuredClone(old) as KubeObject);
    let patched: unknown;
    if (patchType === JSON_PATCH) patched = jsonPatch(document, decodeJsonPatch(body));
    else if (patchType === MERGE_PATCH) patched = mergePatch(document, body);
    else patched = strategicMergePatch(document, body);
    if (patched === null || typeof patched !== 'object' || Array.isArray(patched)) throw badRequest('the patch must leave a JSON object');
    const next = patched as KubeObject;
    next.metadata = { ...(next.metadata ?? {}) };
    if (subresource === 'scale') return { object: this.scaleOf(this.writeScale(type, old, next, options)), created: false };
    if (next.metadata.name !== name) throw badRequest(`the name of the object (${String(next.metadata.name)}) does not match the name on the URL (${name})`);
    this.checkTypeMeta(type, next);
    this.checkNamespace(type, next, namespace);
    this.checkPreconditions(type, old, next);
    return { object: this.commitUpdate(type, old, next, subresource, options, undefined), created: false };
  }

  private apply(
    type: ResourceType,
    namespace: string,
    name: string,
    old: KubeObject | undefined,
    body: unknown,
    subresource: Subresource,
    options: PatchOptions,
  ): { object: KubeObject; created: boolean } {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the apply configuration must be a YAML or JSON object');
    if (subresource === 'scale') throw badRequest('server-side apply of the scale subresource is not supported by the stand-in');
    const config = body as KubeObject;
    config.metadata = { ...(config.metadata ?? {}) };
    if (config.apiVersion === undefined || config.kind === undefined) {
      throw badRequest(`invalid object type: apiVersion and kind are required in an apply configuration`);
    }
    this.checkTypeMeta(type, config);
    if (config.metadata.name !== undefined && config.metadata.name !== name) {
      throw badRequest(`the name of the object (${config.metadata.name}) does not match the name on the URL (${name})`);
    }
    config.metadata.name = name;
    this.checkNamespace(type, config, namespace);
    if (old !== undefined) this.checkPreconditions(type, old, config);
    if (old === undefined && subresource === 'status') throw notFound(groupResource(type), name);
    const merged = serverSideApply(old, config, {
      manager: options.fieldManager!,
      subresource,
      apiVersion: groupVersion(type),
      time: this.now(),
      force: options.force === true,
    });
    const managedFields = merged.metadata.managedFields;
    if (old === undefined) {
      delete merged.metadata.resourceVersion;
      return { object: this.create(type, namespace, merged, options, managedFields), created: true };
    }
    merged.metadata.resourceVersion = undefined;
    return { object: this.commitUpdate(type, old, merged, subresource, options, managedFields), created: false };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Delete
  // -------------------------------------------------------------------------------------------------------------

  private successStatus(type: ResourceType, object: KubeObject): Record<string, unknown> {
    const details: Record<string, unknown> = { name: object.metadata.name, kind: type.resource, uid: object.metadata.uid };
    if (type.group !== '') details.group = type.group;
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details };
  }

  private result(type: ResourceType, object: KubeObject, removed: boolean): DeleteResult {
    return { body: type.returnDeletedObject || !removed ? object : this.successStatus(type, object), removed };
  }

  delete(type: ResourceType, namespace: string, name: string, deleteOptions: DeleteOptions = {}, options: WriteOptions = {}): DeleteResult {
    const old = this.get(type, namespace, name);
    const pre = deleteOptions.preconditions;
    if (pre?.uid !== undefined && pre.uid !== old.metadata.uid) {
      throw conflict(groupResource(type), name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    }
    if (pre?.resourceVersion !== undefined && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(groupResource(type), name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    }
    const now = this.context.now();
    const next = structuredClone(old) as KubeObject;
    const meta = next.metadata;

    if (type.resource === 'namespaces' && type.group === '') {
      if (meta.deletionTimestamp !== undefined) return this.result(type, old, false);
      meta.deletionTimestamp = rfc3339(now);
      meta.deletionGracePeriodSeconds = 0;
      next.status = { ...(next.status as object), phase: 'Terminating' };
      if (options.dryRun) return this.result(type, next, false);
      return this.result(type, this.store.write('MODIFIED', tableOf(type), next), false);
    }

    if (type.gracefulDeletion) {
      const spec = next.spec as { nodeName?: string; terminationGracePeriodSeconds?: number };
      const phase = (next.status as { phase?: string } | undefined)?.phase;
      let grace = deleteOptions.gracePeriodSeconds ?? spec.terminationGracePeriodSeconds ?? 30;
      // Pods never scheduled, or already finished, go at once (as the real pod strategy decides).
      if (!spec.nodeName || phase === 'Succeeded' || phase === 'Failed') grace = 0;
      if (grace > 0) {
        const deadline = new Date(now.getTime() + grace * 1000);
        if (meta.deletionTimestamp !== undefined && Date.parse(meta.deletionTimestamp) <= deadline.getTime()) return this.result(type, old, false);
        meta.deletionTimestamp = rfc3339(deadline);
        meta.deletionGracePeriodSeconds = grace;
        meta.generation = (meta.generation ?? 1) + 1;
        this.addPropagationFinalizer(meta, deleteOptions);
        if (options.dryRun) return this.result(type, next, false);
        return this.result(type, this.store.write('MODIFIED', tableOf(type), next), false);
      }
    }

    this.addPropagationFinalizer(meta, deleteOptions);
    if ((meta.finalizers ?? []).length > 0) {
      const changed = meta.deletionTimestamp === undefined || (meta.deletionGracePeriodSeconds ?? 0) !== 0 || !deepEqual(meta.finalizers, old.metadata.finalizers);
      if (!changed) return this.result(type, old, false);
      meta.deletionTimestamp = rfc3339(now);
      meta.deletionGracePeriodSeconds = 0;
      if (type.hasGeneration && old.metadata.deletionTimestamp === undefined) meta.generation = (meta.generation ?? 1) + 1;
      if (options.dryRun) return this.result(type, next, false);
      return this.result(type, this.store.write('MODIFIED', tableOf(type), next), false);
    }
    if (options.dryRun) return this.result(type, old, true);
    return this.result(type, this.store.write('DELETED', tableOf(type), old), true);
  }

  private addPropagationFinalizer(meta: KubeObject['metadata'], deleteOptions: DeleteOptions): void {
    const policy = deleteOptions.propagationPolicy ?? (deleteOptions.orphanDependents === true ? 'Orphan' : undefined);
    if (policy === undefined || policy === 'Background') return;
    // An explicit policy replaces the other propagation finalizer, as the real server does.
    const add = policy === 'Orphan' ? FINALIZER_ORPHAN : FINALIZER_FOREGROUND;
    const finalizers = (meta.finalizers ?? []).filter((f) => (f !== FINALIZER_ORPHAN && f !== FINALIZER_FOREGROUND) || f === add);
    if (!finalizers.includes(add)) finalizers.push(add);
    meta.finalizers = finalizers;
  }

  /**
   * pods/binding, as the scheduler uses it: sets spec.nodeName once (a pod update may not change it) and the
   * PodScheduled condition.
   */
  bind(pod: KubeObject, nodeName: string): KubeObject {
    const type = this.catalogue.resolve('pods');
    const current = this.get(type, pod.metadata.namespace!, pod.metadata.name!);
    if (current.metadata.uid !== pod.metadata.uid) throw conflict(groupResource(type), pod.metadata.name!, 'the pod was replaced');
    if ((current.spec as { nodeName?: string }).nodeName) throw conflict(groupResource(type), pod.metadata.name!, `pod ${pod.metadata.name} is already assigned to node "${(current.spec as { nodeName?: string }).nodeName}"`);
    const next = structuredClone(current) as KubeObject;
    (next.spec as { nodeName?: string }).nodeName = nodeName;
    const status = (next.status ?? {}) as { conditions?: unknown[] };
    status.conditions = [...(status.conditions ?? []), { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: this.now() }];
    next.status = status;
    return this.store.write('MODIFIED', tableOf(type), next);
  }

  /** Removes an object now, whatever its finalizers (the namespace controller's last step). */
  remove(type: ResourceType, object: KubeObject): void {
    if (this.find(type, object.metadata.namespace ?? '', object.metadata.name!) !== undefined) this.store.write('DELETED', tableOf(type), object);
  }

  deleteCollection(type: ResourceType, namespace: string, list: ListOptions, deleteOptions: DeleteOptions, options: WriteOptions): KubeObject[] {
    const out: KubeObject[] = [];
    for (const object of this.list(type, namespace, list).items) {
      try {
        this.delete(type, namespace, object.metadata.name!, deleteOptions, options);
        out.push(object);
      } catch (error) {
        if (!(error instanceof StatusError) || error.code !== 404) throw error;
      }
    }
    return out;
  }
}
