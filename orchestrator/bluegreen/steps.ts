import { ErrorCode, OrchestratorError, isOrchestratorError } from '../errors.ts';
import { RESTORE_LABEL, RESTORE_LABEL_VALUE, carriesRestoreLabel, type PodInfo, type SetInfo } from '../platform/platform.ts';
import { gatherAllOrdinals, gatherSet, getSet, listPods, observeRelays, podAt, type OrdinalFacts, type RelayObservation, type SetView } from './context.ts';
import { forEachOrdinal, moveOrdinal } from './movement.ts';
import { placementOf } from './ordinal.ts';
import { UPDATE_ID_ANNOTATION, type Direction, type ProgressRecord, type StepName } from './progress.ts';
import { WaitClock, type Run } from './runtime.ts';
import type { RecordStore } from './store.ts';
import { Reason } from './status.ts';

/**
 * The ordered steps. Each one is a reconcile loop: gather the facts, decide (a pure function below), act once,
 * gather again, until its done-check passes. Every action is safe to repeat, so a rerun after a kill simply runs
 * the recorded step again. A step returns what the Progressing condition should say once it is done.
 */

export interface StepSummary {
  reason: Reason;
  message: string;
}

export interface StepDefinition {
  readonly name: Exclude<StepName, 'done'>;
  readonly direction: Direction;
  run(run: Run, store: RecordStore): Promise<StepSummary>;
}

/** What a step's decide function asks for. */
export type StepDecision<Action> =
  | { kind: 'done'; summary: StepSummary }
  | { kind: 'wait'; reason: Reason; message: string }
  | { kind: 'blocked'; reason: Reason; message: string }
  | { kind: 'act'; action: Action };

function blocked(reason: Reason, message: string): OrchestratorError {
  return new OrchestratorError(ErrorCode.Blocked, message, { reason });
}

function range(count: number): number[] {
  return Array.from({ length: count }, (_, index) => index);
}

// ---- mark / unmark: the restore label on every old pod --------------------------------------------------------

export function decideMark(view: SetView, replicas: number, want: boolean): StepDecision<PodInfo[]> {
  if (view.set === null) return { kind: 'blocked', reason: Reason.NoActiveSet, message: `old set ${view.name} is gone` };
  const pods = view.pods.filter((pod) => pod.ordinal < replicas);
  const wrong = pods.filter((pod) => carriesRestoreLabel(pod) !== want || (!want && RESTORE_LABEL in pod.labels));
  if (wrong.length > 0) return { kind: 'act', action: wrong };
  // Unmarking does not need every pod: a missing pod carries no label. Marking does: a pod recreated later must
  // not come back unmarked while new pods exist.
  const missing = range(replicas).filter((ordinal) => podAt(pods, ordinal) === null);
  if (want && missing.length > 0) {
    return { kind: 'wait', reason: Reason.PodNotRunning, message: `old pods missing for ordinals ${missing.join(', ')}` };
  }
  return want
    ? { kind: 'done', summary: { reason: Reason.PodsMarked, message: `${pods.length} old pods carry ${RESTORE_LABEL}=${RESTORE_LABEL_VALUE}` } }
    : { kind: 'done', summary: { reason: Reason.PodsUnmarked, message: `old pods no longer carry ${RESTORE_LABEL}` } };
}

async function reconcileLabels(run: Run, store: RecordStore, want: boolean): Promise<StepSummary> {
  const { from, replicas } = store.record;
  const waits = new WaitClock(run, { podStart: run.settings.timeouts.podStartMs });
  let patched = false;
  for (;;) {
    run.checkDeadline();
    const decision = decideMark(await gatherSet(run, from), replicas, want);
    if (decision.kind === 'done') return decision.summary;
    if (decision.kind === 'blocked') throw blocked(decision.reason, decision.message);
    if (decision.kind === 'wait') {
      await waits.wait('podStart', null, decision.reason, decision.message);
      continue;
    }
    // Patched already and the labels do not show yet: give the platform a poll interval before patching again.
    if (patched) await waits.wait('podStart', null, Reason.ActionPending, `labels not visible yet on ${decision.action.map((pod) => pod.name).join(', ')}`);
    patched = true;
    const labels = { [RESTORE_LABEL]: want ? RESTORE_LABEL_VALUE : null };
    for (const pod of decision.action) {
      try {
        await run.call(`patchPodLabels ${pod.name}`, () => run.platform.patchPodLabels(pod.name, labels), { retry: true });
        run.emit({ type: 'labels-changed', pod: pod.name, labels, reason: want ? Reason.PodsMarked : Reason.PodsUnmarked });
      } catch (error) {
        // Recreated under us: the next reading shows it again.
        if (!isOrchestratorError(error) || error.code !== ErrorCode.NotFound) throw error;
      }
    }
  }
}

// ---- create: the other set, same replicas and labels, new image ------------------------------------------------

export function decideCreate(fromSet: SetInfo | null, toSet: SetInfo | null, record: ProgressRecord): StepDecision<SetInfo> {
  if (toSet !== null) {
    if (toSet.annotations[UPDATE_ID_ANNOTATION] !== record.id) {
      return { kind: 'blocked', reason: Reason.SetNotOurs, message: `${toSet.name} exists but was not created by update ${record.id}` };
    }
    if (toSet.image !== record.image || toSet.replicas !== record.replicas) {
      return {
        kind: 'blocked',
        reason: Reason.ReplicasMismatch,
        message: `${toSet.name} runs ${toSet.image} x${toSet.replicas}, expected ${record.image} x${record.replicas}`,
      };
    }
    return { kind: 'done', summary: { reason: Reason.NewSetCreated, message: `${toSet.name} created with ${record.image}` } };
  }
  if (fromSet === null) return { kind: 'blocked', reason: Reason.NoActiveSet, message: `old set ${record.from} is gone` };
  return { kind: 'act', action: fromSet };
}

async function createNewSet(run: Run, store: RecordStore): Promise<StepSummary> {
  const record = store.record;
  const waits = new WaitClock(run, { create: run.settings.timeouts.podStartMs });
  let requested = false;
  for (;;) {
    run.checkDeadline();
    const decision = decideCreate(await getSet(run, record.from), await getSet(run, record.to), record);
    if (decision.kind === 'done') return decision.summary;
    if (decision.kind === 'blocked' || decision.kind === 'wait') throw blocked(decision.reason, decision.message);
    if (requested) await waits.wait('create', null, Reason.ActionPending, `${record.to} not visible yet`);
    requested = true;
    try {
      await run.call(
        `createSet ${record.to}`,
        () =>
          run.platform.createSet({
            name: record.to,
            replicas: record.replicas,
            image: record.image,
            template: decision.action,
            annotations: { [UPDATE_ID_ANNOTATION]: record.id },
          }),
        { retry: true },
      );
    } catch (error) {
      // An earlier attempt whose answer was lost, or someone else's set: the next reading tells which.
      if (!isOrchestratorError(error) || error.code !== ErrorCode.AlreadyExists) throw error;
    }
  }
}

// ---- handover / handback: every ordinal, at most maxParallel at a time -----------------------------------------

async function moveAll(run: Run, store: RecordStore, direction: Direction): Promise<StepSummary> {
  const ordinals = range(store.record.replicas);
  await forEachOrdinal(ordinals, run.settings.maxParallel, (ordinal, stop) => moveOrdinal(run, store, direction, ordinal, stop));
  const entries = Object.values(direction === 'forward' ? store.record.handedOver : store.record.handedBack);
  const sessions = entries.reduce((sum, entry) => sum + (entry.sessions ?? 0), 0);
  return direction === 'forward'
    ? { reason: Reason.OrdinalHandedOver, message: `${entries.length} ordinals handed over, ${sessions} sessions` }
    : { reason: Reason.OrdinalHandedBack, message: `${entries.length} ordinals handed back, ${sessions} sessions` };
}

// ---- drain: old relays stop forwarding stragglers ---------------------------------------------------------------

export interface QuietMark {
  forwarded: number;
  /** Orchestrator time at which we first saw this counter value. */
  since: number;
}

export interface DrainReading {
  marks: Map<string, QuietMark>;
  /** Pods still forwarding (or that we cannot read), with how long they have been quiet. */
  busy: { pod: string; quietForMs: number }[];
  changed: { pod: string; forwarded: number; quietForMs: number }[];
}

/**
 * A relay is quiet once its forwarded counter has not moved for `quietMs` as seen by us, so relay clock skew
 * does not matter; its first reading starts the quiet period. A pod that is not running cannot forward; one we
 * cannot read is not assumed quiet.
 */
export function readDrain(
  previous: ReadonlyMap<string, QuietMark>,
  pods: readonly PodInfo[],
  relays: ReadonlyMap<string, RelayObservation | null>,
  now: number,
  quietMs: number,
): DrainReading {
  const marks = new Map<string, QuietMark>();
  const busy: DrainReading['busy'] = [];
  const changed: DrainReading['changed'] = [];
  for (const pod of pods) {
    const relay = relays.get(pod.name) ?? null;
    if (pod.phase !== 'Running') continue;
    if (relay === null || !relay.reachable) {
      busy.push({ pod: pod.name, quietForMs: 0 });
      continue;
    }
    const forwarded = relay.status.forwardedDatagrams;
    const before = previous.get(pod.name);
    const mark = before !== undefined && before.forwarded === forwarded ? before : { forwarded, since: now };
    marks.set(pod.name, mark);
    const quietForMs = now - mark.since;
    if (mark !== before) changed.push({ pod: pod.name, forwarded, quietForMs });
    if (quietForMs < quietMs) busy.push({ pod: pod.name, quietForMs });
  }
  return { marks, busy, changed };
}

async function drain(run: Run, set: string, ordinals: readonly number[]): Promise<StepSummary> {
  const { drainQuietMs, timeouts, pollIntervalMs } = run.settings;
  if (ordinals.length === 0) return { reason: Reason.DrainQuiet, message: 'nothing was handed over, nothing to drain' };
  const endsAt = run.now() + timeouts.drainMs;
  let marks = new Map<string, QuietMark>();
  for (;;) {
    run.checkDeadline();
    const pods = (await listPods(run, set)).filter((pod) => ordinals.includes(pod.ordinal));
    const now = run.now();
    const reading = readDrain(marks, pods, await observeRelays(run, pods), now, drainQuietMs);
    marks = reading.marks;
    for (const change of reading.changed) {
      run.emit({ type: 'drain-progress', pod: change.pod, forwardedDatagrams: change.forwarded, quietForMs: change.quietForMs });
    }
    if (reading.busy.length === 0) {
      return { reason: Reason.DrainQuiet, message: `no stragglers forwarded for ${drainQuietMs} ms` };
    }
    if (now >= endsAt) {
      // Not a failure: devices that keep their conntrack entry alive would hold the update forever.
      const message = `drain timeout after ${timeouts.drainMs} ms; still forwarding: ${reading.busy.map((entry) => entry.pod).join(', ')}`;
      run.emit({ type: 'warning', step: run.step, reason: Reason.DrainTimedOut, message });
      return { reason: Reason.DrainTimedOut, message };
    }
    run.noteWaiting(null, Reason.StragglersForwarded, `still forwarding: ${reading.busy.map((entry) => entry.pod).join(', ')}`);
    const quietestLeft = Math.min(...reading.busy.map((entry) => drainQuietMs - entry.quietForMs));
    await run.sleep(Math.max(1, Math.min(pollIntervalMs, quietestLeft, endsAt - now)));
  }
}

// ---- verify / delete / remove: guards against deleting a pod that serves sessions ------------------------------

/** Ordinals whose sessions are not on the wanted side with the pod ready, with why. */
export function misplaced(facts: readonly OrdinalFacts[], side: 'old' | 'new'): string[] {
  const problems: string[] = [];
  for (const ordinal of facts) {
    const placement = placementOf(ordinal);
    const pod = side === 'new' ? ordinal.newPod : ordinal.oldPod;
    if (placement !== side) problems.push(`ordinal ${ordinal.ordinal}: sessions ${placement}`);
    else if (pod === null || !pod.ready) problems.push(`ordinal ${ordinal.ordinal}: ${pod?.name ?? 'pod'} not ready`);
  }
  return problems;
}

async function verify(run: Run, store: RecordStore): Promise<StepSummary> {
  const { from, to, replicas } = store.record;
  const waits = new WaitClock(run, { readiness: run.settings.timeouts.readinessMs });
  for (;;) {
    run.checkDeadline();
    const problems = misplaced(await gatherAllOrdinals(run, from, to, replicas), 'new');
    if (problems.length === 0) {
      return { reason: Reason.SessionsVerified, message: `all ${replicas} ordinals served by ready new pods` };
    }
    await waits.wait('readiness', null, Reason.OrdinalNotOnNewSet, problems.join('; '));
  }
}

/**
 * Deletes `set` once `safe` says no pod of it serves sessions, then waits until its pods are gone.
 * `guardSide` is where every ordinal must be before the delete.
 */
async function deleteSet(run: Run, store: RecordStore, set: string, guardSide: 'old' | 'new'): Promise<StepSummary> {
  const { from, to, replicas, id } = store.record;
  const waits = new WaitClock(run, { readiness: run.settings.timeouts.readinessMs, delete: run.settings.timeouts.deleteMs });
  let requested = false;
  for (;;) {
    run.checkDeadline();
    const current = await getSet(run, set);
    if (current === null) {
      const left = await listPods(run, set);
      for (const pod of left) run.notePod(pod, null);
      if (left.length === 0) {
        return guardSide === 'new'
          ? { reason: Reason.OldSetDeleted, message: `${set} deleted` }
          : { reason: Reason.NewSetRemoved, message: `${set} deleted` };
      }
      await waits.wait('delete', null, Reason.PodsTerminating, `${left.map((pod) => pod.name).join(', ')} still terminating`);
      continue;
    }
    if (set === to && current.annotations[UPDATE_ID_ANNOTATION] !== id) {
      throw blocked(Reason.SetNotOurs, `${set} was not created by update ${id}; not deleting it`);
    }
    if (requested) {
      // Deleted already but still listed (finalizers, foreground deletion): wait, then ask again (idempotent).
      await waits.wait('delete', null, Reason.ActionPending, `${set} is being deleted`);
    } else {
      const problems = misplaced(await gatherAllOrdinals(run, from, to, replicas), guardSide);
      if (problems.length > 0) {
        const reason = guardSide === 'new' ? Reason.OrdinalNotOnNewSet : Reason.NewSetServesSessions;
        await waits.wait('readiness', null, reason, `not deleting ${set}: ${problems.join('; ')}`);
        continue;
      }
    }
    requested = true;
    await run.call(`deleteSet ${set}`, () => run.platform.deleteSet(set), { retry: true });
  }
}

// ---- the table ----------------------------------------------------------------------------------------------------

export const STEPS: Readonly<Record<Exclude<StepName, 'done'>, StepDefinition>> = {
  mark: { name: 'mark', direction: 'forward', run: (run, store) => reconcileLabels(run, store, true) },
  create: { name: 'create', direction: 'forward', run: createNewSet },
  handover: { name: 'handover', direction: 'forward', run: (run, store) => moveAll(run, store, 'forward') },
  drain: {
    name: 'drain',
    direction: 'forward',
    run: (run, store) => drain(run, store.record.from, range(store.record.replicas)),
  },
  verify: { name: 'verify', direction: 'forward', run: verify },
  delete: { name: 'delete', direction: 'forward', run: (run, store) => deleteSet(run, store, store.record.from, 'new') },
  handback: { name: 'handback', direction: 'rollback', run: (run, store) => moveAll(run, store, 'rollback') },
  'drain-back': {
    name: 'drain-back',
    direction: 'rollback',
    // Only new pods that handed sessions back forward stragglers.
    run: (run, store) => drain(run, store.record.to, Object.keys(store.record.handedBack).map(Number)),
  },
  remove: { name: 'remove', direction: 'rollback', run: (run, store) => deleteSet(run, store, store.record.to, 'old') },
  unmark: { name: 'unmark', direction: 'rollback', run: (run, store) => reconcileLabels(run, store, false) },
};
