/**
 * Discovery documents (legacy, unaggregated JSON), built from the catalogue: /api, /api/v1, /apis, /apis/<group>,
 * /apis/<group>/<version>, and /version. Clients asking for aggregated discovery get these and fall back, as
 * they do against servers older than 1.26.
 */
import type { Catalogue, ResourceType } from './resources.ts';

export const SERVER_VERSION = { major: '1', minor: '35', gitVersion: 'v1.35.0-relayctl-standin' } as const;

/** Virtual, create-only resources the router serves itself (not stored). */
const SELF_SUBJECT_ACCESS_REVIEWS = {
  group: 'authorization.k8s.io',
  version: 'v1',
  resource: { name: 'selfsubjectaccessreviews', singularName: 'selfsubjectaccessreview', namespaced: false, kind: 'SelfSubjectAccessReview', verbs: ['create'] },
};

const SUBRESOURCE_DOCS: Record<string, (type: ResourceType) => Record<string, unknown>> = {
  status: (t) => ({ kind: t.kind, verbs: ['get', 'patch', 'update'] }),
  scale: () => ({ kind: 'Scale', group: 'autoscaling', version: 'v1', verbs: ['get', 'patch', 'update'] }),
  portforward: () => ({ kind: 'PodPortForwardOptions', verbs: ['create', 'get'] }),
  log: (t) => ({ kind: t.kind, verbs: ['get'] }),
};

function resourceList(catalogue: Catalogue, group: string, version: string): Record<string, unknown> | undefined {
  const types = catalogue.types.filter((t) => t.group === group && t.version === version);
  const resources: Record<string, unknown>[] = [];
  for (const type of types) {
    const entry: Record<string, unknown> = { name: type.resource, singularName: type.singular, namespaced: type.namespaced, kind: type.kind, verbs: [...type.verbs] };
    if (type.shortNames.length > 0) entry.shortNames = [...type.shortNames];
    resources.push(entry);
    for (const sub of type.subresources) {
      resources.push({ name: `${type.resource}/${sub}`, singularName: '', namespaced: type.namespaced, ...SUBRESOURCE_DOCS[sub]!(type) });
    }
  }
  if (group === SELF_SUBJECT_ACCESS_REVIEWS.group && version === SELF_SUBJECT_ACCESS_REVIEWS.version) resources.push(SELF_SUBJECT_ACCESS_REVIEWS.resource);
  if (resources.length === 0) return undefined;
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group === '' ? version : `${group}/${version}`, resources };
}

function groups(catalogue: Catalogue): { name: string; versions: string[] }[] {
  const out = catalogue.groups().map((g) => ({ name: g.group, versions: g.versions }));
  out.push({ name: SELF_SUBJECT_ACCESS_REVIEWS.group, versions: [SELF_SUBJECT_ACCESS_REVIEWS.version] });
  return out;
}

function groupDoc(group: { name: string; versions: string[] }): Record<string, unknown> {
  const versions = group.versions.map((v) => ({ groupVersion: `${group.name}/${v}`, version: v }));
  return { name: group.name, versions, preferredVersion: versions[0] };
}

/** The discovery document for a path, or undefined when the path is not a discovery path. */
export function discoveryDocument(catalogue: Catalogue, path: string, serverAddress: string): Record<string, unknown> | undefined {
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.length === 1 && parts[0] === 'version') {
    return { ...SERVER_VERSION, gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.25', compiler: 'gc', platform: `${process.platform}/${process.arch}` };
  }
  if (parts[0] === 'api') {
    if (parts.length === 1) return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
    if (parts.length === 2) return resourceList(catalogue, '', parts[1]!);
    return undefined;
  }
  if (parts[0] === 'apis') {
    const all = groups(catalogue);
    if (parts.length === 1) return { kind: 'APIGroupList', apiVersion: 'v1', groups: all.map(groupDoc) };
    const group = all.find((g) => g.name === parts[1]);
    if (group === undefined) return undefined;
    if (parts.length === 2) return { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(group) };
    if (parts.length === 3) return resourceList(catalogue, parts[1]!, parts[2]!);
  }
  return undefined;
}
