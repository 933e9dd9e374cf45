import { RESTORE_LABEL, RESTORE_LABEL_VALUE, carriesRestoreLabel, type PodInfo, type RelayState, type RelayStatus } from '../platform/platform.ts';
import type { OrdinalFacts, RelayObservation } from './context.ts';
import type { Direction } from './progress.ts';
import { Reason } from './status.ts';

/**
 * Pure decisions for one ordinal: where its sessions are, and what to do next to move them in a direction.
 * Forward moves them old -> new, rollback new -> old; the logic is the same protocol with the roles swapped.
 */

/**
 * Where an ordinal's sessions are, as far as the relays tell:
 * - old / new: that side's relay serves them and the other does not.
 * - in-transit: a restore is running (one side restoring or handing over); it will settle by itself.
 * - both: both relays claim to serve (a target that started fresh, or a moment in a commit).
 * - none: neither serves and nothing is in flight: stranded until a relay recovers.
 * - unknown: a relay that might hold them cannot be asked.
 */
export type Placement = 'old' | 'new' | 'in-transit' | 'both' | 'none' | 'unknown';

const TRANSIT_STATES: readonly RelayState[] = ['restoring', 'handing-over'];

function statusOf(relay: RelayObservation | null): RelayStatus | null {
  return relay !== null && relay.reachable ? relay.status : null;
}

function unreachable(pod: PodInfo | null, relay: RelayObservation | null): boolean {
  // A running pod whose relay we cannot ask might hold sessions; a pod that is not running cannot.
  return pod !== null && pod.phase === 'Running' && (relay === null || !relay.reachable);
}

export function placementOf(facts: OrdinalFacts): Placement {
  const oldStatus = statusOf(facts.oldRelay);
  const newStatus = statusOf(facts.newRelay);
  const inTransit = (status: RelayStatus | null): boolean => status !== null && TRANSIT_STATES.includes(status.state);
  if (inTransit(oldStatus) || inTransit(newStatus)) return 'in-transit';
  const oldServes = oldStatus?.state === 'serving';
  const newServes = newStatus?.state === 'serving';
  if (oldServes && newServes) {
    // A relay that restarted serves nothing yet; the other one holds the ordinal's sessions.
    if (oldStatus?.sessions === 0 && (newStatus?.sessions ?? 0) > 0) return 'new';
    if (newStatus?.sessions === 0 && (oldStatus?.sessions ?? 0) > 0) return 'old';
    return 'both';
  }
  if (oldServes) return 'old';
  if (newServes) return 'new';
  if (unreachable(facts.oldPod, facts.oldRelay) || unreachable(facts.newPod, facts.newRelay)) return 'unknown';
  return 'none';
}

/** Which deadline a wait counts against: starting a pod (image pulls) or a transfer settling. */
export type WaitKind = 'podStart' | 'readiness';

export interface LabelPatch {
  pod: string;
  labels: Record<string, string | null>;
}

export type OrdinalDecision =
  | { kind: 'done' }
  | { kind: 'wait'; wait: WaitKind; reason: string; message: string }
  /** Apply these label patches in this order, then decide again. */
  | { kind: 'relabel'; patches: LabelPatch[]; reason: string; message: string }
  | { kind: 'restore'; target: PodInfo; source: PodInfo }
  | { kind: 'blocked'; reason: string; message: string };

export interface DecideOptions {
  /** Restore calls still allowed for this ordinal in this run. */
  attemptsLeft: number;
}

/** The pod sessions go to and the pod they come from, in a direction. */
function roles(direction: Direction, facts: OrdinalFacts): { target: PodInfo | null; source: PodInfo | null; targetRelay: RelayObservation | null } {
  return direction === 'forward'
    ? { target: facts.newPod, source: facts.oldPod, targetRelay: facts.newRelay }
    : { target: facts.oldPod, source: facts.newPod, targetRelay: facts.oldRelay };
}

/**
 * Whether the relay on a target pod may be told to restore now (the relay's own rule, relay/handover/successor.ts):
 * a new relay waits in awaiting-restore, an old one that handed over is forwarding; an empty serving relay (one
 * that restarted) may restore too; starting, handing-over and stopping may not.
 */
export function restorable(status: RelayStatus): boolean {
  if (status.state === 'serving') return status.sessions === 0;
  return status.state === 'awaiting-restore' || status.state === 'forwarding';
}

export function decideOrdinal(direction: Direction, facts: OrdinalFacts, options: DecideOptions): OrdinalDecision {
  const placement = placementOf(facts);
  const { ordinal } = facts;
  const { target, source, targetRelay } = roles(direction, facts);
  const arrived = direction === 'forward' ? 'new' : 'old';

  if (placement === arrived) {
    // Sessions are where we want them; done once the platform routes accordingly.
    if (target !== null && target.ready && !(source?.ready ?? false)) return { kind: 'done' };
    return {
      kind: 'wait',
      wait: 'readiness',
      reason: Reason.ReadinessPending,
      message: `ordinal ${ordinal}: waiting for ${target?.name ?? 'target'} ready and ${source?.name ?? 'source'} not ready`,
    };
  }
  if (placement === 'in-transit') {
    return { kind: 'wait', wait: 'readiness', reason: Reason.RestoreInProgress, message: `ordinal ${ordinal}: a restore is in flight` };
  }
  if (placement === 'unknown') {
    return {
      kind: 'wait',
      wait: target === null || target.phase !== 'Running' ? 'podStart' : 'readiness',
      reason: Reason.RelayUnreachable,
      message: `ordinal ${ordinal}: cannot read a relay that may hold the sessions`,
    };
  }
  if (placement === 'both' || placement === 'none') {
    return {
      kind: 'wait',
      wait: 'readiness',
      reason: Reason.SessionsUnplaced,
      message: `ordinal ${ordinal}: ${placement === 'both' ? 'both relays serve' : 'no relay serves'} its sessions`,
    };
  }

  // The sessions are still on the side they have to leave.
  if (source === null) {
    return { kind: 'blocked', reason: Reason.OldPodMissing, message: `ordinal ${ordinal}: the pod serving its sessions vanished` };
  }
  if (target === null) {
    if (direction === 'rollback') {
      return { kind: 'blocked', reason: Reason.OldPodMissing, message: `ordinal ${ordinal}: no old pod to hand the sessions back to` };
    }
    return { kind: 'wait', wait: 'podStart', reason: Reason.PodNotRunning, message: `ordinal ${ordinal}: new pod not created yet` };
  }
  if (target.phase !== 'Running' || target.mgmtUrl === null) {
    return { kind: 'wait', wait: 'podStart', reason: Reason.PodNotRunning, message: `${target.name} is ${target.phase}, not running yet` };
  }
  if (targetRelay === null || !targetRelay.reachable) {
    return { kind: 'wait', wait: 'podStart', reason: Reason.RelayUnreachable, message: `relay on ${target.name} does not answer yet` };
  }
  if (!restorable(targetRelay.status)) {
    return {
      kind: 'wait',
      wait: 'podStart',
      reason: Reason.TargetNotAwaitingRestore,
      message: `relay on ${target.name} is ${targetRelay.status.state}, not ready to restore`,
    };
  }

  const patches = labelPatches(target, source);
  if (patches.length > 0) {
    return {
      kind: 'relabel',
      patches,
      reason: direction === 'forward' ? Reason.DoubleNotMarked : Reason.TargetMarked,
      message:
        direction === 'forward'
          ? `ordinal ${ordinal}: ${source.name} must carry ${RESTORE_LABEL}=${RESTORE_LABEL_VALUE} and ${target.name} must not`
          : `ordinal ${ordinal}: swapping ${RESTORE_LABEL} so ${target.name} may restore from ${source.name}`,
    };
  }
  if (options.attemptsLeft <= 0) {
    return { kind: 'blocked', reason: Reason.RestoreAttemptsExhausted, message: `ordinal ${ordinal}: no restore attempts left` };
  }
  return { kind: 'restore', target, source };
}

/**
 * The label rule: the source carries restore=true, the target does not. The source gains it before the target
 * loses it, so during a rollback's swap both pods carry it for a moment (nobody may restore) and never neither.
 * Forward and rollback share this because the roles are already swapped.
 */
export function labelPatches(target: PodInfo, source: PodInfo): LabelPatch[] {
  const patches: LabelPatch[] = [];
  if (!carriesRestoreLabel(source)) patches.push({ pod: source.name, labels: { [RESTORE_LABEL]: RESTORE_LABEL_VALUE } });
  if (RESTORE_LABEL in target.labels) patches.push({ pod: target.name, labels: { [RESTORE_LABEL]: null } });
  return patches;
}
