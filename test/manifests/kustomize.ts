/**
 * The part of kustomize (v5) our manifests use, so the tests render manifests/ the way `kubectl apply -k`
 * would, without kubectl: resources (files and folders), namespace, namePrefix/nameSuffix with the name
 * references between rendered objects, labels and commonLabels, commonAnnotations, images, and patches
 * (strategic merge by file or inline, JSON 6902 with a target). Any other kustomization field is refused, so a
 * manifest cannot quietly rely on something these tests do not render. When kubectl is installed, the tests
 * compare this renderer with `kubectl kustomize`.
 *
 * YAML is read as YAML 1.1, like the Go YAML libraries of kubectl and kustomize (0440 is octal there).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export type K8sObject = Record<string, any> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } };

const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'namePrefix', 'nameSuffix', 'labels', 'commonLabels', 'commonAnnotations', 'images', 'patches']);

/** Kinds that live outside namespaces (those our manifests could contain). */
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'ClusterIssuer', 'PriorityClass', 'StorageClass']);
const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

export function readYamlDocuments(file: string): K8sObject[] {
  const documents = parseAllDocuments(readFileSync(file, 'utf8'), { version: '1.1' });
  const objects: K8sObject[] = [];
  for (const document of documents) {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map((e) => e.message).join('; ')}`);
    const value = document.toJS() as K8sObject | null;
    if (value !== null) objects.push(value);
  }
  return objects;
}

function kustomizationFile(dir: string): string {
  for (const name of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
    const file = join(dir, name);
    if (existsSync(file)) return file;
  }
  throw new Error(`${dir}: no kustomization.yaml`);
}

export function kustomize(dir: string): K8sObject[] {
  const file = kustomizationFile(dir);
  const [k] = readYamlDocuments(file) as Array<Record<string, any>>;
  if (k === undefined) throw new Error(`${file}: empty`);
  for (const field of Object.keys(k)) if (!KNOWN_FIELDS.has(field)) throw new Error(`${file}: field ${field} is not rendered by test/manifests/kustomize.ts`);

  let objects: K8sObject[] = [];
  for (const resource of (k.resources ?? []) as string[]) {
    const path = resolve(dir, resource);
    objects.push(...(statSync(path).isDirectory() ? kustomize(path) : readYamlDocuments(path)));
  }
  for (const patch of (k.patches ?? []) as Array<{ path?: string; patch?: string; target?: Record<string, string> }>) applyPatch(objects, patch, dir);
  if (k.namePrefix !== undefined || k.nameSuffix !== undefined) objects = rename(objects, k.namePrefix ?? '', k.nameSuffix ?? '');
  if (k.namespace !== undefined) setNamespace(objects, k.namespace);
  if (k.commonLabels !== undefined) for (const object of objects) addLabels(object, k.commonLabels, { selectors: true, templates: true });
  for (const entry of (k.labels ?? []) as Array<{ pairs: Record<string, string>; includeSelectors?: boolean; includeTemplates?: boolean }>) {
    const selectors = entry.includeSelectors === true;
    for (const object of objects) addLabels(object, entry.pairs, { selectors, templates: selectors || entry.includeTemplates === true });
  }
  if (k.commonAnnotations !== undefined) {
    for (const object of objects) {
      object.metadata.annotations = { ...object.metadata.annotations, ...k.commonAnnotations };
      if (WORKLOADS.has(object.kind)) object.spec.template.metadata.annotations = { ...object.spec.template.metadata.annotations, ...k.commonAnnotations };
    }
  }
  for (const image of (k.images ?? []) as Array<{ name: string; newName?: string; newTag?: string; digest?: string }>) setImage(objects, image);
  return objects;
}

// ---- patches ------------------------------------------------------------------------------------------------

function matches(object: K8sObject, target: Record<string, string>): boolean {
  const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : ['', object.apiVersion];
  return (target.kind === undefined || target.kind === object.kind)
    && (target.name === undefined || new RegExp(`^${target.name}$`).test(object.metadata.name))
    && (target.group === undefined || target.group === group)
    && (target.version === undefined || target.version === version);
}

function applyPatch(objects: K8sObject[], patch: { path?: string; patch?: string; target?: Record<string, string> }, dir: string): void {
  const text = patch.path !== undefined ? readFileSync(resolve(dir, patch.path), 'utf8') : patch.patch;
  if (text === undefined) throw new Error('a patch needs path or patch');
  const parsed = parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS() as unknown);
  if (Array.isArray(parsed[0])) {
    if (patch.target === undefined) throw new Error('a JSON 6902 patch needs a target');
    const targets = objects.filter((object) => matches(object, patch.target!));
    if (targets.length === 0) throw new Error(`patch target ${JSON.stringify(patch.target)} matches nothing`);
    for (const object of targets) for (const op of parsed[0] as Array<{ op: string; path: string; value?: unknown }>) jsonPatch(object, op);
    return;
  }
  for (const document of parsed as K8sObject[]) {
    const target = patch.target ?? { kind: document.kind, name: document.metadata.name };
    const found = objects.filter((object) => matches(object, target));
    if (found.length === 0) throw new Error(`strategic merge patch for ${document.kind}/${document.metadata.name} matches nothing`);
    for (const object of found) Object.assign(object, strategicMerge(object, { ...document, metadata: { ...document.metadata, name: object.metadata.name } }, ''));
  }
}

function jsonPatch(object: Record<string, any>, op: { op: string; path: string; value?: unknown }): void {
  const keys = op.path.split('/').slice(1).map((key) => key.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = keys.pop()!;
  let parent: any = object;
  for (const key of keys) {
    if (parent[key] === undefined) throw new Error(`JSON patch ${op.op} ${op.path}: no ${key}`);
    parent = parent[key];
  }
  const index = Array.isArray(parent) ? (last === '-' ? parent.length : Number(last)) : last;
  switch (op.op) {
    case 'add':
      if (Array.isArray(parent)) parent.splice(index as number, 0, op.value);
      else parent[index] = op.value;
      return;
    case 'replace':
      if (parent[index] === undefined) throw new Error(`JSON patch replace ${op.path}: nothing there`);
      parent[index] = op.value;
      return;
    case 'remove':
      if (Array.isArray(parent)) parent.splice(index as number, 1);
      else delete parent[index];
      return;
    default:
      throw new Error(`JSON patch op ${op.op} is not rendered by test/manifests/kustomize.ts`);
  }
}

/** Merge keys of the lists a strategic merge patch merges instead of replacing (k8s.io/api's patchMergeKey). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name', initContainers: 'name', env: 'name', volumes: 'name', volumeMounts: 'mountPath', ports: 'containerPort', imagePullSecrets: 'name',
};

function strategicMerge(base: any, patch: any, key: string): any {
  if (patch === null) return undefined;
  if (Array.isArray(patch)) {
    const mergeKey = MERGE_KEYS[key];
    if (mergeKey === undefined || !Array.isArray(base)) return patch;
    // As kustomize (kyaml) orders them: the patch's items first, merged with their originals, then the rest.
    const patched = patch.map((item: any) => {
      const original = base.find((existing: any) => existing[mergeKey] === item[mergeKey]);
      return original === undefined ? item : strategicMerge(original, item, '');
    });
    const keys = new Set(patch.map((item: any) => item[mergeKey]));
    return [...patched, ...base.filter((item: any) => !keys.has(item[mergeKey]))];
  }
  if (typeof patch === 'object' && typeof base === 'object' && base !== null && !Array.isArray(base)) {
    const merged: Record<string, unknown> = { ...base };
    for (const [field, value] of Object.entries(patch)) {
      const next = strategicMerge(base[field], value, field);
      if (next === undefined) delete merged[field];
      else merged[field] = next;
    }
    return merged;
  }
  return patch;
}

// ---- names, namespace, labels, images ------------------------------------------------------------------------

/** namePrefix/nameSuffix, with the references kustomize's nameReference updates for these kinds. */
function rename(objects: K8sObject[], prefix: string, suffix: string): K8sObject[] {
  const renamed = new Map<string, string>();
  for (const object of objects) {
    if (object.kind === 'Namespace' || object.kind === 'CustomResourceDefinition') continue;
    const name = `${prefix}${object.metadata.name}${suffix}`;
    renamed.set(`${object.kind}/${object.metadata.name}`, name);
    object.metadata.name = name;
  }
  const ref = (kind: string, name: string | undefined): string | undefined => (name === undefined ? undefined : renamed.get(`${kind}/${name}`) ?? name);
  for (const object of objects) {
    if (object.kind === 'RoleBinding' || object.kind === 'ClusterRoleBinding') {
      object.roleRef.name = ref(object.roleRef.kind, object.roleRef.name);
      for (const subject of object.subjects ?? []) if (subject.kind === 'ServiceAccount') subject.name = ref('ServiceAccount', subject.name);
    }
    if (object.kind === 'StatefulSet') object.spec.serviceName = ref('Service', object.spec.serviceName);
    if (WORKLOADS.has(object.kind)) {
      const pod = object.spec.template.spec;
      if (pod.serviceAccountName !== undefined) pod.serviceAccountName = ref('ServiceAccount', pod.serviceAccountName);
      for (const volume of pod.volumes ?? []) {
        if (volume.secret !== undefined) volume.secret.secretName = ref('Secret', volume.secret.secretName);
        if (volume.configMap !== undefined) volume.configMap.name = ref('ConfigMap', volume.configMap.name);
      }
    }
    if (object.apiVersion === 'cert-manager.io/v1' && object.spec?.issuerRef !== undefined) object.spec.issuerRef.name = ref(object.spec.issuerRef.kind ?? 'Issuer', object.spec.issuerRef.name);
  }
  return objects;
}

function setNamespace(objects: K8sObject[], namespace: string): void {
  for (const object of objects) {
    if (!CLUSTER_SCOPED.has(object.kind)) object.metadata.namespace = namespace;
    if (object.kind === 'RoleBinding' || object.kind === 'ClusterRoleBinding') {
      for (const subject of object.subjects ?? []) {
        if (subject.kind === 'ServiceAccount' && (subject.namespace === undefined || subject.namespace === 'default')) subject.namespace = namespace;
      }
    }
  }
}

function addLabels(object: K8sObject, labels: Record<string, string>, where: { selectors: boolean; templates: boolean }): void {
  object.metadata.labels = { ...object.metadata.labels, ...labels };
  const spec = object.spec;
  if (WORKLOADS.has(object.kind) && where.templates) spec.template.metadata.labels = { ...spec.template.metadata.labels, ...labels };
  if (!where.selectors) return;
  const merge = (holder: Record<string, any> | undefined, field: string): void => {
    if (holder !== undefined) holder[field] = { ...holder[field], ...labels };
  };
  if (WORKLOADS.has(object.kind)) {
    merge(spec.selector, 'matchLabels');
    const affinity = spec.template.spec.affinity ?? {};
    for (const kind of [affinity.podAffinity, affinity.podAntiAffinity]) {
      for (const term of kind?.requiredDuringSchedulingIgnoredDuringExecution ?? []) merge(term.labelSelector, 'matchLabels');
      for (const weighted of kind?.preferredDuringSchedulingIgnoredDuringExecution ?? []) merge(weighted.podAffinityTerm.labelSelector, 'matchLabels');
    }
  }
  if (object.kind === 'Service' && spec.selector !== undefined) merge(spec, 'selector');
  if (object.kind === 'PodDisruptionBudget') merge(spec.selector, 'matchLabels');
  if (object.kind === 'NetworkPolicy') {
    merge(spec.podSelector, 'matchLabels');
    for (const rule of spec.ingress ?? []) for (const peer of rule.from ?? []) merge(peer.podSelector, 'matchLabels');
    for (const rule of spec.egress ?? []) for (const peer of rule.to ?? []) merge(peer.podSelector, 'matchLabels');
  }
}

function setImage(objects: K8sObject[], image: { name: string; newName?: string; newTag?: string; digest?: string }): void {
  for (const object of objects) {
    if (!WORKLOADS.has(object.kind)) continue;
    const pod = object.spec.template.spec;
    for (const container of [...(pod.initContainers ?? []), ...pod.containers]) {
      const match = /^([^@:]+(?::\d+\/[^@:]+)?)(?::([^@]+))?(?:@(.+))?$/.exec(container.image);
      if (match === null || match[1] !== image.name) continue;
      const name = image.newName ?? match[1];
      container.image = image.digest !== undefined ? `${name}@${image.digest}` : `${name}${image.newTag !== undefined ? `:${image.newTag}` : match[2] !== undefined ? `:${match[2]}` : ''}${image.newTag === undefined && match[3] !== undefined ? `@${match[3]}` : ''}`;
    }
  }
}

export const MANIFESTS_ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../../manifests');
