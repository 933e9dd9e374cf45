/**
 * Names a fleet of relays on Kubernetes is built from (docs/design/contracts.md): the labels, ports and
 * Secrets the relay, the orchestrator, the platforms and manifests/ must agree on. The manifests test
 * checks manifests/base against these values.
 */

export const FLEET_LABELS = {
  /** `<name>` on pods and StatefulSets of both sets: the peers Service and the device Service select it. */
  fleet: 'relayctl.dev/fleet',
  /** `<name>-a` or `<name>-b`: each StatefulSet selects only its own pods. */
  set: 'relayctl.dev/set',
  /** `"true"` while the pod should receive new device flows: the device Service selects it. */
  serving: 'relayctl.dev/serving',
  /** `"true"` on the pod a double may restore from (the restore rule below). */
  restore: 'relayctl.dev/restore',
} as const;

export const LABEL_TRUE = 'true';

export const RELAY_PORTS = {
  dtls: { port: 5684, protocol: 'UDP' },
  tunnel: { port: 5685, protocol: 'UDP' },
  mgmt: { port: 8443, protocol: 'TCP' },
  health: { port: 8080, protocol: 'TCP' },
} as const;

export type RelayPortName = keyof typeof RELAY_PORTS;

/** Resource names of a fleet called `name` (its StatefulSets are `<name>-a` and `<name>-b`). */
export function fleetNames(name: string) {
  return {
    sets: { a: `${name}-a`, b: `${name}-b` },
    peersService: `${name}-peers`,
    deviceService: name,
    lease: `relayctl-${name}`,
    secrets: { dtls: `${name}-dtls`, relayTls: `${name}-relay-tls`, relayctlTls: `${name}-relayctl-tls` },
  } as const;
}

/** The container of a relay pod that runs relayd; its ports are named like RELAY_PORTS. */
export const RELAY_CONTAINER = 'relay';

/** Where the relay Secrets are mounted in a relay container. */
export const RELAY_SECRET_MOUNTS = { dtls: '/etc/relay/dtls', tls: '/etc/relay/tls' } as const;

/** A set member's pod name, `<name>-<a|b>-<ordinal>`, taken apart; null when the name has another form. */
export function parseSetPodName(pod: string): { fleet: string; set: 'a' | 'b'; ordinal: number } | null {
  const match = /^(.+)-([ab])-(0|[1-9]\d{0,8})$/.exec(pod);
  if (match === null) return null;
  return { fleet: match[1]!, set: match[2] as 'a' | 'b', ordinal: Number(match[3]) };
}

/** The pod with the same ordinal in the other set (relay-a-2 <-> relay-b-2); null when `pod` is no set member. */
export function doublePodName(pod: string): string | null {
  const parts = parseSetPodName(pod);
  if (parts === null) return null;
  return `${parts.fleet}-${parts.set === 'a' ? 'b' : 'a'}-${parts.ordinal}`;
}

export function carriesRestoreMark(labels: Readonly<Record<string, string>>): boolean {
  return labels[FLEET_LABELS.restore] === LABEL_TRUE;
}

/**
 * The restore rule: `target` may restore from its double `source` only when the double carries the restore
 * label and `target` does not; that keeps a new pod's sessions from ever going back to an old one unless a
 * rollback moved the label. Returns why not, or null when it may.
 */
export function restoreForbiddenBecause(
  target: { name: string; labels: Readonly<Record<string, string>> },
  source: { name: string; labels: Readonly<Record<string, string>> },
): string | null {
  if (carriesRestoreMark(target.labels)) return `${target.name} carries ${FLEET_LABELS.restore}=${LABEL_TRUE}`;
  if (!carriesRestoreMark(source.labels)) return `${source.name} does not carry ${FLEET_LABELS.restore}=${LABEL_TRUE}`;
  return null;
}
