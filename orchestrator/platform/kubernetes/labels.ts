/**
 * The names only the Kubernetes platform uses, beside the fleet's shared ones (api/fleet.ts), and the patch bodies
 * that change labels and annotations. Pure: no client, no I/O.
 */
import { fleetNames, type RelayPortName } from '../../../api/fleet.ts';

/** On a set the orchestrator created: the image of the set it replaced (rollback after a completed update). */
export const PREVIOUS_IMAGE_ANNOTATION = 'relayctl.dev/previous-image';
/** Set by the StatefulSet controller on every pod it makes. */
export const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';
/** relayd's --await-restore. */
export const AWAIT_RESTORE_ENV = 'RELAY_AWAIT_RESTORE';
/** The relay container's port relayctl reaches (its name and default number in api/fleet.ts). */
export const MGMT_PORT: RelayPortName = 'mgmt';

/** What relays' certificates are checked against when reached by IP or through a port-forward. */
export function peersServername(fleet: string, namespace: string): string {
  return `${fleetNames(fleet).peersService}.${namespace}.svc`;
}

/** A label selector of equality terms, in the API's syntax. */
export function selectorOf(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

/**
 * A JSON merge patch (RFC 7386) of metadata.labels or metadata.annotations: `null` removes a key. With
 * `resourceVersion`, the API server applies it only to that version of the object (409 Conflict otherwise).
 */
export function metadataMergePatch(
  field: 'labels' | 'annotations',
  changes: Readonly<Record<string, string | null>>,
  resourceVersion?: string,
): { metadata: Record<string, unknown> } {
  const metadata: Record<string, unknown> = { [field]: { ...changes } };
  if (resourceVersion !== undefined) metadata.resourceVersion = resourceVersion;
  return { metadata };
}

/** RFC 7386 JSON merge patch, as the API server applies it (client dry-run answers with it): null removes. */
export function jsonMergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return structuredClone(patch);
  const result: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = jsonMergePatch(result[key], value);
  }
  return result;
}

/**
 * Checks a patch argument before it goes anywhere: keys must be label/annotation keys (an optional DNS prefix and a
 * name), values strings or null. Returns why not, or null.
 */
export function invalidPatch(patch: unknown): string | null {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
    return `expected an object of string or null values, got ${JSON.stringify(patch)}`;
  }
  for (const [key, value] of Object.entries(patch)) {
    if (!isQualifiedKey(key)) return `${JSON.stringify(key)} is not a valid key (an optional DNS prefix and "/", then a name of at most 63 characters)`;
    if (value !== null && typeof value !== 'string') return `${JSON.stringify(key)} must map to a string or null, got ${JSON.stringify(value)}`;
  }
  return null;
}

const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function isQualifiedKey(key: string): boolean {
  const slash = key.indexOf('/');
  if (slash === -1) return NAME_PART.test(key);
  const prefix = key.slice(0, slash);
  return prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix) && NAME_PART.test(key.slice(slash + 1));
}

/** A DNS-1123 label: what StatefulSet and pod names built from the fleet name must be. */
export function isDnsLabel(name: string): boolean {
  return name.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name);
}
