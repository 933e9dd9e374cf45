/**
 * Authorization as the RBAC authorizer evaluates it (plugin/pkg/auth/authorizer/rbac):
 *
 * - system:masters is allowed everything (the admin user is in it).
 * - A resource request in a namespace is allowed when a rule of a Role (or ClusterRole) bound by a RoleBinding in
 *   that namespace, or of a ClusterRole bound by a ClusterRoleBinding, matches: verb (or `*`), API group (or `*`),
 *   resource (`pods`, `pods/portforward`, `*`, or `*` + `/scale` for a subresource of any resource), and resourceNames when the rule has any (a request
 *   without a name, such as list or create, never matches a rule with resourceNames).
 * - Subjects: User by name, Group by any of the user's groups, ServiceAccount as
 *   system:serviceaccount:<namespace>:<name> (namespace defaults to the binding's).
 * - Every authenticated user may read discovery and health paths (system:discovery, system:public-info-viewer)
 *   and create SelfSubjectAccessReviews (system:basic-user).
 * - A denied request's reason lists the bindings whose role does not exist (`RBAC: role.rbac... "x" not found`).
 *
 * Enforcement is switched per user (RBAC on for everyone outside system:masters by default): a user with it off is
 * allowed everything, so tests can enforce RBAC only for the identity whose Role is under test.
 */
import { GROUP_MASTERS, type UserInfo } from './authentication.ts';
import type { RequestInfo } from './request-info.ts';
import type { KubeObject } from './resources.ts';
import type { ObjectStore } from './store.ts';

export interface PolicyRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

interface RoleRef {
  kind: string;
  name: string;
}

export interface Decision {
  allowed: boolean;
  /** Why it was denied beyond "no rule matched" (missing roles), empty otherwise. */
  reason: string;
}

const PUBLIC_PATHS = ['/api', '/api/*', '/apis', '/apis/*', '/version', '/version/', '/healthz', '/livez', '/readyz', '/openapi', '/openapi/*'];

function pathMatches(pattern: string, path: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return path.startsWith(pattern.slice(0, -1));
  return pattern === path;
}

function resourceMatches(rule: PolicyRule, resource: string, subresource: string): boolean {
  const combined = subresource === '' ? resource : `${resource}/${subresource}`;
  return (rule.resources ?? []).some(
    (r) => r === '*' || r === combined || (subresource !== '' && r === `*/${subresource}`),
  );
}

export function ruleAllows(rule: PolicyRule, request: RequestInfo): boolean {
  if (!rule.verbs.includes('*') && !rule.verbs.includes(request.verb)) return false;
  if (!request.isResourceRequest) return (rule.nonResourceURLs ?? []).some((p) => pathMatches(p, request.path));
  const groups = rule.apiGroups ?? [];
  if (!groups.includes('*') && !groups.includes(request.apiGroup)) return false;
  if (!resourceMatches(rule, request.resource, request.subresource)) return false;
  const names = rule.resourceNames ?? [];
  return names.length === 0 || (request.name !== '' && names.includes(request.name));
}

function subjectMatches(subject: Subject, user: UserInfo, bindingNamespace: string): boolean {
  switch (subject.kind) {
    case 'User':
      return subject.name === user.name;
    case 'Group':
      return user.groups.includes(subject.name);
    case 'ServiceAccount':
      return user.name === `system:serviceaccount:${subject.namespace || bindingNamespace}:${subject.name}`;
    default:
      return false;
  }
}

export class RbacAuthorizer {
  private readonly store: ObjectStore;
  private readonly enforced: (user: UserInfo) => boolean;

  constructor(store: ObjectStore, enforced: (user: UserInfo) => boolean) {
    this.store = store;
    this.enforced = enforced;
  }

  authorize(user: UserInfo, request: RequestInfo): Decision {
    if (user.groups.includes(GROUP_MASTERS) || !this.enforced(user)) return { allowed: true, reason: '' };
    if (!request.isResourceRequest && request.verb === 'get' && PUBLIC_PATHS.some((p) => pathMatches(p, request.path))) {
      return { allowed: true, reason: '' };
    }
    if (request.isResourceRequest && request.apiGroup === 'authorization.k8s.io' && request.resource === 'selfsubjectaccessreviews' && request.verb === 'create') {
      return { allowed: true, reason: '' };
    }
    const missing: string[] = [];
    for (const rules of this.rulesFor(user, request.namespace, missing)) {
      if (rules.some((rule) => ruleAllows(rule, request))) return { allowed: true, reason: '' };
    }
    return { allowed: false, reason: missing.length === 0 ? '' : `RBAC: ${missing.length === 1 ? missing[0] : `[${missing.join(', ')}]`}` };
  }

  /** Rule lists that apply to the user in a namespace ('' = cluster scope only); missing roles are reported. */
  private *rulesFor(user: UserInfo, namespace: string, missing: string[]): Generator<PolicyRule[]> {
    for (const binding of this.store.list('rbac.authorization.k8s.io/clusterrolebindings')) {
      const rules = this.bound(binding, user, '', missing);
      if (rules !== null) yield rules;
    }
    if (namespace === '') return;
    for (const binding of this.store.list('rbac.authorization.k8s.io/rolebindings', namespace)) {
      const rules = this.bound(binding, user, namespace, missing);
      if (rules !== null) yield rules;
    }
  }

  private bound(binding: KubeObject, user: UserInfo, namespace: string, missing: string[]): PolicyRule[] | null {
    const subjects = (binding.subjects as Subject[] | undefined) ?? [];
    if (!subjects.some((s) => subjectMatches(s, user, namespace))) return null;
    const ref = binding.roleRef as RoleRef;
    const role =
      ref.kind === 'Role'
        ? this.store.get('rbac.authorization.k8s.io/roles', namespace, ref.name)
        : this.store.get('rbac.authorization.k8s.io/clusterroles', '', ref.name);
    if (role === undefined) {
      missing.push(`${ref.kind === 'Role' ? 'role' : 'clusterrole'}.rbac.authorization.k8s.io "${ref.name}" not found`);
      return null;
    }
    return (role.rules as PolicyRule[] | undefined) ?? [];
  }
}

/** The real server's 403 text: `User "u" cannot patch resource "pods/status" in API group "" in the namespace "ns"`. */
export function forbiddenReason(user: UserInfo, request: RequestInfo): string {
  if (!request.isResourceRequest) return `User "${user.name}" cannot ${request.verb} path "${request.path}"`;
  const resource = request.subresource === '' ? request.resource : `${request.resource}/${request.subresource}`;
  const where = request.namespace === '' ? 'at the cluster scope' : `in the namespace "${request.namespace}"`;
  return `User "${user.name}" cannot ${request.verb} resource "${resource}" in API group "${request.apiGroup}" ${where}`;
}
