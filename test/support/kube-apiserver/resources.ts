/**
 * What the stand-in knows about each resource: its group, version, kind and plural, whether it is namespaced, its
 * subresources, how its names are checked, and the hooks the generic registry calls (defaulting, validation,
 * create and update preparation). One table (catalogue()) feeds the router, discovery and RBAC.
 */
import type { FieldError } from './errors.ts';
import type { NameRule } from './validation.ts';

export interface GroupResource {
  group: string;
  resource: string;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Record<string, unknown>;
  subresource?: string;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: ManagedFieldsEntry[];
}

/** Any API object, as JSON. Kind modules cast spec and status to the shapes of kubernetes-models. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** What hooks may consult or allocate while an object is written. */
export interface HookContext {
  now(): Date;
  /** Reads a stored object (admission lookups: the namespace, a ServiceAccount). */
  get(resource: string, namespace: string, name: string): KubeObject | undefined;
  /** A loopback address for a Service's cluster IP (the kube-proxy stand-in listens on it). */
  allocateClusterIP(): string;
  allocateNodePort(): number;
}

export type Subresource = 'status' | 'scale' | 'portforward' | 'log';

export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  listKind: string;
  /** The plural, as in URLs and RBAC rules. */
  resource: string;
  singular: string;
  shortNames: readonly string[];
  namespaced: boolean;
  nameRule: NameRule;
  subresources: readonly Subresource[];
  /** metadata.generation is kept and bumped when anything but metadata and status changes. */
  hasGeneration: boolean;
  /** DELETE answers with the object (pods, services) rather than a Success Status. */
  returnDeletedObject: boolean;
  /** Pods: a DELETE sets deletionTimestamp and the kubelet removes the object once the containers stopped. */
  gracefulDeletion: boolean;
  /** Fields a fieldSelector may name besides metadata.name and metadata.namespace. */
  fieldSelectors: readonly string[];
  /** Verbs for discovery (the registry serves them all). */
  verbs: readonly string[];
  /** Defaulting, run on every write before validation (idempotent). */
  defaults?(object: KubeObject, context: HookContext): void;
  /** Create-time preparation after defaulting: reset status, allocate addresses. */
  prepareForCreate?(object: KubeObject, context: HookContext): void;
  /** Update-time preparation (main resource): carry over what an update may not set. */
  prepareForUpdate?(object: KubeObject, old: KubeObject, context: HookContext): void;
  validate?(object: KubeObject, context: HookContext): FieldError[];
  validateUpdate?(object: KubeObject, old: KubeObject, context: HookContext): FieldError[];
  /** Admission on create (after validation): may throw a Status error (a missing ServiceAccount). */
  admitCreate?(object: KubeObject, context: HookContext): void;
}

export const DEFAULT_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'] as const;

export function groupVersion(type: Pick<ResourceType, 'group' | 'version'>): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

export function groupResource(type: Pick<ResourceType, 'group' | 'resource'>): GroupResource {
  return { group: type.group, resource: type.resource };
}

export function defineResource(
  fields: Pick<ResourceType, 'group' | 'version' | 'kind' | 'resource'> & Partial<ResourceType>,
): ResourceType {
  return {
    listKind: `${fields.kind}List`,
    singular: fields.kind.toLowerCase(),
    shortNames: [],
    namespaced: true,
    nameRule: 'subdomain',
    subresources: [],
    hasGeneration: false,
    returnDeletedObject: false,
    gracefulDeletion: false,
    fieldSelectors: [],
    verbs: DEFAULT_VERBS,
    ...fields,
  };
}

/** Looks resource types up by group and plural, and by apiVersion and kind. */
export class Catalogue {
  private readonly byResource = new Map<string, ResourceType>();
  private readonly byKind = new Map<string, ResourceType>();

  readonly types: readonly ResourceType[];

  constructor(types: readonly ResourceType[]) {
    this.types = types;
    for (const type of types) {
      this.byResource.set(`${type.group}/${type.resource}`, type);
      this.byKind.set(`${groupVersion(type)}/${type.kind}`, type);
    }
  }

  find(group: string, resource: string): ResourceType | undefined {
    return this.byResource.get(`${group}/${resource}`);
  }

  /** `pods`, `statefulsets.apps`, `statefulsets` (first match across groups), or a kind such as `StatefulSet`. */
  resolve(name: string): ResourceType {
    const dot = name.indexOf('.');
    if (dot > 0) {
      const found = this.find(name.slice(dot + 1), name.slice(0, dot));
      if (found !== undefined) return found;
    }
    const found = this.types.find((t) => t.resource === name || t.kind === name || t.singular === name || t.shortNames.includes(name));
    if (found === undefined) throw new Error(`unknown resource ${JSON.stringify(name)}; known: ${this.types.map((t) => t.resource).join(', ')}`);
    return found;
  }

  forKind(apiVersion: string, kind: string): ResourceType | undefined {
    return this.byKind.get(`${apiVersion}/${kind}`);
  }

  groups(): { group: string; versions: string[] }[] {
    const out = new Map<string, Set<string>>();
    for (const type of this.types) {
      if (type.group === '') continue;
      const versions = out.get(type.group) ?? new Set<string>();
      versions.add(type.version);
      out.set(type.group, versions);
    }
    return [...out].map(([group, versions]) => ({ group, versions: [...versions] }));
  }
}
