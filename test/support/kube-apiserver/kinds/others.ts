/**
 * The other groups the platform and the manifests use: coordination.k8s.io leases, discovery.k8s.io
 * endpointslices, rbac.authorization.k8s.io roles and bindings, policy poddisruptionbudgets,
 * networking.k8s.io networkpolicies.
 */
import type { FieldError } from '../errors.ts';
import { defineResource, type KubeObject, type ResourceType } from '../resources.ts';
import type { LabelSelectorObject } from '../selectors.ts';
import { immutableField, invalidField, isPlainObject, requiredField, unsupportedField } from '../validation.ts';
import { labelSelectorErrors } from './apps.ts';

/** MicroTime as the real server serialises it: RFC 3339 with microseconds. */
function microTime(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const parsed = Date.parse(value);
  if (Number.isNaN(parsed)) return value;
  const fraction = value.match(/\.(\d+)/)?.[1] ?? '';
  const micros = (fraction + '000000').slice(0, 6);
  return `${new Date(parsed).toISOString().slice(0, 19)}.${micros}Z`;
}

const leases = defineResource({
  group: 'coordination.k8s.io',
  version: 'v1',
  kind: 'Lease',
  resource: 'leases',
  defaults(object) {
    const spec = object.spec as Record<string, unknown> | undefined;
    if (!isPlainObject(spec)) return;
    for (const field of ['acquireTime', 'renewTime']) if (spec[field] !== undefined) spec[field] = microTime(spec[field]);
  },
  validate(object) {
    const spec = object.spec as Record<string, unknown> | undefined;
    if (spec === undefined) return [];
    const out: FieldError[] = [];
    const duration = spec.leaseDurationSeconds;
    if (duration !== undefined && (!Number.isInteger(duration) || (duration as number) <= 0)) {
      out.push(invalidField('spec.leaseDurationSeconds', duration, 'must be greater than 0'));
    }
    const transitions = spec.leaseTransitions;
    if (transitions !== undefined && (!Number.isInteger(transitions) || (transitions as number) < 0)) {
      out.push(invalidField('spec.leaseTransitions', transitions, 'must be greater than or equal to 0'));
    }
    for (const field of ['acquireTime', 'renewTime']) {
      const value = spec[field];
      if (value !== undefined && value !== null && (typeof value !== 'string' || Number.isNaN(Date.parse(value)))) {
        out.push(invalidField(`spec.${field}`, value, 'must be an RFC 3339 time'));
      }
    }
    return out;
  },
});

const ADDRESS_TYPES = ['IPv4', 'IPv6', 'FQDN'];

const endpointslices = defineResource({
  group: 'discovery.k8s.io',
  version: 'v1',
  kind: 'EndpointSlice',
  resource: 'endpointslices',
  defaults(object) {
    for (const port of (object.ports as { protocol?: string }[] | undefined) ?? []) port.protocol ??= 'TCP';
  },
  validate(object) {
    const out: FieldError[] = [];
    if (!object.addressType) out.push(requiredField('addressType'));
    else if (!ADDRESS_TYPES.includes(object.addressType as string)) out.push(unsupportedField('addressType', object.addressType, ADDRESS_TYPES));
    ((object.endpoints as { addresses?: string[] }[] | undefined) ?? []).forEach((endpoint, i) => {
      const count = endpoint.addresses?.length ?? 0;
      if (count < 1 || count > 100) out.push(invalidField(`endpoints[${i}].addresses`, count, 'must contain at least 1 and at most 100 addresses'));
    });
    return out;
  },
  validateUpdate(object, old) {
    return object.addressType === old.addressType ? [] : [immutableField('addressType', object.addressType)];
  },
});

interface PolicyRule {
  verbs?: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

function rulesErrors(object: KubeObject, clusterScoped: boolean): FieldError[] {
  const out: FieldError[] = [];
  ((object.rules as PolicyRule[] | undefined) ?? []).forEach((rule, i) => {
    const at = `rules[${i}]`;
    if (!Array.isArray(rule.verbs) || rule.verbs.length === 0) out.push(requiredField(`${at}.verbs`, 'verbs must contain at least one value'));
    const hasResources = (rule.resources ?? []).length > 0;
    const hasUrls = (rule.nonResourceURLs ?? []).length > 0;
    if (hasUrls && !clusterScoped) out.push(invalidField(`${at}.nonResourceURLs`, rule.nonResourceURLs, 'namespaced rules cannot apply to non-resource URLs'));
    if (hasUrls && hasResources) out.push(invalidField(`${at}.nonResourceURLs`, rule.nonResourceURLs, 'rules cannot apply to both regular resources and non-resource URLs'));
    if (!hasUrls && !hasResources) out.push(requiredField(`${at}.resources`, 'resource rules must supply at least one resource'));
    if (hasResources && (rule.apiGroups ?? []).length === 0) out.push(requiredField(`${at}.apiGroups`, 'resource rules must supply at least one api group'));
  });
  return out;
}

interface RoleRef {
  apiGroup?: string;
  kind?: string;
  name?: string;
}

function bindingErrors(object: KubeObject, allowedKinds: string[], clusterScoped: boolean): FieldError[] {
  const out: FieldError[] = [];
  const roleRef = object.roleRef as RoleRef | undefined;
  if (!isPlainObject(roleRef)) return [requiredField('roleRef')];
  if (roleRef.apiGroup !== 'rbac.authorization.k8s.io') out.push(unsupportedField('roleRef.apiGroup', roleRef.apiGroup ?? '', ['rbac.authorization.k8s.io']));
  if (!allowedKinds.includes(roleRef.kind ?? '')) out.push(unsupportedField('roleRef.kind', roleRef.kind ?? '', allowedKinds));
  if (!roleRef.name) out.push(requiredField('roleRef.name'));
  ((object.subjects as { kind?: string; name?: string; namespace?: string; apiGroup?: string }[] | undefined) ?? []).forEach((subject, i) => {
    const at = `subjects[${i}]`;
    if (!subject.name) out.push(requiredField(`${at}.name`));
    if (!['User', 'Group', 'ServiceAccount'].includes(subject.kind ?? '')) out.push(unsupportedField(`${at}.kind`, subject.kind ?? '', ['ServiceAccount', 'User', 'Group']));
    if (subject.kind === 'ServiceAccount') {
      if (subject.apiGroup !== undefined && subject.apiGroup !== '') out.push(unsupportedField(`${at}.apiGroup`, subject.apiGroup, ['']));
      if (clusterScoped && !subject.namespace) out.push(requiredField(`${at}.namespace`));
    } else if (subject.kind === 'User' || subject.kind === 'Group') {
      if (subject.apiGroup !== 'rbac.authorization.k8s.io') out.push(unsupportedField(`${at}.apiGroup`, subject.apiGroup ?? '', ['rbac.authorization.k8s.io']));
    }
  });
  return out;
}

function roleRefImmutable(object: KubeObject, old: KubeObject): FieldError[] {
  return JSON.stringify(object.roleRef) === JSON.stringify(old.roleRef) ? [] : [invalidField('roleRef', object.roleRef, 'cannot change roleRef')];
}

const RBAC = 'rbac.authorization.k8s.io';

const roles = defineResource({ group: RBAC, version: 'v1', kind: 'Role', resource: 'roles', nameRule: 'path-segment', validate: (o) => rulesErrors(o, false) });
const rolebindings = defineResource({
  group: RBAC,
  version: 'v1',
  kind: 'RoleBinding',
  resource: 'rolebindings',
  nameRule: 'path-segment',
  validate: (o) => bindingErrors(o, ['ClusterRole', 'Role'], false),
  validateUpdate: roleRefImmutable,
});
const clusterroles = defineResource({
  group: RBAC,
  version: 'v1',
  kind: 'ClusterRole',
  resource: 'clusterroles',
  namespaced: false,
  nameRule: 'path-segment',
  validate: (o) => rulesErrors(o, true),
});
const clusterrolebindings = defineResource({
  group: RBAC,
  version: 'v1',
  kind: 'ClusterRoleBinding',
  resource: 'clusterrolebindings',
  namespaced: false,
  nameRule: 'path-segment',
  validate: (o) => bindingErrors(o, ['ClusterRole'], true),
  validateUpdate: roleRefImmutable,
});

const poddisruptionbudgets = defineResource({
  group: 'policy',
  version: 'v1',
  kind: 'PodDisruptionBudget',
  resource: 'poddisruptionbudgets',
  shortNames: ['pdb'],
  subresources: ['status'],
  hasGeneration: true,
  prepareForCreate(object) {
    object.status = { currentHealthy: 0, desiredHealthy: 0, disruptionsAllowed: 0, expectedPods: 0 };
  },
  prepareForUpdate(object, old) {
    object.status = old.status;
  },
  validate(object) {
    const spec = object.spec as { minAvailable?: unknown; maxUnavailable?: unknown; selector?: LabelSelectorObject } | undefined;
    if (!isPlainObject(spec)) return [requiredField('spec')];
    const out: FieldError[] = [];
    if (spec.minAvailable !== undefined && spec.maxUnavailable !== undefined) {
      out.push(invalidField('spec', spec, 'minAvailable and maxUnavailable cannot be both set'));
    }
    for (const field of ['minAvailable', 'maxUnavailable'] as const) {
      const value = spec[field];
      if (value === undefined) continue;
      const ok = (typeof value === 'number' && Number.isInteger(value) && value >= 0) || (typeof value === 'string' && /^\d+%$/.test(value) && Number.parseInt(value) <= 100);
      if (!ok) out.push(invalidField(`spec.${field}`, value, 'must be a non-negative integer or a percentage between 0% and 100%'));
    }
    if (spec.selector !== undefined) out.push(...labelSelectorErrors(spec.selector, 'spec.selector', true));
    return out;
  },
});

const networkpolicies = defineResource({
  group: 'networking.k8s.io',
  version: 'v1',
  kind: 'NetworkPolicy',
  resource: 'networkpolicies',
  shortNames: ['netpol'],
  hasGeneration: true,
  defaults(object) {
    const spec = object.spec as { policyTypes?: string[]; egress?: unknown[] } | undefined;
    if (!isPlainObject(spec) || spec.policyTypes !== undefined) return;
    spec.policyTypes = spec.egress !== undefined ? ['Ingress', 'Egress'] : ['Ingress'];
  },
  validate(object) {
    const spec = object.spec as { podSelector?: LabelSelectorObject; policyTypes?: string[] } | undefined;
    if (!isPlainObject(spec)) return [requiredField('spec')];
    const out = labelSelectorErrors(spec.podSelector, 'spec.podSelector', true);
    (spec.policyTypes ?? []).forEach((type, i) => {
      if (type !== 'Ingress' && type !== 'Egress') out.push(unsupportedField(`spec.policyTypes[${i}]`, type, ['Egress', 'Ingress']));
    });
    return out;
  },
});

export const OTHER_RESOURCES: readonly ResourceType[] = [
  leases,
  endpointslices,
  roles,
  rolebindings,
  clusterroles,
  clusterrolebindings,
  poddisruptionbudgets,
  networkpolicies,
];
