/**
 * A pod's volumes, materialised in a folder of its own (`<pod dir>/volumes/<name>`): Secrets and ConfigMaps (all
 * keys or the listed items, file modes, optional), projected volumes (Secrets, ConfigMaps, downward API and the
 * service-account token the kubelet requests), downward API volumes, emptyDir and hostPath. Files are replaced
 * atomically (write, then rename), and rewritten whenever the Secrets and ConfigMaps they come from change (the real
 * kubelet refreshes within its sync period; here at once). A missing Secret or ConfigMap is a mount failure with the
 * real message; the kubelet keeps the pod in ContainerCreating and retries.
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { Container, PodSpec } from '../kinds/pod-spec.ts';
import type { KubeObject } from '../resources.ts';
import { dataValue, fieldRefValue, type Mount, type ObjectLookup } from './env.ts';

export class MountError extends Error {
  readonly volume: string;

  constructor(volume: string, message: string) {
    super(`MountVolume.SetUp failed for volume "${volume}" : ${message}`);
    this.volume = volume;
  }
}

interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

interface FileOut {
  path: string;
  content: Buffer;
  mode: number;
}

export interface VolumeContext {
  lookup: ObjectLookup;
  /** A token for the pod's service account (projected serviceAccountToken). */
  token(): string;
}

function keyFiles(volume: string, kind: 'Secret' | 'ConfigMap', object: KubeObject | undefined, name: string, items: readonly KeyToPath[] | undefined, optional: boolean, mode: number, namespace: string): FileOut[] {
  if (object === undefined) {
    if (optional) return [];
    throw new MountError(volume, `${kind === 'Secret' ? 'secret' : 'configmap'} "${name}" not found`);
  }
  const secret = kind === 'Secret';
  const raw = (key: string): Buffer | undefined => {
    if (secret) {
      const value = (object.data as Record<string, string> | undefined)?.[key];
      return value === undefined ? undefined : Buffer.from(value, 'base64');
    }
    const text = dataValue(object, key, false);
    const binary = (object.binaryData as Record<string, string> | undefined)?.[key];
    return binary !== undefined ? Buffer.from(binary, 'base64') : text === undefined ? undefined : Buffer.from(text, 'utf8');
  };
  const keys: readonly KeyToPath[] = items ?? [...Object.keys((object.data as object | undefined) ?? {}), ...(secret ? [] : Object.keys((object.binaryData as object | undefined) ?? {}))].map((key) => ({ key, path: key }));
  const out: FileOut[] = [];
  for (const item of keys) {
    const content = raw(item.key);
    if (content === undefined) {
      if (optional) continue;
      throw new MountError(volume, `couldn't find key ${item.key} in ${kind} ${namespace}/${name}`);
    }
    out.push({ path: item.path, content, mode: item.mode ?? mode });
  }
  return out;
}

function downwardFiles(pod: KubeObject, items: readonly { path: string; fieldRef?: { fieldPath: string }; mode?: number }[], mode: number): FileOut[] {
  return items.filter((item) => item.fieldRef !== undefined).map((item) => ({ path: item.path, content: Buffer.from(fieldRefValue(pod, item.fieldRef!.fieldPath)), mode: item.mode ?? mode }));
}

function volumeFiles(pod: KubeObject, volume: IVolume, context: VolumeContext): FileOut[] {
  const namespace = pod.metadata.namespace!;
  if (volume.secret !== undefined) {
    const name = volume.secret.secretName ?? '';
    return keyFiles(volume.name, 'Secret', context.lookup.secret(name), name, volume.secret.items, volume.secret.optional === true, volume.secret.defaultMode ?? 0o644, namespace);
  }
  if (volume.configMap !== undefined) {
    const name = volume.configMap.name ?? '';
    return keyFiles(volume.name, 'ConfigMap', context.lookup.configMap(name), name, volume.configMap.items, volume.configMap.optional === true, volume.configMap.defaultMode ?? 0o644, namespace);
  }
  if (volume.downwardAPI !== undefined) return downwardFiles(pod, volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? 0o644);
  if (volume.projected !== undefined) {
    const mode = volume.projected.defaultMode ?? 0o644;
    const out: FileOut[] = [];
    for (const source of volume.projected.sources ?? []) {
      if (source.secret !== undefined) {
        const name = source.secret.name ?? '';
        out.push(...keyFiles(volume.name, 'Secret', context.lookup.secret(name), name, source.secret.items, source.secret.optional === true, mode, namespace));
      } else if (source.configMap !== undefined) {
        const name = source.configMap.name ?? '';
        out.push(...keyFiles(volume.name, 'ConfigMap', context.lookup.configMap(name), name, source.configMap.items, source.configMap.optional === true, mode, namespace));
      } else if (source.downwardAPI !== undefined) out.push(...downwardFiles(pod, source.downwardAPI.items ?? [], mode));
      else if (source.serviceAccountToken !== undefined) out.push({ path: source.serviceAccountToken.path, content: Buffer.from(context.token()), mode: 0o600 });
      else throw new MountError(volume.name, 'this projected volume source is not supported by the stand-in kubelet');
    }
    return out;
  }
  throw new MountError(volume.name, 'this volume type is not supported by the stand-in kubelet');
}

export class PodVolumes {
  private readonly root: string;
  private readonly hostPaths = new Map<string, string>();
  private written = new Map<string, Buffer>();

  constructor(podDir: string) {
    this.root = path.join(podDir, 'volumes');
    mkdirSync(this.root, { recursive: true });
  }

  /** Writes every volume's files (again); throws the first MountError. */
  materialise(pod: KubeObject, context: VolumeContext): void {
    const written = new Map<string, Buffer>();
    for (const volume of (pod.spec as PodSpec).volumes ?? []) {
      if (volume.hostPath !== undefined) {
        this.hostPaths.set(volume.name, volume.hostPath.path);
        continue;
      }
      const dir = path.join(this.root, volume.name);
      this.hostPaths.set(volume.name, dir);
      mkdirSync(dir, { recursive: true });
      if (volume.emptyDir !== undefined) continue;
      for (const file of volumeFiles(pod, volume, context)) {
        const target = path.join(dir, file.path);
        if (!target.startsWith(dir + path.sep)) throw new MountError(volume.name, `item path ${JSON.stringify(file.path)} leaves the volume`);
        written.set(target, file.content);
        if (this.written.get(target)?.equals(file.content)) continue;
        mkdirSync(path.dirname(target), { recursive: true });
        const temp = `${target}.${process.pid}.tmp`;
        writeFileSync(temp, file.content, { mode: 0o600 });
        chmodSync(temp, file.mode);
        renameSync(temp, target);
      }
    }
    this.written = written;
  }

  /** Where each of a container's mount paths is on this machine. */
  mounts(container: Container): Mount[] {
    return (container.volumeMounts ?? []).flatMap((mount) => {
      const hostPath = this.hostPaths.get(mount.name);
      if (hostPath === undefined) return [];
      return [{ mountPath: mount.mountPath, hostPath: mount.subPath ? path.join(hostPath, mount.subPath) : hostPath }];
    });
  }
}
