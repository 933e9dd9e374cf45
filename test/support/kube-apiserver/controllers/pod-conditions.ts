/** What controllers read from a pod's status, as k8s.io/kubernetes/pkg/api/v1/pod does. */
import type { KubeObject } from '../resources.ts';

interface PodStatus {
  phase?: string;
  podIP?: string;
  conditions?: { type: string; status: string }[];
}

export function podStatus(pod: KubeObject): PodStatus {
  return (pod.status as PodStatus | undefined) ?? {};
}

/** The Ready condition is True. */
export function isPodReady(pod: KubeObject): boolean {
  return podStatus(pod).conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

export function isTerminating(object: KubeObject): boolean {
  return object.metadata.deletionTimestamp !== undefined;
}

/** Succeeded or Failed: its containers will not run again. */
export function isTerminal(pod: KubeObject): boolean {
  const phase = podStatus(pod).phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

export function isRunningAndReady(pod: KubeObject): boolean {
  return podStatus(pod).phase === 'Running' && isPodReady(pod);
}

/** The ownerReference with controller: true, if any. */
export function controllerOf(object: KubeObject): { kind: string; name: string; uid: string } | undefined {
  return object.metadata.ownerReferences?.find((ref) => ref.controller === true);
}
