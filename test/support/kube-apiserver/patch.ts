/**
 * The patch formats a PATCH may carry, applied to the object's JSON:
 *
 * - application/merge-patch+json: RFC 7386 (objects merge, null deletes, lists are replaced).
 * - application/json-patch+json: RFC 6902 (add, remove, replace, move, copy, test). A body that is not a list of
 *   operations is a 400 (what client-node's default content type does to a merge-style body); an operation that
 *   does not apply (a failed test, a missing path) is a 422, as in the real server.
 * - application/strategic-merge-patch+json: merge-patch semantics, plus lists merged by key where the real schema
 *   has a patch merge key (lists.ts), `$patch: delete|replace` on maps and keyed items, `$retainKeys`, and
 *   `$deleteFromPrimitiveList/<field>`; finalizers merge as a set. `$setElementOrder` is accepted and ignored.
 *
 * Server-side apply (application/apply-patch+yaml) lives in apply.ts.
 */
import { badRequest, patchNotApplicable } from './errors.ts';
import { listKeys, MERGED_PRIMITIVE_LISTS, sameKey } from './lists.ts';
import { isPlainObject } from './validation.ts';

export const JSON_PATCH = 'application/json-patch+json';
export const MERGE_PATCH = 'application/merge-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
export const APPLY_PATCH = 'application/apply-patch+yaml';
/** What the real server accepts for built-in resources (the order of its 415 message). */
export const PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH] as const;
export type PatchType = (typeof PATCH_TYPES)[number];

type Json = unknown;
type JsonObject = Record<string, Json>;

export function deepEqual(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const ak = Object.keys(a);
    const bk = Object.keys(b);
    return ak.length === bk.length && ak.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// RFC 7386
// ---------------------------------------------------------------------------------------------------------------

export function mergePatch(target: Json, patch: Json): Json {
  if (!isPlainObject(patch)) return structuredClone(patch);
  const result: JsonObject = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// RFC 6902
// ---------------------------------------------------------------------------------------------------------------

interface Operation {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

const MAX_OPERATIONS = 10_000;

/** Checks a decoded body is a JSON patch (the real server's DecodePatch), else a 400 with Go's wording. */
export function decodeJsonPatch(body: Json): Operation[] {
  if (!Array.isArray(body)) {
    const what = body === null ? 'null' : isPlainObject(body) ? 'object' : typeof body;
    throw badRequest(`json: cannot unmarshal ${what} into Go value of type jsonpatch.Patch`);
  }
  if (body.length > MAX_OPERATIONS) throw badRequest(`The allowed maximum operations in a JSON patch is ${MAX_OPERATIONS}, got ${body.length}`);
  for (const op of body) {
    if (!isPlainObject(op) || typeof op.op !== 'string' || typeof op.path !== 'string') {
      throw badRequest('json: cannot unmarshal into Go value of type jsonpatch.Operation: every operation needs string "op" and "path"');
    }
  }
  return body as Operation[];
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw patchNotApplicable(`JSON pointer must be empty or start with a "/": ${JSON.stringify(pointer)}`);
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(container: Json[], token: string, allowEnd: boolean): number | null {
  if (token === '-' && allowEnd) return container.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) return null;
  const index = Number(token);
  return index <= container.length - (allowEnd ? 0 : 1) ? index : null;
}

/** The parent container of a pointer and the last token, or null when the parent does not exist. */
function locate(doc: Json, tokens: string[]): { parent: Json; token: string } | null {
  let at = doc;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(at)) {
      const index = arrayIndex(at, token, false);
      if (index === null) return null;
      at = at[index];
    } else if (isPlainObject(at) && Object.hasOwn(at, token)) at = at[token];
    else return null;
  }
  return { parent: at, token: tokens[tokens.length - 1]! };
}

function getAt(doc: Json, pointer: string): { found: boolean; value?: Json } {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return { found: true, value: doc };
  const place = locate(doc, tokens);
  if (place === null) return { found: false };
  const { parent, token } = place;
  if (Array.isArray(parent)) {
    const index = arrayIndex(parent, token, false);
    return index === null ? { found: false } : { found: true, value: parent[index] };
  }
  if (isPlainObject(parent) && Object.hasOwn(parent, token)) return { found: true, value: parent[token] };
  return { found: false };
}

function missing(op: string, pointer: string): Error {
  return patchNotApplicable(`${op} operation does not apply: doc is missing path: ${JSON.stringify(pointer)}: missing value`);
}

/** Applies to a clone of `doc`; the root itself can be replaced. */
function addAt(doc: Json, pointer: string, value: Json, op: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  const place = locate(doc, tokens);
  if (place === null) throw missing(op, pointer);
  const { parent, token } = place;
  if (Array.isArray(parent)) {
    const index = arrayIndex(parent, token, true);
    if (index === null) throw patchNotApplicable(`${op} operation does not apply: index out of range: ${JSON.stringify(pointer)}`);
    parent.splice(index, 0, value);
  } else if (isPlainObject(parent)) parent[token] = value;
  else throw missing(op, pointer);
  return doc;
}

function removeAt(doc: Json, pointer: string, op: string): Json {
  const tokens = parsePointer(pointer);
  const place = tokens.length === 0 ? null : locate(doc, tokens);
  if (place === null) throw missing(op, pointer);
  const { parent, token } = place;
  if (Array.isArray(parent)) {
    const index = arrayIndex(parent, token, false);
    if (index === null) throw missing(op, pointer);
    parent.splice(index, 1);
  } else if (isPlainObject(parent) && Object.hasOwn(parent, token)) delete parent[token];
  else throw missing(op, pointer);
  return doc;
}

export function jsonPatch(document: Json, operations: readonly Operation[]): Json {
  let doc = structuredClone(document);
  for (const operation of operations) {
    const { op, path } = operation;
    switch (op) {
      case 'add':
        doc = addAt(doc, path, structuredClone(operation.value), 'add');
        break;
      case 'remove':
        doc = removeAt(doc, path, 'remove');
        break;
      case 'replace': {
        if (!getAt(doc, path).found) throw patchNotApplicable(`replace operation does not apply: doc is missing key: ${path}: missing value`);
        if (parsePointer(path).length === 0) doc = structuredClone(operation.value);
        else {
          doc = removeAt(doc, path, 'replace');
          doc = addAt(doc, path, structuredClone(operation.value), 'replace');
        }
        break;
      }
      case 'move':
      case 'copy': {
        if (operation.from === undefined) throw patchNotApplicable(`${op} operation requires "from"`);
        const source = getAt(doc, operation.from);
        if (!source.found) throw missing(op, operation.from);
        const value = structuredClone(source.value);
        if (op === 'move') doc = removeAt(doc, operation.from, 'move');
        doc = addAt(doc, path, value, op);
        break;
      }
      case 'test': {
        const at = getAt(doc, path);
        if (!at.found || !deepEqual(at.value, operation.value)) throw patchNotApplicable(`testing value ${path} failed: test failed`);
        break;
      }
      default:
        throw patchNotApplicable(`Unexpected kind: ${op}`);
    }
  }
  return doc;
}

// ---------------------------------------------------------------------------------------------------------------
// Strategic merge patch (the subset described above)
// ---------------------------------------------------------------------------------------------------------------

function withoutDirectives(value: Json): Json {
  if (Array.isArray(value)) return value.map(withoutDirectives);
  if (!isPlainObject(value)) return value;
  const out: JsonObject = {};
  for (const [key, child] of Object.entries(value)) if (!key.startsWith('$')) out[key] = withoutDirectives(child);
  return out;
}

function mergeList(field: string, current: Json, patch: Json[]): Json {
  const keys = listKeys(field, [...(Array.isArray(current) ? current : []), ...patch]);
  if (keys !== null && Array.isArray(current)) {
    const result = [...current] as JsonObject[];
    for (const item of patch as JsonObject[]) {
      const index = result.findIndex((existing) => sameKey(keys, existing, item));
      if (item.$patch === 'delete') {
        if (index >= 0) result.splice(index, 1);
      } else if (item.$patch === 'replace') {
        const replacement = withoutDirectives(item) as JsonObject;
        if (index >= 0) result[index] = replacement;
        else result.push(replacement);
      } else if (index >= 0) result[index] = strategicMergePatch(result[index], item) as JsonObject;
      else result.push(withoutDirectives(item) as JsonObject);
    }
    return result;
  }
  if (MERGED_PRIMITIVE_LISTS.has(field) && Array.isArray(current)) {
    const result = [...current];
    for (const value of patch) if (!result.some((v) => deepEqual(v, value))) result.push(value);
    return result;
  }
  return withoutDirectives(patch);
}

export function strategicMergePatch(target: Json, patch: Json): Json {
  if (!isPlainObject(patch)) return withoutDirectives(structuredClone(patch));
  if (patch.$patch === 'replace') return withoutDirectives(patch);
  if (patch.$patch === 'delete') return undefined;
  let result: JsonObject = isPlainObject(target) ? { ...target } : {};
  const retain = patch.$retainKeys;
  if (Array.isArray(retain)) {
    const kept: JsonObject = {};
    for (const key of retain) if (typeof key === 'string' && Object.hasOwn(result, key)) kept[key] = result[key];
    result = kept;
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(result[field]) && Array.isArray(value)) result[field] = (result[field] as Json[]).filter((v) => !value.some((d) => deepEqual(d, v)));
      continue;
    }
    if (key.startsWith('$')) continue;
    if (value === null) delete result[key];
    else if (Array.isArray(value)) result[key] = mergeList(key, result[key], value);
    else if (isPlainObject(value)) {
      const merged = strategicMergePatch(result[key], value);
      if (merged === undefined) delete result[key];
      else result[key] = merged;
    } else result[key] = value;
  }
  return result;
}
