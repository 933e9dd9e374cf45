/**
 * The Kubernetes permissions of relayctl and of the relays, in one place: manifests/base ships exactly these
 * rules (the manifests test compares them), and the platform's calls must stay within them.
 */

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/**
 * relayctl's Role in the fleet's namespace: what the Kubernetes platform calls during update, status, abort and
 * rollback (deploy, which creates Services, RBAC and policies, runs with an administrator's credentials).
 */
export function relayctlRules(fleet: string): PolicyRule[] {
  return [
    // The sets: read, watch for readiness, create the new one, annotate the progress record, delete the old one.
    { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
    // Pods: list by label, watch readiness, and patch the restore and serving labels.
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'patch'] },
    // The management API through the API server. WebSocket port-forwards are a GET: clusters before 1.35 check
    // get, 1.35 on (AuthorizePodWebsocketUpgradeCreatePermission) check create too, as SPDY always did.
    { apiGroups: [''], resources: ['pods/portforward'], verbs: ['get', 'create'] },
    // The update lock; taken over when expired with a resourceVersion-guarded update, never deleted.
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
    // Its own client certificate, and no other Secret.
    { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: [`${fleet}-relayctl-tls`] },
  ];
}

/** The relays' Role: the start-up restore decision reads the relay's own pod and its double, nothing else. */
export const RELAY_RULES: readonly PolicyRule[] = [
  { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
];
