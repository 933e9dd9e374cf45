import type { V1Pod, V1StatefulSet } from '@kubernetes/client-node';

/**
 * Objects as the API server returns them for a fleet `relay` in namespace `relays`: the active set relay-a as the
 * manifests make it, with everything the server adds (status, uid, managedFields...), and one of its pods.
 */
export function activeSet(overrides: { image?: string } = {}): V1StatefulSet {
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: {
      name: 'relay-a',
      namespace: 'relays',
      uid: '5d7f1c3e-0000-4000-8000-000000000001',
      resourceVersion: '4711',
      generation: 3,
      creationTimestamp: new Date('2025-01-01T00:00:00Z'),
      labels: { 'app.kubernetes.io/name': 'relay', 'relayctl.dev/fleet': 'relay', 'relayctl.dev/set': 'relay-a' },
      annotations: {
        'relayctl.dev/update': '{"version":1}',
        'kubectl.kubernetes.io/last-applied-configuration': '{"apiVersion":"apps/v1"}',
      },
      managedFields: [{ manager: 'kubectl', operation: 'Apply', apiVersion: 'apps/v1' }],
    },
    spec: {
      replicas: 3,
      serviceName: 'relay-peers',
      podManagementPolicy: 'OrderedReady',
      revisionHistoryLimit: 2,
      updateStrategy: { type: 'OnDelete' },
      selector: { matchLabels: { 'relayctl.dev/fleet': 'relay', 'relayctl.dev/set': 'relay-a' } },
      template: {
        metadata: {
          labels: { 'app.kubernetes.io/name': 'relay', 'relayctl.dev/fleet': 'relay', 'relayctl.dev/set': 'relay-a', 'relayctl.dev/serving': 'true' },
          annotations: { 'prometheus.io/port': '8080' },
        },
        spec: {
          serviceAccountName: 'relay',
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: 'relay',
              image: overrides.image ?? 'registry.example/relay:1.0',
              args: ['--upstream', 'backend:5683'],
              env: [
                { name: 'RELAY_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'RELAY_AWAIT_RESTORE', value: 'false' },
                { name: 'RELAY_HEALTH_PORT', value: '8080' },
              ],
              ports: [
                { name: 'dtls', containerPort: 5684, protocol: 'UDP' },
                { name: 'mgmt', containerPort: 8443, protocol: 'TCP' },
                { name: 'health', containerPort: 8080, protocol: 'TCP' },
              ],
              readinessProbe: { httpGet: { path: '/readyz', port: 'health' }, periodSeconds: 1, failureThreshold: 2 },
              livenessProbe: { httpGet: { path: '/livez', port: 'health' }, periodSeconds: 10 },
              resources: { requests: { cpu: '500m', memory: '256Mi' }, limits: { memory: '512Mi' } },
              volumeMounts: [{ name: 'tls', mountPath: '/etc/relay/tls', readOnly: true }],
            },
            { name: 'log-shipper', image: 'registry.example/shipper:3', args: ['--follow'] },
          ],
          volumes: [{ name: 'tls', secret: { secretName: 'relay-relay-tls' } }],
        },
      },
    },
    status: { replicas: 3, readyReplicas: 3, currentRevision: 'relay-a-7d9f', observedGeneration: 3, availableReplicas: 3 },
  };
}

export function pod(name: string, overrides: { phase?: string; ready?: boolean; ip?: string; labels?: Record<string, string>; terminating?: boolean } = {}): V1Pod {
  const set = name.replace(/-\d+$/, '');
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'relays',
      resourceVersion: '5000',
      labels: {
        'relayctl.dev/fleet': 'relay',
        'relayctl.dev/set': set,
        'statefulset.kubernetes.io/pod-name': name,
        ...overrides.labels,
      },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: set, uid: 'u', controller: true }],
      ...(overrides.terminating ? { deletionTimestamp: new Date('2025-01-01T00:10:00Z') } : {}),
    },
    spec: {
      containers: [
        { name: 'relay', image: 'registry.example/relay:1.0', ports: [{ name: 'mgmt', containerPort: 8443 }] },
        { name: 'log-shipper', image: 'registry.example/shipper:3' },
      ],
    },
    status: {
      phase: overrides.phase ?? 'Running',
      ...(overrides.ip === undefined && overrides.phase === 'Pending' ? {} : { podIP: overrides.ip ?? '10.244.1.7' }),
      conditions: [{ type: 'Ready', status: overrides.ready === false ? 'False' : 'True' }],
    },
  };
}
