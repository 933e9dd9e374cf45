/**
 * A container's environment as the kubelet builds it: envFrom (Secrets and ConfigMaps, with prefixes), then env
 * entries in order (values with `$(VAR)` expanded from what precedes them; the downward API through fieldRef:
 * metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'], spec.nodeName,
 * spec.serviceAccountName, status.podIP(s), status.hostIP(s); secretKeyRef and configMapKeyRef, optional or not).
 * A missing Secret, ConfigMap or key makes the container wait in CreateContainerConfigError with the real message.
 *
 * There is no mount namespace: a path under a volume mount (`/etc/relay/tls/tls.crt`) is rewritten to the folder the
 * kubelet materialised the volume in, in env values and in command-line arguments (also as `--flag=/path`).
 */
import type { Container } from '../kinds/pod-spec.ts';
import type { KubeObject } from '../resources.ts';
import { expand } from './runtime.ts';

export class ContainerConfigError extends Error {}

export interface ObjectLookup {
  secret(name: string): KubeObject | undefined;
  configMap(name: string): KubeObject | undefined;
}

function quotedKey(path: string, field: 'labels' | 'annotations'): string | undefined {
  const match = path.match(new RegExp(`^metadata\\.${field}\\['([^']+)'\\]$`));
  return match?.[1];
}

export function fieldRefValue(pod: KubeObject, path: string): string {
  const spec = pod.spec as { nodeName?: string; serviceAccountName?: string };
  const status = (pod.status ?? {}) as { podIP?: string; podIPs?: { ip: string }[]; hostIP?: string; hostIPs?: { ip: string }[] };
  switch (path) {
    case 'metadata.name':
      return pod.metadata.name ?? '';
    case 'metadata.namespace':
      return pod.metadata.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata.uid ?? '';
    case 'spec.nodeName':
      return spec.nodeName ?? '';
    case 'spec.serviceAccountName':
      return spec.serviceAccountName ?? '';
    case 'status.podIP':
      return status.podIP ?? '';
    case 'status.podIPs':
      return (status.podIPs ?? []).map((i) => i.ip).join(',');
    case 'status.hostIP':
      return status.hostIP ?? '';
    case 'status.hostIPs':
      return (status.hostIPs ?? []).map((i) => i.ip).join(',');
    case 'metadata.labels':
    case 'metadata.annotations': {
      const map = (path === 'metadata.labels' ? pod.metadata.labels : pod.metadata.annotations) ?? {};
      return Object.keys(map)
        .sort()
        .map((k) => `${k}=${JSON.stringify(map[k])}`)
        .join('\n');
    }
  }
  const label = quotedKey(path, 'labels');
  if (label !== undefined) return pod.metadata.labels?.[label] ?? '';
  const annotation = quotedKey(path, 'annotations');
  if (annotation !== undefined) return pod.metadata.annotations?.[annotation] ?? '';
  throw new ContainerConfigError(`unsupported fieldPath: ${path}`);
}

/** The decoded value of a key of a Secret (base64 data) or ConfigMap (data, then binaryData). */
export function dataValue(object: KubeObject, key: string, secret: boolean): string | undefined {
  if (secret) {
    const value = (object.data as Record<string, string> | undefined)?.[key];
    return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
  }
  const text = (object.data as Record<string, string> | undefined)?.[key];
  if (text !== undefined) return text;
  const binary = (object.binaryData as Record<string, string> | undefined)?.[key];
  return binary === undefined ? undefined : Buffer.from(binary, 'base64').toString('utf8');
}

function keyRef(pod: KubeObject, lookup: ObjectLookup, kind: 'Secret' | 'ConfigMap', ref: { name?: string; key?: string; optional?: boolean }): string | undefined {
  const namespace = pod.metadata.namespace;
  const object = kind === 'Secret' ? lookup.secret(ref.name ?? '') : lookup.configMap(ref.name ?? '');
  if (object === undefined) {
    if (ref.optional === true) return undefined;
    throw new ContainerConfigError(`${kind === 'Secret' ? 'secret' : 'configmap'} "${ref.name}" not found`);
  }
  const value = dataValue(object, ref.key ?? '', kind === 'Secret');
  if (value === undefined) {
    if (ref.optional === true) return undefined;
    throw new ContainerConfigError(`couldn't find key ${ref.key} in ${kind} ${namespace}/${ref.name}`);
  }
  return value;
}

export function containerEnv(pod: KubeObject, container: Container, lookup: ObjectLookup, base: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = { ...base };
  for (const source of container.envFrom ?? []) {
    const prefix = source.prefix ?? '';
    const ref = source.secretRef ?? source.configMapRef;
    if (ref === undefined) continue;
    const secret = source.secretRef !== undefined;
    const object = secret ? lookup.secret(ref.name ?? '') : lookup.configMap(ref.name ?? '');
    if (object === undefined) {
      if (ref.optional === true) continue;
      throw new ContainerConfigError(`${secret ? 'secret' : 'configmap'} "${ref.name}" not found`);
    }
    const keys = [...Object.keys((object.data as object | undefined) ?? {}), ...(secret ? [] : Object.keys((object.binaryData as object | undefined) ?? {}))];
    for (const key of keys) env[`${prefix}${key}`] = dataValue(object, key, secret)!;
  }
  for (const entry of container.env ?? []) {
    const from = entry.valueFrom;
    if (from === undefined) {
      env[entry.name] = expand(entry.value ?? '', env);
      continue;
    }
    let value: string | undefined;
    if (from.fieldRef !== undefined) value = fieldRefValue(pod, from.fieldRef.fieldPath);
    else if (from.secretKeyRef !== undefined) value = keyRef(pod, lookup, 'Secret', from.secretKeyRef);
    else if (from.configMapKeyRef !== undefined) value = keyRef(pod, lookup, 'ConfigMap', from.configMapKeyRef);
    else throw new ContainerConfigError(`env ${entry.name}: only fieldRef, secretKeyRef and configMapKeyRef are supported by the stand-in kubelet`);
    if (value !== undefined) env[entry.name] = value;
  }
  return env;
}

export interface Mount {
  mountPath: string;
  hostPath: string;
}

/** Rewrites a container path under a mount to the host folder; longest mount path first. */
export function rewritePath(value: string, mounts: readonly Mount[]): string {
  const flag = value.match(/^(-{1,2}[^=\s]+=)(.*)$/s);
  if (flag !== null) return flag[1]! + rewritePath(flag[2]!, mounts);
  for (const mount of [...mounts].sort((a, b) => b.mountPath.length - a.mountPath.length)) {
    const root = mount.mountPath.replace(/\/+$/, '');
    if (value === root) return mount.hostPath;
    if (value.startsWith(`${root}/`)) return mount.hostPath + value.slice(root.length);
  }
  return value;
}
