/**
 * Which lists are maps keyed by some of their items' fields (the `patchMergeKey` / `x-kubernetes-list-map-keys` of
 * the real schemas), for strategic merge patches and server-side apply. Known by field name, whatever the parent:
 * a simplification that holds for the kinds served here. Every other list is atomic (replaced whole).
 */
const KEYED: Readonly<Record<string, readonly (readonly string[])[]>> = {
  containers: [['name']],
  initContainers: [['name']],
  ephemeralContainers: [['name']],
  env: [['name']],
  volumes: [['name']],
  volumeMounts: [['mountPath']],
  // Container ports are keyed by containerPort (and protocol); Service ports by port (and protocol).
  ports: [['containerPort', 'protocol'], ['port', 'protocol']],
  conditions: [['type']],
  ownerReferences: [['uid']],
  imagePullSecrets: [['name']],
  hostAliases: [['ip']],
  topologySpreadConstraints: [['topologyKey', 'whenUnsatisfiable']],
  containerStatuses: [['name']],
};

/** Primitive lists whose strategic merge is a union (patchStrategy: merge). */
export const MERGED_PRIMITIVE_LISTS: ReadonlySet<string> = new Set(['finalizers']);

/** The key fields of a list field, judged by its items; null for an atomic list. */
export function listKeys(field: string, items: readonly unknown[]): readonly string[] | null {
  const candidates = KEYED[field];
  if (candidates === undefined) return null;
  const objects = items.filter((i): i is Record<string, unknown> => i !== null && typeof i === 'object' && !Array.isArray(i));
  if (objects.length !== items.length) return null;
  if (objects.length === 0) return candidates[0]!;
  return candidates.find((keys) => objects.every((item) => item[keys[0]!] !== undefined)) ?? null;
}

/** An item's key as the fieldsV1 format writes it: k:{"containerPort":8443,"protocol":"TCP"}. */
export function itemKey(keys: readonly string[], item: Record<string, unknown>): string {
  const parts: Record<string, unknown> = {};
  for (const key of keys) {
    const value = item[key] ?? (key === 'protocol' ? 'TCP' : undefined);
    if (value !== undefined) parts[key] = value;
  }
  return `k:${JSON.stringify(parts)}`;
}

/** Whether two items have the same key; protocol defaults to TCP where it is part of a key. */
export function sameKey(keys: readonly string[], a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  return keys.every((key) => {
    const left = a[key] ?? (key === 'protocol' ? 'TCP' : undefined);
    const right = b[key] ?? (key === 'protocol' ? 'TCP' : undefined);
    return left === right;
  });
}
