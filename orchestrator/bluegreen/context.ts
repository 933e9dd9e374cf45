import { summarizeError, type ErrorSummary } from '../errors.ts';
import type { PodInfo, RelayStatus, SetInfo } from '../platform/platform.ts';
import { parseProgress, pickProgress, type LocatedProgress } from './progress.ts';
import type { Run } from './runtime.ts';

/**
 * Observed state, gathered before any decision (Argo Rollouts' rolloutContext): decisions are pure functions of
 * these facts, so they can be tested without a platform and repeated safely after a restart.
 */

/** The two sets of base name `name`. */
export function setNames(name: string): { a: string; b: string } {
  return { a: `${name}-a`, b: `${name}-b` };
}

export function otherSet(name: string, set: string): string {
  const { a, b } = setNames(name);
  return set === a ? b : a;
}

/** What we could learn of a relay: its status, or why we could not ask. */
export type RelayObservation =
  | { reachable: true; status: RelayStatus }
  | { reachable: false; error: ErrorSummary };

export interface SetView {
  name: string;
  /** Null when the set does not exist (not created yet, or deleted). */
  set: SetInfo | null;
  /** Sorted by ordinal; empty when the set does not exist. May lag behind the set (pods terminate slowly). */
  pods: readonly PodInfo[];
}

export interface StartFacts {
  a: SetInfo | null;
  b: SetInfo | null;
  /** The record speaking for the latest update (see pickProgress); null when neither set carries one. */
  record: LocatedProgress | null;
}

/** What one ordinal looks like on both sides. Relay observations are null when the pod cannot have one yet. */
export interface OrdinalFacts {
  ordinal: number;
  oldPod: PodInfo | null;
  newPod: PodInfo | null;
  oldRelay: RelayObservation | null;
  newRelay: RelayObservation | null;
}

export async function gatherStart(run: Run): Promise<StartFacts> {
  const names = setNames(run.settings.name);
  const a = await getSet(run, names.a);
  const b = await getSet(run, names.b);
  const copies: LocatedProgress[] = [];
  for (const set of [a, b]) {
    if (set === null) continue;
    const record = parseProgress(set.name, set.annotations);
    if (record !== null) copies.push({ record, set: set.name });
  }
  return { a, b, record: pickProgress(copies) };
}

export function getSet(run: Run, name: string): Promise<SetInfo | null> {
  return run.call(`getSet ${name}`, () => run.platform.getSet(name), { retry: true });
}

export async function gatherSet(run: Run, name: string): Promise<SetView> {
  const set = await getSet(run, name);
  const pods = set === null ? [] : await listPods(run, name);
  return { name, set, pods };
}

export async function listPods(run: Run, set: string): Promise<PodInfo[]> {
  const pods = await run.call(`listPods ${set}`, () => run.platform.listPods(set), { retry: true });
  return [...pods].sort((x, y) => x.ordinal - y.ordinal);
}

/**
 * Asks a relay for its status. Not reaching it is a fact, not an error: the caller decides whether to wait.
 * Pods without an address (not running yet) are not asked at all.
 */
export async function observeRelay(run: Run, pod: PodInfo | null, options: { retry?: boolean } = {}): Promise<RelayObservation | null> {
  if (pod === null) return null;
  if (pod.phase !== 'Running' || pod.mgmtUrl === null) {
    run.notePod(pod, null);
    return null;
  }
  let observation: RelayObservation;
  try {
    // Wait loops read again next poll anyway; one-shot readers (preflight) ask for retries.
    const status = await run.call(`relay.status ${pod.name}`, () => run.platform.relay.status(pod), { retry: options.retry ?? false });
    observation = { reachable: true, status };
  } catch (error) {
    run.throwIfStopped();
    run.checkDeadline();
    observation = { reachable: false, error: summarizeError(error) };
  }
  run.notePod(pod, observation.reachable ? observation.status : null);
  return observation;
}

export async function observeRelays(
  run: Run,
  pods: readonly PodInfo[],
  options: { retry?: boolean } = {},
): Promise<Map<string, RelayObservation | null>> {
  const observations = new Map<string, RelayObservation | null>();
  for (const pod of pods) observations.set(pod.name, await observeRelay(run, pod, options));
  return observations;
}

export function podAt(pods: readonly PodInfo[], ordinal: number): PodInfo | null {
  return pods.find((pod) => pod.ordinal === ordinal) ?? null;
}

/** Both pods of one ordinal and both relays, read in the same order every time (old side first). */
export async function gatherOrdinal(run: Run, from: string, to: string, ordinal: number): Promise<OrdinalFacts> {
  const oldPod = podAt(await listPods(run, from), ordinal);
  const newPod = podAt(await listPods(run, to), ordinal);
  const oldRelay = await observeRelay(run, oldPod);
  const newRelay = await observeRelay(run, newPod);
  return { ordinal, oldPod, newPod, oldRelay, newRelay };
}

/** Facts for every ordinal of both sets at once (verify, remove guards). */
export async function gatherAllOrdinals(run: Run, from: string, to: string, replicas: number): Promise<OrdinalFacts[]> {
  const oldPods = await listPods(run, from);
  const newPods = await listPods(run, to);
  const facts: OrdinalFacts[] = [];
  for (let ordinal = 0; ordinal < replicas; ordinal++) {
    const oldPod = podAt(oldPods, ordinal);
    const newPod = podAt(newPods, ordinal);
    facts.push({ ordinal, oldPod, newPod, oldRelay: await observeRelay(run, oldPod), newRelay: await observeRelay(run, newPod) });
  }
  return facts;
}
