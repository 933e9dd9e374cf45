/**
 * The validation every object gets (names, labels, annotations, owner references), with the real server's wording
 * (k8s.io/apimachinery/pkg/util/validation and api/validation). Kind-specific rules live with each kind in kinds/.
 */
import type { FieldError } from './errors.ts';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

const DNS1123_LABEL_TEXT =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_TEXT =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_TEXT =
  "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_TEXT =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_TEXT =
  "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

function maxLength(n: number): string {
  return `must be no more than ${n} characters`;
}

function patternErrors(value: string, max: number, pattern: RegExp, text: string): string[] {
  const out: string[] = [];
  if (value.length > max) out.push(maxLength(max));
  if (!pattern.test(value)) out.push(text);
  return out;
}

/** Problems with a name as a DNS-1123 label (namespaces, StatefulSets, container names); empty when valid. */
export function dns1123LabelErrors(value: string): string[] {
  return patternErrors(value, 63, DNS1123_LABEL, DNS1123_LABEL_TEXT);
}

export function dns1123SubdomainErrors(value: string): string[] {
  return patternErrors(value, 253, DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_TEXT);
}

export function dns1035LabelErrors(value: string): string[] {
  return patternErrors(value, 63, DNS1035_LABEL, DNS1035_LABEL_TEXT);
}

/** RBAC objects' names only need to be usable as a path segment. */
export function pathSegmentErrors(value: string): string[] {
  if (value === '.' || value === '..') return [`may not be '${value}'`];
  const out: string[] = [];
  for (const bad of ['/', '%']) if (value.includes(bad)) out.push(`may not contain '${bad}'`);
  return out;
}

export function labelValueErrors(value: string): string[] {
  return patternErrors(value, 63, LABEL_VALUE, LABEL_VALUE_TEXT);
}

/** A label or annotation key: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters. */
export function labelKeyErrors(key: string): string[] {
  const parts = key.split('/');
  let name = key;
  const out: string[] = [];
  if (parts.length === 2) {
    const prefix = parts[0]!;
    name = parts[1]!;
    if (prefix === '') out.push('prefix part must be non-empty');
    else for (const problem of dns1123SubdomainErrors(prefix)) out.push(`prefix part ${problem}`);
  } else if (parts.length > 2) {
    return ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"];
  }
  if (name === '') out.push('name part must be non-empty');
  else {
    if (name.length > 63) out.push(`name part ${maxLength(63)}`);
    if (!QUALIFIED_NAME.test(name)) out.push(QUALIFIED_NAME_TEXT);
  }
  return out;
}

export type NameRule = 'subdomain' | 'label' | 'dns1035' | 'path-segment';

const NAME_RULES: Record<NameRule, (value: string) => string[]> = {
  subdomain: dns1123SubdomainErrors,
  label: dns1123LabelErrors,
  dns1035: dns1035LabelErrors,
  'path-segment': pathSegmentErrors,
};

export function nameErrors(rule: NameRule, name: string): string[] {
  return NAME_RULES[rule](name);
}

export function invalidField(field: string, value: unknown, detail: string): FieldError {
  return { type: 'FieldValueInvalid', field, value, detail };
}

export function requiredField(field: string, detail = ''): FieldError {
  return { type: 'FieldValueRequired', field, detail };
}

export function forbiddenField(field: string, detail: string): FieldError {
  return { type: 'FieldValueForbidden', field, detail };
}

export function unsupportedField(field: string, value: unknown, supported: readonly string[]): FieldError {
  return { type: 'FieldValueNotSupported', field, value, detail: `supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}` };
}

export function duplicateField(field: string, value: unknown): FieldError {
  return { type: 'FieldValueDuplicate', field, value, detail: '' };
}

export function immutableField(field: string, value: unknown): FieldError {
  return invalidField(field, value, 'field is immutable');
}

export function labelsErrors(labels: unknown, field: string): FieldError[] {
  if (labels === undefined || labels === null) return [];
  if (typeof labels !== 'object' || Array.isArray(labels)) return [invalidField(field, labels, 'must be a map of string keys to string values')];
  const out: FieldError[] = [];
  for (const [key, value] of Object.entries(labels as Record<string, unknown>)) {
    for (const problem of labelKeyErrors(key)) out.push(invalidField(field, key, problem));
    if (typeof value !== 'string') {
      out.push(invalidField(`${field}`, value, 'label values must be strings'));
      continue;
    }
    for (const problem of labelValueErrors(value)) out.push(invalidField(field, value, problem));
  }
  return out;
}

const TOTAL_ANNOTATION_SIZE = 256 * 1024;

export function annotationsErrors(annotations: unknown, field: string): FieldError[] {
  if (annotations === undefined || annotations === null) return [];
  if (typeof annotations !== 'object' || Array.isArray(annotations)) return [invalidField(field, annotations, 'must be a map of string keys to string values')];
  const out: FieldError[] = [];
  let size = 0;
  for (const [key, value] of Object.entries(annotations as Record<string, unknown>)) {
    for (const problem of labelKeyErrors(key.toLowerCase())) out.push(invalidField(field, key, problem));
    if (typeof value !== 'string') out.push(invalidField(field, value, 'annotation values must be strings'));
    else size += key.length + value.length;
  }
  if (size > TOTAL_ANNOTATION_SIZE) out.push({ type: 'FieldValueTooLong', field, detail: `may not be more than ${TOTAL_ANNOTATION_SIZE} bytes` });
  return out;
}

interface OwnerReference {
  apiVersion?: string;
  kind?: string;
  name?: string;
  uid?: string;
  controller?: boolean;
}

export function ownerReferencesErrors(refs: unknown, field: string): FieldError[] {
  if (refs === undefined || refs === null) return [];
  if (!Array.isArray(refs)) return [invalidField(field, refs, 'must be a list')];
  const out: FieldError[] = [];
  let controllers = 0;
  refs.forEach((ref: OwnerReference, i) => {
    const at = `${field}[${i}]`;
    if (!ref.apiVersion) out.push(invalidField(`${at}.apiVersion`, ref.apiVersion ?? '', 'version must not be empty'));
    if (!ref.kind) out.push(invalidField(`${at}.kind`, ref.kind ?? '', 'kind must not be empty'));
    if (!ref.name) out.push(invalidField(`${at}.name`, ref.name ?? '', 'name must not be empty'));
    if (!ref.uid) out.push(invalidField(`${at}.uid`, ref.uid ?? '', 'uid must not be empty'));
    if (ref.controller === true) controllers++;
  });
  if (controllers > 1) out.push(invalidField(field, refs, 'Only one reference can have Controller set to true'));
  return out;
}

export interface MetaRules {
  namespaced: boolean;
  name: NameRule;
}

/** Object metadata checks common to every kind (ValidateObjectMeta). */
export function objectMetaErrors(metadata: Record<string, unknown>, rules: MetaRules): FieldError[] {
  const out: FieldError[] = [];
  const name = metadata.name;
  if (typeof name !== 'string' || name === '') {
    out.push(requiredField('metadata.name', 'name or generateName is required'));
  } else {
    for (const problem of nameErrors(rules.name, name)) out.push(invalidField('metadata.name', name, problem));
  }
  if (rules.namespaced && (typeof metadata.namespace !== 'string' || metadata.namespace === '')) {
    out.push(requiredField('metadata.namespace'));
  }
  if (!rules.namespaced && typeof metadata.namespace === 'string' && metadata.namespace !== '') {
    out.push(forbiddenField('metadata.namespace', 'not allowed on this type'));
  }
  out.push(...labelsErrors(metadata.labels, 'metadata.labels'));
  out.push(...annotationsErrors(metadata.annotations, 'metadata.annotations'));
  out.push(...ownerReferencesErrors(metadata.ownerReferences, 'metadata.ownerReferences'));
  const finalizers = metadata.finalizers;
  if (finalizers !== undefined && !Array.isArray(finalizers)) out.push(invalidField('metadata.finalizers', finalizers, 'must be a list'));
  return out;
}

/** Metadata that may not change on update (ValidateObjectMetaUpdate). */
export function objectMetaUpdateErrors(next: Record<string, unknown>, old: Record<string, unknown>): FieldError[] {
  const out: FieldError[] = [];
  if (next.name !== old.name) out.push(immutableField('metadata.name', next.name));
  if ((next.namespace ?? '') !== (old.namespace ?? '')) out.push(immutableField('metadata.namespace', next.namespace));
  if (next.uid !== old.uid) out.push(immutableField('metadata.uid', next.uid));
  if (next.creationTimestamp !== old.creationTimestamp) out.push(immutableField('metadata.creationTimestamp', next.creationTimestamp));
  if (old.deletionTimestamp !== undefined && next.deletionTimestamp !== old.deletionTimestamp) {
    out.push(immutableField('metadata.deletionTimestamp', next.deletionTimestamp));
  }
  return out;
}

/** A JSON object (not null, not an array). */
export function isPlainObject<T extends object>(value: T | null | undefined): value is T;
export function isPlainObject(value: unknown): value is Record<string, unknown>;
export function isPlainObject(value: unknown): boolean {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
