import type { PodInfo, SetInfo } from '../platform/platform.ts';
import type { RelayObservation, StartFacts } from './context.ts';
import { otherSet } from './context.ts';
import { isTerminal, type LocatedProgress, type ProgressRecord } from './progress.ts';
import type { Settings } from './spec.ts';
import { Reason } from './status.ts';

/**
 * How a run begins, decided from the facts gathered after taking the lock (so nobody changes them meanwhile).
 * Pure functions: each refusal names its rule.
 */
export type StartPlan =
  | { kind: 'refuse'; reason: Reason; message: string }
  /** The same update already completed; a rerun after a late kill reports success and touches nothing. */
  | { kind: 'already-done'; record: ProgressRecord }
  /** A new update from `from`; still subject to the pod and relay checks of preflightFresh. */
  | { kind: 'fresh'; from: SetInfo; to: string }
  /** Continue the recorded update in its recorded direction. */
  | { kind: 'resume'; located: LocatedProgress; set: SetInfo }
  /** Turn a forward update into a rollback, as asked by the abort or rollback command. */
  | { kind: 'start-rollback'; located: LocatedProgress; set: SetInfo; requestedBy: 'abort' | 'rollback' };

function holderOf(facts: StartFacts, located: LocatedProgress): SetInfo | null {
  return [facts.a, facts.b].find((set) => set?.name === located.set) ?? null;
}

function describe(record: ProgressRecord): string {
  return `update ${record.id} (${record.from} -> ${record.to}, image ${record.image}, ${record.direction} at step ${record.step})`;
}

export function planUpdate(settings: Settings, facts: StartFacts): StartPlan {
  const located = facts.record;
  const image = settings.image ?? '';
  if (located !== null && !isTerminal(located.record)) {
    const record = located.record;
    const set = holderOf(facts, located);
    if (set === null) return { kind: 'refuse', reason: Reason.RecordConflict, message: `record set ${located.set} vanished` };
    if (record.image !== image) {
      return {
        kind: 'refuse',
        reason: Reason.UpdateInProgress,
        message: `${describe(record)} is in progress; run it again with image ${record.image} to continue, or abort/rollback it`,
      };
    }
    // A rollback this command started (after a failure) is finished by running it again; one the user asked for
    // is finished by the rollback command, not turned back into an update.
    if (record.direction === 'rollback' && record.rollbackRequestedBy !== 'failure') {
      return {
        kind: 'refuse',
        reason: Reason.RollbackInProgress,
        message: `${describe(record)} was asked to ${record.rollbackRequestedBy}; run rollback to finish it`,
      };
    }
    return { kind: 'resume', located, set };
  }

  if (facts.a !== null && facts.b !== null) {
    return {
      kind: 'refuse',
      reason: Reason.BothSetsExist,
      message: `both ${facts.a.name} and ${facts.b.name} exist and no update is in progress; delete the stray one`,
    };
  }
  const active = facts.a ?? facts.b;
  if (active === null) {
    return { kind: 'refuse', reason: Reason.NoActiveSet, message: `neither ${settings.name}-a nor ${settings.name}-b exists` };
  }
  const last = located?.record ?? null;
  if (!settings.force && active.image === image) {
    if (last !== null && last.phase === 'Completed' && last.to === active.name && last.image === image) {
      return { kind: 'already-done', record: last };
    }
    return { kind: 'refuse', reason: Reason.ImageUnchanged, message: `${active.name} already runs ${image} (use force to restart it anyway)` };
  }
  return { kind: 'fresh', from: active, to: otherSet(settings.name, active.name) };
}

/** Preflight for a new update: the active set is whole, every pod ready, every relay serving. */
export function preflightFresh(
  from: SetInfo,
  pods: readonly PodInfo[],
  relays: ReadonlyMap<string, RelayObservation | null>,
): { reason: Reason; message: string } | null {
  const notReady: string[] = [];
  for (let ordinal = 0; ordinal < from.replicas; ordinal++) {
    const pod = pods.find((candidate) => candidate.ordinal === ordinal);
    if (pod === undefined) notReady.push(`${from.name}-${ordinal} missing`);
    else if (pod.phase !== 'Running' || !pod.ready) notReady.push(`${pod.name} ${pod.phase}${pod.ready ? '' : ', not ready'}`);
  }
  if (notReady.length > 0) {
    return { reason: Reason.PodsNotReady, message: `${from.name} is not fully ready: ${notReady.join('; ')}` };
  }
  const notServing: string[] = [];
  for (const pod of pods) {
    if (pod.ordinal >= from.replicas) continue;
    const relay = relays.get(pod.name) ?? null;
    if (relay === null || !relay.reachable) notServing.push(`${pod.name} unreachable${relay && !relay.reachable ? ` (${relay.error.message})` : ''}`);
    else if (relay.status.state !== 'serving') notServing.push(`${pod.name} is ${relay.status.state}`);
  }
  if (notServing.length > 0) {
    return { reason: Reason.RelaysNotServing, message: `relays not serving: ${notServing.join('; ')}` };
  }
  return null;
}

/**
 * Abort: only while no sessions moved (it just deletes the new set and unlabels), so it can never strand a
 * session. Rollback: any time before the delete step, handing sessions back as needed.
 */
export function planControl(command: 'abort' | 'rollback', facts: StartFacts): StartPlan {
  const located = facts.record;
  if (located === null || isTerminal(located.record)) {
    return { kind: 'refuse', reason: Reason.NoUpdateInProgress, message: 'no update in progress' };
  }
  const record = located.record;
  const set = holderOf(facts, located);
  if (set === null) return { kind: 'refuse', reason: Reason.RecordConflict, message: `record set ${located.set} vanished` };
  if (record.direction === 'rollback') return { kind: 'resume', located, set };
  if (record.step === 'delete' || record.step === 'done') {
    return {
      kind: 'refuse',
      reason: Reason.PastPointOfNoReturn,
      message: `${describe(record)} is deleting the old set; run the update again to finish it`,
    };
  }
  const moved = Object.keys(record.handedOver);
  if (command === 'abort' && moved.length > 0) {
    return {
      kind: 'refuse',
      reason: Reason.HandoverStarted,
      message: `${describe(record)} has handed over ordinals ${moved.join(', ')}; use rollback to hand their sessions back`,
    };
  }
  return { kind: 'start-rollback', located, set, requestedBy: command };
}
