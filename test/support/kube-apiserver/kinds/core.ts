/**
 * The core (v1) resources: namespaces, pods, services, secrets, configmaps, serviceaccounts, endpoints, events.
 */
import type { IServiceSpec } from 'kubernetes-models/v1/ServiceSpec';
import { forbidden, type FieldError } from '../errors.ts';
import { defineResource, type HookContext, type KubeObject, type ResourceType } from '../resources.ts';
import {
  duplicateField,
  forbiddenField,
  immutableField,
  invalidField,
  isPlainObject,
  labelsErrors,
  requiredField,
  unsupportedField,
} from '../validation.ts';
import { defaultPodSpec, podSpecErrors, type PodSpec } from './pod-spec.ts';

/** Where a pod's service-account token, CA and namespace are mounted (the in-cluster config's fixed path). */
export const SERVICE_ACCOUNT_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
/** The ConfigMap the root CA publisher puts in every namespace. */
export const ROOT_CA_CONFIGMAP = 'kube-root-ca.crt';

const namespaces = defineResource({
  group: '',
  version: 'v1',
  kind: 'Namespace',
  resource: 'namespaces',
  shortNames: ['ns'],
  namespaced: false,
  nameRule: 'label',
  subresources: ['status'],
  returnDeletedObject: true,
  fieldSelectors: ['status.phase'],
  verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
  prepareForCreate(object) {
    object.spec = { finalizers: ['kubernetes'] };
    object.status = { phase: 'Active' };
    object.metadata.labels = { ...object.metadata.labels, 'kubernetes.io/metadata.name': object.metadata.name! };
  },
  prepareForUpdate(object, old) {
    object.spec = old.spec;
    object.status = old.status;
    object.metadata.labels = { ...object.metadata.labels, 'kubernetes.io/metadata.name': old.metadata.name! };
  },
});

function randomSuffix(length: number): string {
  // The alphabet of utilrand.String: no vowels, no confusable characters.
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[Math.floor(Math.random() * alphabet.length)];
  return out;
}

export { randomSuffix };

function podSpec(object: KubeObject): PodSpec {
  return object.spec as PodSpec;
}

/** The ServiceAccount admission plugin: default account, existence check, token volume. */
function admitPodServiceAccount(object: KubeObject, context: HookContext): void {
  const spec = podSpec(object);
  const namespace = object.metadata.namespace!;
  spec.serviceAccountName ||= 'default';
  (spec as { serviceAccount?: string }).serviceAccount = spec.serviceAccountName;
  const account = context.get('/serviceaccounts', namespace, spec.serviceAccountName);
  if (account === undefined) {
    throw forbidden({ group: '', resource: 'pods' }, object.metadata.name ?? '', `error looking up service account ${namespace}/${spec.serviceAccountName}: serviceaccount "${spec.serviceAccountName}" not found`);
  }
  const automount = spec.automountServiceAccountToken ?? (account.automountServiceAccountToken as boolean | undefined) ?? true;
  if (!automount) return;
  const containers = [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
  if (containers.some((c) => (c.volumeMounts ?? []).some((m) => m.mountPath === SERVICE_ACCOUNT_MOUNT_PATH))) return;
  const volumeName = `kube-api-access-${randomSuffix(5)}`;
  spec.volumes = [
    ...(spec.volumes ?? []),
    {
      name: volumeName,
      projected: {
        defaultMode: 0o644,
        sources: [
          { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
          { configMap: { name: ROOT_CA_CONFIGMAP, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
        ],
      },
    },
  ];
  for (const container of containers) {
    container.volumeMounts = [...(container.volumeMounts ?? []), { name: volumeName, mountPath: SERVICE_ACCOUNT_MOUNT_PATH, readOnly: true }];
  }
}

const POD_UPDATE_FORBIDDEN =
  'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)';

/** The spec with the fields an update may change blanked out, to compare the rest. */
function immutablePart(spec: PodSpec): string {
  const copy = structuredClone(spec) as PodSpec & Record<string, unknown>;
  for (const container of [...(copy.containers ?? []), ...(copy.initContainers ?? [])]) container.image = '';
  delete copy.activeDeadlineSeconds;
  delete copy.tolerations;
  delete copy.terminationGracePeriodSeconds;
  return JSON.stringify(copy);
}

const pods = defineResource({
  group: '',
  version: 'v1',
  kind: 'Pod',
  resource: 'pods',
  shortNames: ['po'],
  subresources: ['status', 'portforward', 'log'],
  hasGeneration: true,
  returnDeletedObject: true,
  gracefulDeletion: true,
  fieldSelectors: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'status.phase', 'status.podIP', 'status.nominatedNodeName'],
  defaults(object) {
    if (isPlainObject(object.spec)) defaultPodSpec(podSpec(object));
  },
  prepareForCreate(object) {
    object.status = { phase: 'Pending', qosClass: 'BestEffort' };
  },
  prepareForUpdate(object, old) {
    object.status = old.status;
  },
  admitCreate: admitPodServiceAccount,
  validate(object) {
    const out = podSpecErrors(podSpec(object), 'spec');
    return out;
  },
  validateUpdate(object, old) {
    const next = podSpec(object);
    const previous = podSpec(old);
    const out: FieldError[] = [];
    if (immutablePart(next) !== immutablePart(previous)) out.push(forbiddenField('spec', POD_UPDATE_FORBIDDEN));
    return out;
  },
});

type ServiceSpec = IServiceSpec;

const SERVICE_TYPES = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'];

const services = defineResource({
  group: '',
  version: 'v1',
  kind: 'Service',
  resource: 'services',
  shortNames: ['svc'],
  nameRule: 'dns1035',
  subresources: ['status'],
  returnDeletedObject: true,
  verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
  defaults(object) {
    if (!isPlainObject(object.spec)) return;
    const spec = object.spec as ServiceSpec;
    spec.type ??= 'ClusterIP';
    spec.sessionAffinity ??= 'None';
    if (spec.type !== 'ExternalName') spec.internalTrafficPolicy ??= 'Cluster';
    if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') spec.externalTrafficPolicy ??= 'Cluster';
    if (spec.type === 'LoadBalancer') spec.allocateLoadBalancerNodePorts ??= true;
    for (const port of spec.ports ?? []) {
      port.protocol ??= 'TCP';
      port.targetPort ??= port.port;
    }
  },
  prepareForCreate(object, context) {
    const spec = object.spec as ServiceSpec;
    object.status = { loadBalancer: {} };
    if (spec.type === 'ExternalName') return;
    if (spec.clusterIP === undefined || spec.clusterIP === '') spec.clusterIP = context.allocateClusterIP();
    spec.clusterIPs = [spec.clusterIP];
    spec.ipFamilies = ['IPv4'];
    spec.ipFamilyPolicy ??= 'SingleStack';
    if (spec.type === 'NodePort' || (spec.type === 'LoadBalancer' && spec.allocateLoadBalancerNodePorts !== false)) {
      for (const port of spec.ports ?? []) port.nodePort ??= context.allocateNodePort();
    }
  },
  prepareForUpdate(object, old) {
    object.status = old.status;
    const spec = object.spec as ServiceSpec | undefined;
    const previous = old.spec as ServiceSpec;
    if (spec === undefined || spec.type === 'ExternalName') return;
    // As the real registry does, allocated values the update left out are kept.
    if (spec.clusterIP === undefined || spec.clusterIP === '') spec.clusterIP = previous.clusterIP;
    spec.clusterIPs ??= previous.clusterIPs;
    spec.ipFamilies ??= previous.ipFamilies;
    spec.ipFamilyPolicy ??= previous.ipFamilyPolicy;
    for (const port of spec.ports ?? []) {
      const before = (previous.ports ?? []).find((p) => p.port === port.port && p.protocol === port.protocol);
      if (port.nodePort === undefined && before?.nodePort !== undefined) port.nodePort = before.nodePort;
    }
  },
  validate(object) {
    const spec = object.spec as ServiceSpec | undefined;
    if (!isPlainObject(spec)) return [requiredField('spec')];
    const out: FieldError[] = [];
    if (spec.type !== undefined && !SERVICE_TYPES.includes(spec.type)) out.push(unsupportedField('spec.type', spec.type, SERVICE_TYPES));
    const headless = spec.clusterIP === 'None';
    const ports = spec.ports ?? [];
    if (ports.length === 0 && !headless && spec.type !== 'ExternalName') out.push(requiredField('spec.ports'));
    const names = new Set<string>();
    ports.forEach((port, i) => {
      const at = `spec.ports[${i}]`;
      if (ports.length > 1 && !port.name) out.push(requiredField(`${at}.name`));
      if (port.name) {
        if (names.has(port.name)) out.push(duplicateField(`${at}.name`, port.name));
        names.add(port.name);
      }
      if (!Number.isInteger(port.port) || port.port < 1 || port.port > 65535) out.push(invalidField(`${at}.port`, port.port, 'must be between 1 and 65535, inclusive'));
      if (port.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(port.protocol)) out.push(unsupportedField(`${at}.protocol`, port.protocol, ['SCTP', 'TCP', 'UDP']));
      if (typeof port.targetPort === 'number' && (port.targetPort < 1 || port.targetPort > 65535)) {
        out.push(invalidField(`${at}.targetPort`, port.targetPort, 'must be between 1 and 65535, inclusive'));
      }
    });
    if (spec.selector !== undefined) out.push(...labelsErrors(spec.selector, 'spec.selector'));
    if (spec.externalTrafficPolicy !== undefined && spec.type !== 'NodePort' && spec.type !== 'LoadBalancer') {
      out.push(invalidField('spec.externalTrafficPolicy', spec.externalTrafficPolicy, 'may only be set when `type` is \'NodePort\' or \'LoadBalancer\''));
    }
    if (spec.externalTrafficPolicy !== undefined && !['Cluster', 'Local'].includes(spec.externalTrafficPolicy)) {
      out.push(unsupportedField('spec.externalTrafficPolicy', spec.externalTrafficPolicy, ['Cluster', 'Local']));
    }
    return out;
  },
  validateUpdate(object, old) {
    const spec = object.spec as ServiceSpec;
    const previous = old.spec as ServiceSpec;
    if (spec.type !== 'ExternalName' && previous.type !== 'ExternalName' && spec.clusterIP !== previous.clusterIP) {
      return [immutableField('spec.clusterIPs[0]', spec.clusterIP)];
    }
    return [];
  },
});

const DATA_KEY = /^[-._a-zA-Z0-9]+$/;
const DATA_KEY_TEXT = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const MAX_SECRET_SIZE = 1024 * 1024;

function dataKeyErrors(data: unknown, field: string): FieldError[] {
  if (data === undefined) return [];
  if (!isPlainObject(data)) return [invalidField(field, data, 'must be a map')];
  const out: FieldError[] = [];
  for (const key of Object.keys(data)) if (!DATA_KEY.test(key)) out.push(invalidField(`${field}[${key}]`, key, DATA_KEY_TEXT));
  return out;
}

function mergeStringData(object: KubeObject): void {
  const stringData = object.stringData as Record<string, string> | undefined;
  if (stringData === undefined) return;
  const data = { ...(object.data as Record<string, string> | undefined) };
  for (const [key, value] of Object.entries(stringData)) data[key] = Buffer.from(String(value), 'utf8').toString('base64');
  object.data = data;
  delete object.stringData;
}

function immutableDataErrors(object: KubeObject, old: KubeObject): FieldError[] {
  if (old.immutable !== true) return [];
  const out: FieldError[] = [];
  if (JSON.stringify(object.data ?? {}) !== JSON.stringify(old.data ?? {})) out.push(forbiddenField('data', 'field is immutable when `immutable` is set'));
  if (object.immutable !== true) out.push(forbiddenField('immutable', 'field is immutable when `immutable` is set'));
  return out;
}

const secrets = defineResource({
  group: '',
  version: 'v1',
  kind: 'Secret',
  resource: 'secrets',
  fieldSelectors: ['type'],
  defaults(object) {
    object.type ??= 'Opaque';
  },
  prepareForCreate: mergeStringData,
  prepareForUpdate: mergeStringData,
  validate(object) {
    const out = dataKeyErrors(object.data, 'data');
    let size = 0;
    for (const [key, value] of Object.entries((object.data as Record<string, unknown> | undefined) ?? {})) {
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
        out.push(invalidField(`data[${key}]`, '<secret contents redacted>', 'must be base64 encoded'));
        continue;
      }
      size += Buffer.from(value, 'base64').length;
    }
    if (size > MAX_SECRET_SIZE) out.push({ type: 'FieldValueTooLong', field: 'data', detail: `may not be more than ${MAX_SECRET_SIZE} bytes` });
    const data = (object.data as Record<string, unknown> | undefined) ?? {};
    if (object.type === 'kubernetes.io/tls') {
      for (const key of ['tls.crt', 'tls.key']) if (data[key] === undefined) out.push(requiredField(`data[${key}]`));
    }
    return out;
  },
  validateUpdate(object, old) {
    const out = immutableDataErrors(object, old);
    if (object.type !== old.type) out.push(immutableField('type', object.type));
    return out;
  },
});

const configmaps = defineResource({
  group: '',
  version: 'v1',
  kind: 'ConfigMap',
  resource: 'configmaps',
  shortNames: ['cm'],
  validate(object) {
    return [...dataKeyErrors(object.data, 'data'), ...dataKeyErrors(object.binaryData, 'binaryData')];
  },
  validateUpdate: immutableDataErrors,
});

const serviceaccounts = defineResource({
  group: '',
  version: 'v1',
  kind: 'ServiceAccount',
  resource: 'serviceaccounts',
  shortNames: ['sa'],
});

const endpoints = defineResource({
  group: '',
  version: 'v1',
  kind: 'Endpoints',
  listKind: 'EndpointsList',
  resource: 'endpoints',
  singular: 'endpoints',
  shortNames: ['ep'],
});

const events = defineResource({
  group: '',
  version: 'v1',
  kind: 'Event',
  resource: 'events',
  shortNames: ['ev'],
  fieldSelectors: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'reason', 'type', 'source'],
  validate(object) {
    return isPlainObject(object.involvedObject) ? [] : [requiredField('involvedObject')];
  },
});

export const CORE_RESOURCES: readonly ResourceType[] = [namespaces, pods, services, secrets, configmaps, serviceaccounts, endpoints, events];
