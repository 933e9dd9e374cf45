/**
 * Validation of Kubernetes objects against the API's OpenAPI schemas (kubernetes-models, generated from a
 * current Kubernetes release), plus what the schemas alone let through but the API server refuses with strict
 * field validation (kubectl's default): fields the schema does not know, such as a typo.
 *
 * Unknown fields are found by watching the schema's validator: every field it reads is a field the schema
 * knows; a field of an object the validator looked into but never read is unknown. Free-form objects (maps
 * such as labels) are read in full by the validator, so they pass.
 */
import type { K8sObject } from './kustomize.ts';

interface Validatable {
  prototype: { validate(this: unknown): void };
}

async function modelOf(apiVersion: string, kind: string): Promise<Validatable | null> {
  const path = apiVersion === 'v1' ? `kubernetes-models/v1/${kind}` : `kubernetes-models/${apiVersion}/${kind}`;
  try {
    return (await import(path))[kind] as Validatable;
  } catch {
    return null;
  }
}

/** Wraps `value` so that every property the validator reads is recorded in `reads`, per object. */
function watched(value: unknown, reads: Map<object, Set<string>>): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const keys = new Set<string>();
  reads.set(value, keys);
  const children = new Map<string, unknown>();
  return new Proxy(value, {
    get(target, property, receiver) {
      const result = Reflect.get(target, property, receiver);
      if (typeof property !== 'string') return result;
      keys.add(property);
      if (typeof result !== 'object' || result === null) return result;
      if (!children.has(property)) children.set(property, watched(result, reads));
      return children.get(property);
    },
    has(target, property) {
      if (typeof property === 'string') keys.add(property);
      return Reflect.has(target, property);
    },
    ownKeys(target) {
      // Enumerated: a map (additionalProperties) that takes any key.
      for (const key of Reflect.ownKeys(target)) if (typeof key === 'string') keys.add(key);
      return Reflect.ownKeys(target);
    },
  });
}

function unknownFields(value: unknown, reads: Map<object, Set<string>>, path: string, out: string[]): void {
  if (typeof value !== 'object' || value === null) return;
  const keys = reads.get(value);
  // Never looked into, or looked at as a whole without reading any field: free-form, not ours to judge.
  const judged = keys !== undefined && keys.size > 0;
  for (const [key, child] of Object.entries(value)) {
    const at = Array.isArray(value) ? `${path}[${key}]` : `${path}.${key}`;
    if (judged && !keys.has(key)) out.push(`${at}: unknown field`);
    else unknownFields(child, reads, at, out);
  }
}

/** Problems of one object (empty when valid), each naming the field. */
export async function schemaProblems(object: K8sObject, extraSchemas: Record<string, (object: K8sObject) => string[]> = {}): Promise<string[]> {
  const id = `${object.apiVersion} ${object.kind}`;
  const extra = extraSchemas[id];
  if (extra !== undefined) return extra(object);
  const model = await modelOf(object.apiVersion, object.kind);
  if (model === null) return [`${id}: no schema for this kind`];
  const reads = new Map<object, Set<string>>();
  const problems: string[] = [];
  try {
    model.prototype.validate.call(watched(object, reads));
  } catch (error) {
    // One message per failed rule: "data/spec must have required property selector, data/spec/replicas must be integer".
    problems.push(...String((error as Error).message).split(/\n|, (?=data\/)/).map((line) => line.trim()).filter((line) => line !== ''));
  }
  unknownFields(object, reads, '', problems);
  return problems;
}

/**
 * A custom resource kind that kubernetes-models does not ship, checked by the fields it may have (from its
 * CRD's schema, written down by hand): unknown fields and wrong basic types are reported.
 */
export type FieldSpec = 'string' | 'number' | 'boolean' | 'string[]' | 'map' | { [field: string]: FieldSpec };

export function checkFields(value: unknown, spec: FieldSpec, path: string): string[] {
  if (spec === 'string' || spec === 'number' || spec === 'boolean') return typeof value === spec ? [] : [`${path}: expected ${spec}`];
  if (spec === 'string[]') return Array.isArray(value) && value.every((v) => typeof v === 'string') ? [] : [`${path}: expected a list of strings`];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${path}: expected an object`];
  if (spec === 'map') return Object.values(value).every((v) => typeof v === 'string') ? [] : [`${path}: expected a map of strings`];
  const problems: string[] = [];
  for (const [key, child] of Object.entries(value)) {
    const childSpec = spec[key];
    if (childSpec === undefined) problems.push(`${path}.${key}: unknown field`);
    else problems.push(...checkFields(child, childSpec, `${path}.${key}`));
  }
  return problems;
}
