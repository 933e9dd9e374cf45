/**
 * StatefulSets as the platform's sets: what a set looks like to the orchestrator (SetInfo), and the new set an
 * update creates from the active one. Pure: objects in, objects out.
 */
import type { V1Container, V1PodSpec, V1StatefulSet } from '@kubernetes/client-node';
import { RESTORE_LABEL, type CreateSetSpec, type SetInfo } from '../platform.ts';
import { KubeErrorCode, KubernetesPlatformError } from './kube-errors.ts';
import { FLEET_LABELS, RELAY_CONTAINER } from '../../../api/fleet.ts';
import { AWAIT_RESTORE_ENV, MGMT_PORT, PREVIOUS_IMAGE_ANNOTATION } from './labels.ts';

/**
 * The container running relayd: the one named `relay`, else the one exposing the `mgmt` port, else the only one.
 * Null when none of these tells.
 */
export function relayContainer(spec: Pick<V1PodSpec, 'containers'> | undefined): V1Container | null {
  const containers = spec?.containers ?? [];
  return (
    containers.find((container) => container.name === RELAY_CONTAINER) ??
    containers.find((container) => (container.ports ?? []).some((port) => port.name === MGMT_PORT)) ??
    (containers.length === 1 ? (containers[0] ?? null) : null)
  );
}

export function toSetInfo(set: V1StatefulSet): SetInfo {
  return {
    name: set.metadata?.name ?? '',
    replicas: set.spec?.replicas ?? 1,
    image: relayContainer(set.spec?.template.spec)?.image ?? '',
    labels: { ...set.metadata?.labels },
    annotations: { ...set.metadata?.annotations },
    resourceVersion: set.metadata?.resourceVersion ?? '',
    createdAt: timestampOf(set.metadata?.creationTimestamp),
  };
}

/** creationTimestamp as client-node hands it over: a Date from typed calls, a string from watch events. */
export function timestampOf(value: Date | string | undefined): number {
  if (value === undefined) return 0;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? 0 : ms;
}

/**
 * The StatefulSet `spec.name` an update creates from the active set: the same pod template (volumes, probes,
 * resources, service account...), serviceName and claims, with
 * - the relay container's image set to `spec.image`, and RELAY_AWAIT_RESTORE=true so its relays wait for their
 *   double's sessions instead of serving empty;
 * - its own `relayctl.dev/set` label in the selector and on the pods, so the two controllers never compete for pods,
 *   and the shared `relayctl.dev/fleet` label the Services select;
 * - podManagementPolicy Parallel (all new pods start at once; the orchestrator paces the handovers);
 * - the annotations the orchestrator asked for, plus the image it replaces (rollback after a completed update);
 * - nothing the API server owns (status, resourceVersion, uid, creationTimestamp, generation, managedFields).
 */
export function newSetObject(active: V1StatefulSet, spec: CreateSetSpec, fleet: string, namespace: string): V1StatefulSet {
  const activeName = active.metadata?.name ?? '(unnamed)';
  const template = active.spec?.template;
  if (active.spec === undefined || template === undefined) throw templateError(`StatefulSet ${activeName} has no spec.template to copy`);
  const matchLabels = active.spec.selector.matchLabels ?? {};
  if (matchLabels[FLEET_LABELS.set] !== activeName) {
    throw templateError(
      `the selector of StatefulSet ${activeName} must include ${FLEET_LABELS.set}: ${activeName} (it selects ${JSON.stringify(active.spec.selector)}); ` +
        'otherwise its controller would adopt the new set\'s pods. Add the label to its selector and pod template (manifests/ does)',
    );
  }
  if ((active.spec.selector.matchExpressions ?? []).some((expression) => expression.key === FLEET_LABELS.set)) {
    throw templateError(`the selector of StatefulSet ${activeName} has a matchExpression on ${FLEET_LABELS.set}; use matchLabels ${FLEET_LABELS.set}: ${activeName}`);
  }

  const podSpec: V1PodSpec = structuredClone(template.spec ?? { containers: [] });
  const relay = relayContainer(podSpec);
  if (relay === null) {
    const names = podSpec.containers.map((container) => container.name).join(', ') || 'none';
    throw templateError(`StatefulSet ${activeName}: no container runs relayd (containers: ${names}); name it "${RELAY_CONTAINER}"`);
  }
  relay.image = spec.image;
  relay.env = [...(relay.env ?? []).filter((variable) => variable.name !== AWAIT_RESTORE_ENV), { name: AWAIT_RESTORE_ENV, value: 'true' }];

  const podLabels: Record<string, string> = { ...template.metadata?.labels, [FLEET_LABELS.fleet]: fleet, [FLEET_LABELS.set]: spec.name };
  // A template carrying the restore label would make every new pod refuse to restore (the label rule).
  delete podLabels[RESTORE_LABEL];
  const podAnnotations = template.metadata?.annotations;

  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: {
      name: spec.name,
      namespace,
      labels: { ...active.metadata?.labels, [FLEET_LABELS.fleet]: fleet, [FLEET_LABELS.set]: spec.name },
      annotations: { ...spec.annotations, [PREVIOUS_IMAGE_ANNOTATION]: relayContainer(template.spec)?.image ?? '' },
    },
    spec: {
      ...definedFields({
        minReadySeconds: active.spec.minReadySeconds,
        ordinals: active.spec.ordinals,
        persistentVolumeClaimRetentionPolicy: active.spec.persistentVolumeClaimRetentionPolicy,
        revisionHistoryLimit: active.spec.revisionHistoryLimit,
        updateStrategy: active.spec.updateStrategy,
        volumeClaimTemplates: active.spec.volumeClaimTemplates?.map((claim) => ({
          apiVersion: claim.apiVersion,
          kind: claim.kind,
          metadata: { name: claim.metadata?.name, labels: claim.metadata?.labels, annotations: claim.metadata?.annotations },
          spec: structuredClone(claim.spec),
        })),
      }),
      replicas: spec.replicas,
      serviceName: active.spec.serviceName,
      podManagementPolicy: 'Parallel',
      selector: {
        matchLabels: { ...matchLabels, [FLEET_LABELS.set]: spec.name },
        ...(active.spec.selector.matchExpressions === undefined ? {} : { matchExpressions: structuredClone(active.spec.selector.matchExpressions) }),
      },
      template: {
        metadata: { labels: podLabels, ...(podAnnotations === undefined ? {} : { annotations: { ...podAnnotations } }) },
        spec: podSpec,
      },
    },
  };
}

function definedFields<T extends Record<string, unknown>>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<T>;
}

function templateError(message: string): KubernetesPlatformError {
  return new KubernetesPlatformError(KubeErrorCode.Template, `createSet: ${message}`);
}
