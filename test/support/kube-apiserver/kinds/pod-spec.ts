/**
 * Pod spec defaulting and validation, shared by Pods and the pod templates of StatefulSets. Defaults follow
 * pkg/apis/core/v1/defaults.go for the fields a client sees come back (restartPolicy, grace period, probe timings,
 * pull policy, ...); validation covers what a wrong manifest or a wrong copy of a template would get wrong: names,
 * images, ports, env sources, volume references, probe handlers.
 */
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { FieldError } from '../errors.ts';
import {
  dns1123LabelErrors,
  dns1123SubdomainErrors,
  duplicateField,
  forbiddenField,
  invalidField,
  isPlainObject,
  requiredField,
  unsupportedField,
} from '../validation.ts';

export type PodSpec = IPodSpec;
export type Container = IContainer;
export type Probe = IProbe;

function imagePullPolicy(image: string | undefined): 'Always' | 'IfNotPresent' {
  if (image === undefined) return 'IfNotPresent';
  const lastPart = image.split('/').pop() ?? image;
  if (image.includes('@')) return 'IfNotPresent';
  const tag = lastPart.includes(':') ? lastPart.slice(lastPart.indexOf(':') + 1) : '';
  return tag === '' || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

function defaultProbe(probe: Probe | undefined): void {
  if (probe === undefined) return;
  probe.timeoutSeconds ??= 1;
  probe.periodSeconds ??= 10;
  probe.successThreshold ??= 1;
  probe.failureThreshold ??= 3;
  if (probe.httpGet !== undefined) probe.httpGet.scheme ??= 'HTTP';
}

function defaultContainer(container: Container): void {
  container.imagePullPolicy ??= imagePullPolicy(container.image);
  container.terminationMessagePath ??= '/dev/termination-log';
  container.terminationMessagePolicy ??= 'File';
  container.resources ??= {};
  for (const port of container.ports ?? []) port.protocol ??= 'TCP';
  for (const env of container.env ?? []) {
    if (env.valueFrom?.fieldRef !== undefined) env.valueFrom.fieldRef.apiVersion ??= 'v1';
  }
  defaultProbe(container.readinessProbe);
  defaultProbe(container.livenessProbe);
  defaultProbe(container.startupProbe);
}

export function defaultPodSpec(spec: PodSpec): void {
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.schedulerName ??= 'default-scheduler';
  spec.securityContext ??= {};
  spec.enableServiceLinks ??= true;
  // serviceAccount is the deprecated alias; the two are kept equal.
  const serviceAccount = (spec as { serviceAccount?: string }).serviceAccount;
  if (spec.serviceAccountName === undefined && serviceAccount !== undefined) spec.serviceAccountName = serviceAccount;
  for (const container of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) defaultContainer(container);
  for (const volume of spec.volumes ?? []) {
    if (volume.secret !== undefined) volume.secret.defaultMode ??= 0o644;
    if (volume.configMap !== undefined) volume.configMap.defaultMode ??= 0o644;
    if (volume.projected !== undefined) volume.projected.defaultMode ??= 0o644;
    if (volume.downwardAPI !== undefined) volume.downwardAPI.defaultMode ??= 0o644;
  }
}

const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const SUPPORTED_FIELD_REFS = [
  'metadata.name',
  'metadata.namespace',
  'metadata.uid',
  'spec.nodeName',
  'spec.serviceAccountName',
  'status.hostIP',
  'status.hostIPs',
  'status.podIP',
  'status.podIPs',
];

function portNameErrors(name: string): string[] {
  const out: string[] = [];
  if (name.length > 15) out.push('must be no more than 15 characters');
  if (!IANA_SVC_NAME.test(name)) out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  if (!/[a-z]/.test(name)) out.push('must contain at least one letter (a-z)');
  if (name.includes('--')) out.push('must not contain consecutive hyphens');
  return out;
}

function portNumberOk(port: unknown): boolean {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
}

function handlerErrors(handler: Record<string, unknown> | undefined, path: string, container: Container, allowSleep: boolean): FieldError[] {
  if (handler === undefined) return [];
  const kinds = ['exec', 'httpGet', 'tcpSocket', 'grpc', ...(allowSleep ? ['sleep'] : [])].filter((k) => handler[k] !== undefined);
  if (kinds.length === 0) return [requiredField(path, 'must specify a handler type')];
  if (kinds.length > 1) return [forbiddenField(`${path}.${kinds[1]}`, 'may not specify more than 1 handler type')];
  const out: FieldError[] = [];
  const named = new Set((container.ports ?? []).map((p) => p.name).filter((n) => n !== undefined));
  const checkPort = (port: unknown, at: string): void => {
    if (typeof port === 'string') {
      if (portNameErrors(port).length > 0 || !named.has(port)) out.push(invalidField(at, port, 'must contain at least one letter or number (a-z, 0-9)'));
    } else if (!portNumberOk(port)) out.push(invalidField(at, port, 'must be between 1 and 65535, inclusive'));
  };
  const httpGet = handler.httpGet as { port?: unknown; scheme?: string; path?: string } | undefined;
  if (httpGet !== undefined) {
    checkPort(httpGet.port, `${path}.httpGet.port`);
    if (httpGet.scheme !== undefined && httpGet.scheme !== 'HTTP' && httpGet.scheme !== 'HTTPS') {
      out.push(unsupportedField(`${path}.httpGet.scheme`, httpGet.scheme, ['HTTP', 'HTTPS']));
    }
  }
  const tcpSocket = handler.tcpSocket as { port?: unknown } | undefined;
  if (tcpSocket !== undefined) checkPort(tcpSocket.port, `${path}.tcpSocket.port`);
  const exec = handler.exec as { command?: unknown } | undefined;
  if (exec !== undefined && (!Array.isArray(exec.command) || exec.command.length === 0)) out.push(requiredField(`${path}.exec.command`));
  return out;
}

function probeErrors(probe: Probe | undefined, path: string, container: Container, livenessLike: boolean): FieldError[] {
  if (probe === undefined) return [];
  const out = handlerErrors(probe as Record<string, unknown>, path, container, false);
  for (const field of ['periodSeconds', 'timeoutSeconds', 'successThreshold', 'failureThreshold'] as const) {
    const value = probe[field];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) out.push(invalidField(`${path}.${field}`, value, 'must be greater than or equal to 1'));
  }
  if (probe.initialDelaySeconds !== undefined && probe.initialDelaySeconds < 0) {
    out.push(invalidField(`${path}.initialDelaySeconds`, probe.initialDelaySeconds, 'must be greater than or equal to 0'));
  }
  if (livenessLike && probe.successThreshold !== undefined && probe.successThreshold !== 1) {
    out.push(invalidField(`${path}.successThreshold`, probe.successThreshold, 'must be 1'));
  }
  return out;
}

function containerErrors(container: Container, path: string, volumes: Set<string>): FieldError[] {
  const out: FieldError[] = [];
  if (!container.name) out.push(requiredField(`${path}.name`));
  else for (const problem of dns1123LabelErrors(container.name)) out.push(invalidField(`${path}.name`, container.name, problem));
  if (!container.image || container.image.trim() === '') out.push(requiredField(`${path}.image`));
  else if (container.image !== container.image.trim()) out.push(invalidField(`${path}.image`, container.image, 'must not have leading or trailing whitespace'));

  const portNames = new Set<string>();
  (container.ports ?? []).forEach((port, i) => {
    const at = `${path}.ports[${i}]`;
    if (port.containerPort === undefined) out.push(requiredField(`${at}.containerPort`));
    else if (!portNumberOk(port.containerPort)) out.push(invalidField(`${at}.containerPort`, port.containerPort, 'must be between 1 and 65535, inclusive'));
    if (port.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(port.protocol)) out.push(unsupportedField(`${at}.protocol`, port.protocol, ['SCTP', 'TCP', 'UDP']));
    if (port.name !== undefined) {
      for (const problem of portNameErrors(port.name)) out.push(invalidField(`${at}.name`, port.name, problem));
      if (portNames.has(port.name)) out.push(duplicateField(`${at}.name`, port.name));
      portNames.add(port.name);
    }
  });

  (container.env ?? []).forEach((env, i) => {
    const at = `${path}.env[${i}]`;
    if (!env.name) out.push(requiredField(`${at}.name`));
    else if (!ENV_NAME.test(env.name)) {
      out.push(invalidField(`${at}.name`, env.name, "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"));
    }
    const from = env.valueFrom;
    if (from !== undefined) {
      const sources = (['fieldRef', 'resourceFieldRef', 'configMapKeyRef', 'secretKeyRef', 'fileKeyRef'] as const).filter((k) => from[k as keyof typeof from] !== undefined);
      if (sources.length !== 1) out.push(invalidField(`${at}.valueFrom`, '', 'may not have more than one field specified at a time'));
      if (env.value !== undefined && env.value !== '') out.push(invalidField(`${at}.valueFrom`, '', 'may not be specified when `value` is not empty'));
      if (from.fieldRef !== undefined) {
        const fieldPath = from.fieldRef.fieldPath;
        const labelRef = /^metadata\.(labels|annotations)\['[^']+'\]$/.test(fieldPath ?? '');
        if (!fieldPath) out.push(requiredField(`${at}.valueFrom.fieldRef.fieldPath`));
        else if (!labelRef && !SUPPORTED_FIELD_REFS.includes(fieldPath)) {
          out.push(unsupportedField(`${at}.valueFrom.fieldRef.fieldPath`, fieldPath, SUPPORTED_FIELD_REFS));
        }
      }
      for (const ref of ['secretKeyRef', 'configMapKeyRef'] as const) {
        const keyRef = from[ref];
        if (keyRef === undefined) continue;
        if (!keyRef.name) out.push(requiredField(`${at}.valueFrom.${ref}.name`));
        if (!keyRef.key) out.push(requiredField(`${at}.valueFrom.${ref}.key`));
      }
    }
  });

  const mountPaths = new Set<string>();
  (container.volumeMounts ?? []).forEach((mount, i) => {
    const at = `${path}.volumeMounts[${i}]`;
    if (!mount.name) out.push(requiredField(`${at}.name`));
    else if (!volumes.has(mount.name)) out.push({ type: 'FieldValueNotFound', field: `${at}.name`, value: mount.name, detail: '' });
    if (!mount.mountPath) out.push(requiredField(`${at}.mountPath`));
    else if (mountPaths.has(mount.mountPath)) out.push(invalidField(`${at}.mountPath`, mount.mountPath, 'must be unique'));
    else mountPaths.add(mount.mountPath);
  });

  out.push(...probeErrors(container.readinessProbe, `${path}.readinessProbe`, container, false));
  out.push(...probeErrors(container.livenessProbe, `${path}.livenessProbe`, container, true));
  out.push(...probeErrors(container.startupProbe, `${path}.startupProbe`, container, true));
  out.push(...handlerErrors(container.lifecycle?.preStop as Record<string, unknown> | undefined, `${path}.lifecycle.preStop`, container, true));
  out.push(...handlerErrors(container.lifecycle?.postStart as Record<string, unknown> | undefined, `${path}.lifecycle.postStart`, container, true));
  return out;
}

const VOLUME_SOURCES = ['secret', 'configMap', 'emptyDir', 'projected', 'downwardAPI', 'hostPath', 'persistentVolumeClaim', 'ephemeral', 'csi', 'image'];

export function podSpecErrors(spec: PodSpec | undefined, path: string): FieldError[] {
  if (spec === undefined || !isPlainObject(spec)) return [requiredField(path)];
  const out: FieldError[] = [];
  const volumes = new Set<string>();
  (spec.volumes ?? []).forEach((volume, i) => {
    const at = `${path}.volumes[${i}]`;
    if (!volume.name) out.push(requiredField(`${at}.name`));
    else {
      for (const problem of dns1123LabelErrors(volume.name)) out.push(invalidField(`${at}.name`, volume.name, problem));
      if (volumes.has(volume.name)) out.push(duplicateField(`${at}.name`, volume.name));
      volumes.add(volume.name);
    }
    const sources = VOLUME_SOURCES.filter((s) => (volume as unknown as Record<string, unknown>)[s] !== undefined);
    if (sources.length === 0) out.push(requiredField(at, 'must specify a volume type'));
    if (sources.length > 1) out.push(forbiddenField(`${at}.${sources[1]}`, 'may not specify more than 1 volume type'));
    if (volume.secret !== undefined && !volume.secret.secretName) out.push(requiredField(`${at}.secret.secretName`));
    if (volume.configMap !== undefined && !volume.configMap.name) out.push(requiredField(`${at}.configMap.name`));
  });

  if (!Array.isArray(spec.containers) || spec.containers.length === 0) out.push(requiredField(`${path}.containers`));
  const names = new Set<string>();
  for (const [list, field] of [[spec.initContainers ?? [], 'initContainers'], [spec.containers ?? [], 'containers']] as const) {
    list.forEach((container, i) => {
      const at = `${path}.${field}[${i}]`;
      out.push(...containerErrors(container, at, volumes));
      if (container.name) {
        if (names.has(container.name)) out.push(duplicateField(`${at}.name`, container.name));
        names.add(container.name);
      }
    });
  }

  if (spec.restartPolicy !== undefined && !['Always', 'OnFailure', 'Never'].includes(spec.restartPolicy)) {
    out.push(unsupportedField(`${path}.restartPolicy`, spec.restartPolicy, ['Always', 'Never', 'OnFailure']));
  }
  if (spec.terminationGracePeriodSeconds !== undefined && spec.terminationGracePeriodSeconds < 0) {
    out.push(invalidField(`${path}.terminationGracePeriodSeconds`, spec.terminationGracePeriodSeconds, 'must be greater than or equal to 0'));
  }
  if (spec.serviceAccountName) {
    for (const problem of dns1123SubdomainErrors(spec.serviceAccountName)) out.push(invalidField(`${path}.serviceAccountName`, spec.serviceAccountName, problem));
  }
  for (const field of ['hostname', 'subdomain'] as const) {
    const value = spec[field];
    if (value) for (const problem of dns1123LabelErrors(value)) out.push(invalidField(`${path}.${field}`, value, problem));
  }
  return out;
}
