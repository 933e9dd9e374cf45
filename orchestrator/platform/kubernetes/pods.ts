/**
 * Pods as the orchestrator sees them (PodInfo). Pure: a pod object in, the facts out.
 */
import { isIPv6 } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodInfo, PodPhase } from '../platform.ts';
import { FLEET_LABELS, RELAY_PORTS } from '../../../api/fleet.ts';
import { MGMT_PORT, POD_NAME_LABEL } from './labels.ts';
import { relayContainer } from './sets.ts';

const PHASES: readonly PodPhase[] = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];

/**
 * A terminating pod (deletionTimestamp set) keeps its phase but is never ready and has no management address: its
 * relay is shutting down, and the local platform reports its deleted pods the same way.
 */
export function toPodInfo(pod: V1Pod): PodInfo {
  const name = pod.metadata?.name ?? '';
  const labels = { ...pod.metadata?.labels };
  const phase = PHASES.find((candidate) => candidate === pod.status?.phase) ?? 'Pending';
  const terminating = pod.metadata?.deletionTimestamp != null;
  const readyCondition = (pod.status?.conditions ?? []).find((condition) => condition.type === 'Ready');
  const ip = pod.status?.podIP;
  return {
    name,
    set: labels[FLEET_LABELS.set] ?? ownerSet(pod) ?? '',
    ordinal: ordinalOf(labels[POD_NAME_LABEL] ?? name),
    phase,
    ready: !terminating && readyCondition?.status === 'True',
    labels,
    mgmtUrl: terminating || phase !== 'Running' || ip === undefined || ip === '' ? null : `https://${isIPv6(ip) ? `[${ip}]` : ip}:${mgmtPortOf(pod)}`,
    image: relayContainer(pod.spec)?.image ?? '',
  };
}

/** A StatefulSet pod's ordinal is the number after the last "-" of its name; -1 when the name has none. */
export function ordinalOf(podName: string): number {
  const match = /-(\d+)$/.exec(podName);
  return match === null ? -1 : Number(match[1]);
}

/** The relay container's port named `mgmt`, else the fleet's default. */
export function mgmtPortOf(pod: V1Pod): number {
  const port = (relayContainer(pod.spec)?.ports ?? []).find((candidate) => candidate.name === MGMT_PORT);
  return port?.containerPort ?? RELAY_PORTS[MGMT_PORT].port;
}

function ownerSet(pod: V1Pod): string | undefined {
  return (pod.metadata?.ownerReferences ?? []).find((owner) => owner.kind === 'StatefulSet' && owner.controller === true)?.name;
}
