/**
 * Field ownership (metadata.managedFields) and server-side apply, simplified from structured-merge-diff:
 *
 * - A field set is the set of leaf paths of an object in the fieldsV1 notation (`f:spec`, `f:replicas`; items of
 *   keyed lists as `k:{"name":"relay"}` plus `.` for the item itself; see lists.ts). Atomic lists and empty maps
 *   are leaves. Status belongs to writes through the status subresource; system metadata (name, uid,
 *   resourceVersion, ...) belongs to no one.
 * - Update (PUT, non-apply PATCH, create): the manager takes every leaf whose value it changed or added; other
 *   managers lose those leaves; leaves that disappeared are dropped from every manager. No conflicts.
 * - Apply: the applied configuration is merged into the live object (maps deep, keyed lists by key, atomic lists
 *   and scalars replaced). A leaf the configuration sets to a value different from the live one, and that another
 *   manager owns, is a conflict: 409 with the real message and causes, unless `force` moves ownership to the
 *   applier. Leaves the applier owned before and no longer applies are removed from the object when no other
 *   manager owns them (a removed keyed item goes whole). The applier then owns exactly what it applied.
 *
 * Not modelled: per-version schemas, `x-kubernetes-list-type: set` ownership of individual primitive values,
 * and granular ownership inside atomic structs (they are handled as maps).
 */
import { StatusError } from './errors.ts';
import { itemKey, listKeys } from './lists.ts';
import { deepEqual, strategicMergePatch } from './patch.ts';
import type { KubeObject, ManagedFieldsEntry } from './resources.ts';
import { isPlainObject } from './validation.ts';

type Json = unknown;
type JsonObject = Record<string, Json>;
type Path = readonly string[];

const SEPARATOR = '\n';
const SYSTEM_METADATA = new Set([
  'name',
  'namespace',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'managedFields',
  'selfLink',
  'generateName',
]);

export type FieldScope = 'main' | 'status';

function collect(value: Json, prefix: string[], field: string, out: Set<string>): void {
  if (isPlainObject(value)) {
    const keys = Object.keys(value);
    if (keys.length === 0 && prefix.length > 0) out.add(prefix.join(SEPARATOR));
    for (const key of keys) collect(value[key], [...prefix, `f:${key}`], key, out);
    return;
  }
  if (Array.isArray(value)) {
    const keys = listKeys(field, value);
    if (keys === null) {
      out.add(prefix.join(SEPARATOR));
      return;
    }
    for (const item of value as JsonObject[]) {
      const at = [...prefix, itemKey(keys, item)];
      out.add([...at, '.'].join(SEPARATOR));
      for (const [key, child] of Object.entries(item)) collect(child, [...at, `f:${key}`], key, out);
    }
    return;
  }
  out.add(prefix.join(SEPARATOR));
}

/** The leaves of an object a manager can own, in one scope. */
export function fieldSet(object: KubeObject | JsonObject | undefined, scope: FieldScope): Set<string> {
  const out = new Set<string>();
  if (object === undefined) return out;
  if (scope === 'status') {
    if (object.status !== undefined) collect(object.status, ['f:status'], 'status', out);
    return out;
  }
  for (const [key, value] of Object.entries(object)) {
    if (key === 'apiVersion' || key === 'kind' || key === 'status') continue;
    if (key === 'metadata' && isPlainObject(value)) {
      for (const [metaKey, metaValue] of Object.entries(value)) {
        if (!SYSTEM_METADATA.has(metaKey)) collect(metaValue, ['f:metadata', `f:${metaKey}`], metaKey, out);
      }
      continue;
    }
    collect(value, [`f:${key}`], key, out);
  }
  return out;
}

function matchesKey(item: Json, key: JsonObject): boolean {
  if (!isPlainObject(item)) return false;
  return Object.entries(key).every(([k, v]) => (item[k] ?? (k === 'protocol' ? 'TCP' : undefined)) === v);
}

/** The value at a path, or undefined. */
export function valueAt(object: Json, path: Path): Json {
  let at: Json = object;
  for (const segment of path) {
    if (segment === '.') return at;
    if (segment.startsWith('f:')) {
      if (!isPlainObject(at)) return undefined;
      at = at[segment.slice(2)];
    } else if (segment.startsWith('k:')) {
      if (!Array.isArray(at)) return undefined;
      const key = JSON.parse(segment.slice(2)) as JsonObject;
      at = at.find((item) => matchesKey(item, key));
    } else return undefined;
  }
  return at;
}

/** Removes the value at a path from a mutable object (a `.` path removes the keyed item). */
function removeAt(object: JsonObject, path: Path): void {
  const last = path[path.length - 1]!;
  if (last === '.') {
    const list = valueAt(object, path.slice(0, -2));
    const key = JSON.parse(path[path.length - 2]!.slice(2)) as JsonObject;
    if (Array.isArray(list)) {
      const index = list.findIndex((item) => matchesKey(item, key));
      if (index >= 0) list.splice(index, 1);
    }
    return;
  }
  const parent = valueAt(object, path.slice(0, -1));
  if (isPlainObject(parent) && last.startsWith('f:')) delete parent[last.slice(2)];
}

/** `.spec.template.spec.containers[name="relay"].image`, as conflict messages print paths. */
export function printPath(path: string): string {
  return path
    .split(SEPARATOR)
    .map((segment) => {
      if (segment.startsWith('f:')) return `.${segment.slice(2)}`;
      if (segment.startsWith('k:')) {
        const key = JSON.parse(segment.slice(2)) as JsonObject;
        return `[${Object.entries(key).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]`;
      }
      return '';
    })
    .join('');
}

// ---------------------------------------------------------------------------------------------------------------
// The fieldsV1 trie
// ---------------------------------------------------------------------------------------------------------------

function encode(paths: Iterable<string>): JsonObject {
  const root: JsonObject = {};
  for (const path of paths) {
    let node = root;
    for (const segment of path.split(SEPARATOR)) node = (node[segment] ??= {}) as JsonObject;
  }
  return root;
}

function decode(trie: JsonObject, prefix: string[] = [], out = new Set<string>()): Set<string> {
  for (const [segment, child] of Object.entries(trie)) {
    const path = [...prefix, segment];
    if (!isPlainObject(child) || Object.keys(child).length === 0) out.add(path.join(SEPARATOR));
    else decode(child, path, out);
  }
  return out;
}

interface Ownership {
  manager: string;
  operation: 'Apply' | 'Update';
  subresource: string;
  apiVersion: string;
  time: string;
  fields: Set<string>;
}

function readOwnership(object: KubeObject | undefined): Ownership[] {
  return (object?.metadata.managedFields ?? []).map((entry) => ({
    manager: entry.manager,
    operation: entry.operation,
    subresource: entry.subresource ?? '',
    apiVersion: entry.apiVersion,
    time: entry.time,
    fields: decode(entry.fieldsV1 ?? {}),
  }));
}

function writeOwnership(entries: readonly Ownership[]): ManagedFieldsEntry[] {
  return entries
    .filter((entry) => entry.fields.size > 0)
    .map((entry) => {
      const out: ManagedFieldsEntry = {
        manager: entry.manager,
        operation: entry.operation,
        apiVersion: entry.apiVersion,
        time: entry.time,
        fieldsType: 'FieldsV1',
        fieldsV1: encode([...entry.fields].sort()),
      };
      if (entry.subresource !== '') out.subresource = entry.subresource;
      return out;
    });
}

function entryFor(entries: Ownership[], manager: string, operation: 'Apply' | 'Update', subresource: string, apiVersion: string, time: string): Ownership {
  let entry = entries.find((e) => e.manager === manager && e.operation === operation && e.subresource === subresource);
  if (entry === undefined) {
    entry = { manager, operation, subresource, apiVersion, time, fields: new Set() };
    entries.push(entry);
  }
  return entry;
}

export interface OwnershipChange {
  manager: string;
  subresource: '' | 'status';
  apiVersion: string;
  /** RFC 3339 seconds. */
  time: string;
}

/** managedFields after an Update-style write (create, PUT, non-apply PATCH). */
export function updateManagedFields(old: KubeObject | undefined, next: KubeObject, change: OwnershipChange): ManagedFieldsEntry[] {
  const scope: FieldScope = change.subresource === 'status' ? 'status' : 'main';
  const entries = readOwnership(old);
  const before = fieldSet(old, scope);
  const after = fieldSet(next, scope);
  const changed = [...after].filter((p) => {
    if (!before.has(p)) return true;
    const segments = p.split(SEPARATOR);
    return segments[segments.length - 1] !== '.' && !deepEqual(valueAt(old, segments), valueAt(next, segments));
  });
  const removed = [...before].filter((p) => !after.has(p));
  for (const entry of entries) {
    for (const p of removed) entry.fields.delete(p);
  }
  if (changed.length > 0) {
    for (const entry of entries) {
      if (entry.manager === change.manager && entry.operation === 'Update' && entry.subresource === change.subresource) continue;
      for (const p of changed) entry.fields.delete(p);
    }
    const mine = entryFor(entries, change.manager, 'Update', change.subresource, change.apiVersion, change.time);
    for (const p of changed) mine.fields.add(p);
    mine.time = change.time;
    mine.apiVersion = change.apiVersion;
  }
  return writeOwnership(entries);
}

function printManager(entry: Ownership): string {
  const name = JSON.stringify(entry.manager);
  return entry.operation === 'Update' ? `${name} using ${entry.apiVersion} at ${entry.time}` : name;
}

function conflictError(conflicts: { entry: Ownership; path: string }[]): StatusError {
  const causes = conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with ${printManager(c.entry)}`, field: printPath(c.path) }));
  let message: string;
  if (conflicts.length === 1) {
    message = `Apply failed with 1 conflict: conflict with ${printManager(conflicts[0]!.entry)}: ${printPath(conflicts[0]!.path)}`;
  } else {
    const byManager = new Map<string, string[]>();
    for (const c of conflicts) {
      const key = printManager(c.entry);
      byManager.set(key, [...(byManager.get(key) ?? []), printPath(c.path)]);
    }
    const lines: string[] = [];
    for (const manager of [...byManager.keys()].sort()) {
      lines.push(`conflicts with ${manager}:`);
      for (const path of byManager.get(manager)!) lines.push(`- ${path}`);
    }
    message = `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
  }
  return new StatusError(409, 'Conflict', message, { causes });
}

export interface ApplyOptions extends OwnershipChange {
  force: boolean;
}

/**
 * Server-side apply of `applied` (the configuration, already parsed) onto `live` (undefined: create). Returns the
 * merged object (to be defaulted, validated and stored by the caller) with its managedFields.
 */
export function serverSideApply(live: KubeObject | undefined, applied: KubeObject, options: ApplyOptions): KubeObject {
  const scope: FieldScope = options.subresource === 'status' ? 'status' : 'main';
  const entries = readOwnership(live);
  const appliedFields = fieldSet(applied, scope);
  let merged: KubeObject;
  if (live === undefined) merged = structuredClone(applied);
  else {
    const conflicts: { entry: Ownership; path: string }[] = [];
    for (const entry of entries) {
      if (entry.manager === options.manager && entry.operation === 'Apply') continue;
      for (const p of appliedFields) {
        if (!entry.fields.has(p)) continue;
        const segments = p.split(SEPARATOR);
        // An item's own entry (`.`) only says it exists; its fields are compared on their own paths.
        if (segments[segments.length - 1] === '.') continue;
        if (!deepEqual(valueAt(live, segments), valueAt(applied, segments))) conflicts.push({ entry, path: p });
      }
    }
    if (conflicts.length > 0 && !options.force) throw conflictError(conflicts);
    for (const { entry, path } of conflicts) entry.fields.delete(path);

    const source = scope === 'status' ? { ...live, status: applied.status } : applied;
    merged = strategicMergePatch(structuredClone(live), source) as KubeObject;
    const previous = entries.find((e) => e.manager === options.manager && e.operation === 'Apply' && e.subresource === options.subresource);
    const ownedByOthers = new Set<string>();
    for (const entry of entries) if (entry !== previous) for (const p of entry.fields) ownedByOthers.add(p);
    // Remove deepest paths first so that removing an item does not hide its own fields' removal.
    const dropped = [...(previous?.fields ?? [])].filter((p) => !appliedFields.has(p) && !ownedByOthers.has(p)).sort((a, b) => b.length - a.length);
    for (const p of dropped) {
      const segments = p.split(SEPARATOR);
      // An item another manager still has fields in stays.
      if (segments[segments.length - 1] === '.' && [...ownedByOthers].some((o) => o.startsWith(segments.slice(0, -1).join(SEPARATOR) + SEPARATOR))) continue;
      removeAt(merged as JsonObject, segments);
    }
  }
  const mine = entryFor(entries, options.manager, 'Apply', options.subresource, options.apiVersion, options.time);
  const changedOwnership = mine.fields.size !== appliedFields.size || [...appliedFields].some((p) => !mine.fields.has(p));
  mine.fields = appliedFields;
  mine.apiVersion = options.apiVersion;
  if (changedOwnership || live === undefined) mine.time = options.time;
  merged.metadata = { ...merged.metadata, managedFields: writeOwnership(entries) };
  return merged;
}
