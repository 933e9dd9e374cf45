import { describe, expect, test } from 'vitest';
import type { OrdinalFacts, RelayObservation, SetView, StartFacts } from '../../orchestrator/bluegreen/context.ts';
import { decideOrdinal, labelPatches, placementOf, restorable } from '../../orchestrator/bluegreen/ordinal.ts';
import { planControl, planUpdate, preflightFresh } from '../../orchestrator/bluegreen/preflight.ts';
import {
  PROGRESS_ANNOTATION,
  UPDATE_ID_ANNOTATION,
  canRollBack,
  nextStep,
  parseProgress,
  pickProgress,
  type ProgressRecord,
} from '../../orchestrator/bluegreen/progress.ts';
import { resolveControlSpec, resolveUpdateSpec, DEFAULT_TIMEOUTS } from '../../orchestrator/bluegreen/spec.ts';
import { ConditionType, Reason, setCondition } from '../../orchestrator/bluegreen/status.ts';
import { decideCreate, decideMark, misplaced, readDrain } from '../../orchestrator/bluegreen/steps.ts';
import { ErrorCode } from '../../orchestrator/errors.ts';
import type { PodInfo, RelayState, RelayStatus, SetInfo } from '../../orchestrator/platform/platform.ts';

// ---- builders -----------------------------------------------------------------------------------------------------

function pod(name: string, overrides: Partial<PodInfo> = {}): PodInfo {
  const match = /^(.*)-(\d+)$/.exec(name);
  return {
    name,
    set: match?.[1] ?? 'relay-a',
    ordinal: Number(match?.[2] ?? 0),
    phase: 'Running',
    ready: true,
    labels: { app: 'relay' },
    mgmtUrl: `https://${name}:5884`,
    image: 'relay:1',
    ...overrides,
  };
}

function status(state: RelayState, sessions = 0, forwardedDatagrams = 0): RelayStatus {
  return { pod: 'x', state, ready: state === 'serving', sessions, forwardedDatagrams, lastForwardAt: null, version: 'v' };
}

function relay(state: RelayState, sessions = 0, forwardedDatagrams = 0): RelayObservation {
  return { reachable: true, status: status(state, sessions, forwardedDatagrams) };
}

const unreachableRelay: RelayObservation = { reachable: false, error: { code: ErrorCode.Unavailable, message: 'refused' } };
const marked = { app: 'relay', restore: 'true' };

/** Ordinal 0 before its handover: old serving and marked, new awaiting restore. */
function beforeHandover(overrides: Partial<OrdinalFacts> = {}): OrdinalFacts {
  return {
    ordinal: 0,
    oldPod: pod('relay-a-0', { labels: marked }),
    newPod: pod('relay-b-0', { ready: false, image: 'relay:2' }),
    oldRelay: relay('serving', 100),
    newRelay: relay('awaiting-restore'),
    ...overrides,
  };
}

/** Ordinal 0 after its handover: new serving and ready, old forwarding and not ready. */
function afterHandover(overrides: Partial<OrdinalFacts> = {}): OrdinalFacts {
  return {
    ordinal: 0,
    oldPod: pod('relay-a-0', { labels: marked, ready: false }),
    newPod: pod('relay-b-0', { image: 'relay:2' }),
    oldRelay: relay('forwarding', 0, 12),
    newRelay: relay('serving', 100),
    ...overrides,
  };
}

function set(name: string, overrides: Partial<SetInfo> = {}): SetInfo {
  return { name, replicas: 3, image: 'relay:1', labels: { app: 'relay' }, annotations: {}, resourceVersion: '1', createdAt: 0, ...overrides };
}

function record(overrides: Partial<ProgressRecord> = {}): ProgressRecord {
  return {
    v: 1,
    id: 'u1',
    owner: 'alice',
    name: 'relay',
    from: 'relay-a',
    to: 'relay-b',
    fromImage: 'relay:1',
    image: 'relay:2',
    replicas: 3,
    direction: 'forward',
    step: 'handover',
    phase: 'Progressing',
    seq: 5,
    startedAt: 0,
    updatedAt: 0,
    handedOver: {},
    handedBack: {},
    failure: null,
    rollbackRequestedBy: null,
    conditions: [],
    ...overrides,
  };
}

function withRecord(info: SetInfo, value: ProgressRecord): SetInfo {
  return { ...info, annotations: { ...info.annotations, [PROGRESS_ANNOTATION]: JSON.stringify(value) } };
}

function startFacts(a: SetInfo | null, b: SetInfo | null): StartFacts {
  const copies = [a, b].flatMap((info) => {
    const parsed = info === null ? null : parseProgress(info.name, info.annotations);
    return parsed === null || info === null ? [] : [{ record: parsed, set: info.name }];
  });
  return { a, b, record: pickProgress(copies) };
}

const settings = resolveUpdateSpec({ name: 'relay', image: 'relay:2', owner: 'alice' });

// ---- spec -----------------------------------------------------------------------------------------------------------

describe('spec', () => {
  test('defaults are set in one place and frozen', () => {
    expect(settings).toMatchObject({ maxParallel: 1, drainQuietMs: 10_000, force: false, noRollback: false, lockWaitMs: 0 });
    expect(settings.timeouts).toEqual(DEFAULT_TIMEOUTS);
    expect(Object.isFrozen(settings)).toBe(true);
    expect(resolveUpdateSpec({ name: 'relay', image: 'r:2', owner: 'a', timeouts: { podStartMs: 5 } }).timeouts.podStartMs).toBe(5);
  });

  test.each([
    [{ name: 'Relay', image: 'r:2', owner: 'a' }, 'name'],
    [{ name: 'relay', image: 'r 2', owner: 'a' }, 'image'],
    [{ name: 'relay', image: 'r:2', owner: '' }, 'owner'],
    [{ name: 'relay', image: 'r:2', owner: 'a', maxParallel: 0 }, 'maxParallel'],
    [{ name: 'relay', image: 'r:2', owner: 'a', maxParallel: 1.5 }, 'maxParallel'],
    [{ name: 'relay', image: 'r:2', owner: 'a', timeouts: { podStartMs: -1 } }, 'timeouts.podStartMs'],
    [{ name: 'relay', image: 'r:2', owner: 'a', timeouts: { podStart: 5 } }, 'timeouts.podStart'],
    [{ name: 'relay', image: 'r:2', owner: 'a', maxParalel: 2 }, 'maxParalel'],
    [{ name: 'relay', image: 'r:2', owner: 'a', lockTtlMs: 100 }, 'lockTtlMs'],
  ])('refuses %j naming field %s', (spec, field) => {
    expect(() => resolveUpdateSpec(spec as never)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidSpec, details: { field } }));
  });

  test('abort and rollback take no image', () => {
    expect(() => resolveControlSpec({ name: 'relay', owner: 'a', image: 'x' } as never)).toThrow(/image: unknown option/);
    expect(resolveControlSpec({ name: 'relay', owner: 'a' }).image).toBeNull();
  });
});

// ---- record and conditions --------------------------------------------------------------------------------------

describe('progress record', () => {
  test('parses, and refuses to guess at a corrupt or newer record', () => {
    expect(parseProgress('relay-a', {})).toBeNull();
    expect(parseProgress('relay-a', { [PROGRESS_ANNOTATION]: JSON.stringify(record()) })).toEqual(record());
    for (const raw of ['{', '[]', JSON.stringify({ ...record(), v: 2 }), JSON.stringify({ ...record(), step: 'teleport' })]) {
      expect(() => parseProgress('relay-a', { [PROGRESS_ANNOTATION]: raw })).toThrow(expect.objectContaining({ code: ErrorCode.RecordCorrupt }));
    }
  });

  test('the copy with the higher seq speaks for an update; an active record beats a finished one', () => {
    const older = { record: record({ seq: 7, step: 'verify' }), set: 'relay-a' };
    const newer = { record: record({ seq: 8, step: 'delete' }), set: 'relay-b' };
    expect(pickProgress([older, newer])).toBe(newer);
    expect(pickProgress([newer, older])).toBe(newer);
    const finished = { record: record({ id: 'u0', seq: 99, phase: 'Completed', step: 'done' }), set: 'relay-b' };
    expect(pickProgress([finished, older])).toBe(older);
    expect(pickProgress([])).toBeNull();
  });

  test('two active records of different updates are a conflict, not a guess', () => {
    expect(() => pickProgress([{ record: record({ id: 'u1' }), set: 'relay-a' }, { record: record({ id: 'u2' }), set: 'relay-b' }])).toThrow(
      expect.objectContaining({ code: ErrorCode.RecordConflict }),
    );
  });

  test('steps follow their direction; delete is the point of no return', () => {
    expect(nextStep('forward', 'mark')).toBe('create');
    expect(nextStep('forward', 'verify')).toBe('delete');
    expect(nextStep('forward', 'delete')).toBe('done');
    expect(nextStep('rollback', 'handback')).toBe('drain-back');
    expect(nextStep('rollback', 'unmark')).toBe('done');
    expect(() => nextStep('rollback', 'mark')).toThrow();
    expect(canRollBack(record({ step: 'verify' }))).toBe(true);
    expect(canRollBack(record({ step: 'delete' }))).toBe(false);
    expect(canRollBack(record({ direction: 'rollback', step: 'remove' }))).toBe(true);
  });

  test('a condition keeps its transition time while its status is unchanged', () => {
    const first = setCondition([], { type: ConditionType.Progressing, status: 'True', reason: Reason.UpdateStarted, message: 'a' }, 100);
    const second = setCondition(first, { type: ConditionType.Progressing, status: 'True', reason: Reason.PodsMarked, message: 'b' }, 200);
    expect(second[0]).toMatchObject({ reason: Reason.PodsMarked, lastTransitionTime: 100, lastUpdateTime: 200 });
    const third = setCondition(second, { type: ConditionType.Progressing, status: 'False', reason: Reason.StepFailed, message: 'c' }, 300);
    expect(third[0]).toMatchObject({ lastTransitionTime: 300, lastUpdateTime: 300 });
    expect(setCondition(third, { type: ConditionType.Progressing, status: 'False', reason: Reason.StepFailed, message: 'c' }, 400)).toBe(third);
  });
});

// ---- where an ordinal's sessions are --------------------------------------------------------------------------

describe('placement', () => {
  test.each<[string, Partial<OrdinalFacts>, string]>([
    ['old serves, new awaits', {}, 'old'],
    ['old hands over', { oldRelay: relay('handing-over', 100) }, 'in-transit'],
    ['new restores', { newRelay: relay('restoring') }, 'in-transit'],
    ['new serves, old forwards', { oldRelay: relay('forwarding'), newRelay: relay('serving', 100) }, 'new'],
    ['both serve sessions', { newRelay: relay('serving', 5) }, 'both'],
    ['a restarted old relay serves nothing', { oldRelay: relay('serving', 0), newRelay: relay('serving', 100) }, 'new'],
    ['a fresh new relay serves nothing', { newRelay: relay('serving', 0) }, 'old'],
    ['old relay unreachable', { oldRelay: unreachableRelay }, 'unknown'],
    ['neither serves', { oldRelay: relay('forwarding'), newRelay: relay('awaiting-restore') }, 'none'],
    ['old pod gone, new not running', { oldPod: null, oldRelay: null, newPod: pod('relay-b-0', { phase: 'Pending', mgmtUrl: null }), newRelay: null }, 'none'],
  ])('%s -> %s', (_, overrides, expected) => {
    expect(placementOf(beforeHandover(overrides))).toBe(expected);
  });

  test('restorable targets follow the relay: awaiting-restore, forwarding, or serving nothing', () => {
    expect(restorable(status('awaiting-restore'))).toBe(true);
    expect(restorable(status('forwarding'))).toBe(true);
    expect(restorable(status('serving', 0))).toBe(true);
    for (const state of ['starting', 'handing-over', 'restoring', 'stopping'] as const) expect(restorable(status(state))).toBe(false);
    expect(restorable(status('serving', 3))).toBe(false);
  });
});

describe('handover decision (forward)', () => {
  const decide = (facts: OrdinalFacts, attemptsLeft = 3) => decideOrdinal('forward', facts, { attemptsLeft });

  test('restores the new pod from its marked double', () => {
    const facts = beforeHandover();
    expect(decide(facts)).toEqual({ kind: 'restore', target: facts.newPod, source: facts.oldPod });
  });

  test('waits for the new pod to run, its relay to answer, and to be awaiting a restore (pod start deadline)', () => {
    expect(decide(beforeHandover({ newPod: null, newRelay: null }))).toMatchObject({ kind: 'wait', wait: 'podStart', reason: Reason.PodNotRunning });
    expect(decide(beforeHandover({ newPod: pod('relay-b-0', { phase: 'Pending', ready: false, mgmtUrl: null }), newRelay: null }))).toMatchObject({
      kind: 'wait',
      wait: 'podStart',
      reason: Reason.PodNotRunning,
    });
    expect(decide(beforeHandover({ newRelay: unreachableRelay }))).toMatchObject({ kind: 'wait', wait: 'podStart', reason: Reason.RelayUnreachable });
    expect(decide(beforeHandover({ newRelay: relay('starting') }))).toMatchObject({ kind: 'wait', wait: 'podStart', reason: Reason.TargetNotAwaitingRestore });
  });

  test('re-marks a double that lost its label, and unmarks a new pod that carries it, before restoring', () => {
    expect(decide(beforeHandover({ oldPod: pod('relay-a-0') }))).toMatchObject({
      kind: 'relabel',
      reason: Reason.DoubleNotMarked,
      patches: [{ pod: 'relay-a-0', labels: { restore: 'true' } }],
    });
    expect(decide(beforeHandover({ newPod: pod('relay-b-0', { ready: false, labels: marked }) }))).toMatchObject({
      kind: 'relabel',
      patches: [{ pod: 'relay-b-0', labels: { restore: null } }],
    });
  });

  test('gives up when no restore attempt is left', () => {
    expect(decide(beforeHandover(), 0)).toMatchObject({ kind: 'blocked', reason: Reason.RestoreAttemptsExhausted });
  });

  test('is done once the sessions are on the new pod and readiness flipped, waits while the probe lags', () => {
    expect(decide(afterHandover())).toEqual({ kind: 'done' });
    expect(decide(afterHandover({ newPod: pod('relay-b-0', { ready: false }) }))).toMatchObject({ kind: 'wait', wait: 'readiness', reason: Reason.ReadinessPending });
    expect(decide(afterHandover({ oldPod: pod('relay-a-0', { labels: marked, ready: true }) }))).toMatchObject({ reason: Reason.ReadinessPending });
  });

  test('never restores while a transfer is in flight or the sessions cannot be placed (readiness deadline)', () => {
    expect(decide(beforeHandover({ oldRelay: relay('handing-over', 100), newRelay: relay('restoring') }))).toMatchObject({
      kind: 'wait',
      wait: 'readiness',
      reason: Reason.RestoreInProgress,
    });
    expect(decide(beforeHandover({ newRelay: relay('serving', 3) }))).toMatchObject({ kind: 'wait', reason: Reason.SessionsUnplaced });
    expect(decide(beforeHandover({ oldRelay: relay('forwarding') }))).toMatchObject({ kind: 'wait', reason: Reason.SessionsUnplaced });
    expect(decide(beforeHandover({ oldRelay: unreachableRelay }))).toMatchObject({ kind: 'wait', wait: 'readiness', reason: Reason.RelayUnreachable });
  });
});

describe('handback decision (rollback)', () => {
  const decide = (facts: OrdinalFacts, attemptsLeft = 3) => decideOrdinal('rollback', facts, { attemptsLeft });

  test('swaps the label, new pod first, before handing back', () => {
    expect(decide(afterHandover())).toEqual({
      kind: 'relabel',
      reason: Reason.TargetMarked,
      message: expect.any(String),
      patches: [
        { pod: 'relay-b-0', labels: { restore: 'true' } },
        { pod: 'relay-a-0', labels: { restore: null } },
      ],
    });
    expect(labelPatches(pod('relay-a-0', { labels: marked }), pod('relay-b-0', { labels: marked }))).toEqual([
      { pod: 'relay-a-0', labels: { restore: null } },
    ]);
  });

  test('restores the old pod from the new one once labels are swapped', () => {
    const facts = afterHandover({ oldPod: pod('relay-a-0', { ready: false }), newPod: pod('relay-b-0', { labels: marked }) });
    expect(decide(facts)).toEqual({ kind: 'restore', target: facts.oldPod, source: facts.newPod });
  });

  test('an ordinal that never left the old pod needs nothing', () => {
    expect(decide(beforeHandover())).toEqual({ kind: 'done' });
    expect(decide(beforeHandover({ newPod: null, newRelay: null }))).toEqual({ kind: 'done' });
  });

  test('refuses when there is no old pod to hand back to', () => {
    expect(decide(afterHandover({ oldPod: null, oldRelay: null }))).toMatchObject({ kind: 'blocked', reason: Reason.OldPodMissing });
  });
});

// ---- step decisions -------------------------------------------------------------------------------------------

describe('step decisions', () => {
  const view = (pods: PodInfo[], info: SetInfo | null = set('relay-a')): SetView => ({ name: 'relay-a', set: info, pods });

  test('mark patches the unmarked old pods, waits for missing ones, is done when all carry the label', () => {
    const pods = [pod('relay-a-0', { labels: marked }), pod('relay-a-1'), pod('relay-a-2')];
    expect(decideMark(view(pods), 3, true)).toEqual({ kind: 'act', action: [pods[1], pods[2]] });
    expect(decideMark(view([pods[0]!]), 3, true)).toMatchObject({ kind: 'wait', reason: Reason.PodNotRunning });
    expect(decideMark(view(pods.map((entry) => ({ ...entry, labels: marked }))), 3, true)).toMatchObject({ kind: 'done' });
    expect(decideMark(view([], null), 3, true)).toMatchObject({ kind: 'blocked', reason: Reason.NoActiveSet });
  });

  test('unmark removes any restore label and does not need every pod', () => {
    const pods = [pod('relay-a-0', { labels: marked }), pod('relay-a-1', { labels: { restore: 'false' } })];
    expect(decideMark(view(pods), 3, false)).toEqual({ kind: 'act', action: pods });
    expect(decideMark(view([pod('relay-a-0')]), 3, false)).toMatchObject({ kind: 'done', summary: { reason: Reason.PodsUnmarked } });
  });

  test('create makes the set once and never adopts a set it did not make', () => {
    const from = set('relay-a');
    expect(decideCreate(from, null, record())).toEqual({ kind: 'act', action: from });
    const ours = set('relay-b', { image: 'relay:2', annotations: { [UPDATE_ID_ANNOTATION]: 'u1' } });
    expect(decideCreate(from, ours, record())).toMatchObject({ kind: 'done', summary: { reason: Reason.NewSetCreated } });
    expect(decideCreate(from, set('relay-b', { image: 'relay:2' }), record())).toMatchObject({ kind: 'blocked', reason: Reason.SetNotOurs });
    expect(decideCreate(from, { ...ours, replicas: 5 }, record())).toMatchObject({ kind: 'blocked', reason: Reason.ReplicasMismatch });
    expect(decideCreate(null, null, record())).toMatchObject({ kind: 'blocked', reason: Reason.NoActiveSet });
  });

  test('drain counts quiet time from counter changes it sees itself', () => {
    const pods = [pod('relay-a-0'), pod('relay-a-1'), pod('relay-a-2', { phase: 'Pending' })];
    const relays = new Map([
      ['relay-a-0', relay('forwarding', 0, 10)],
      ['relay-a-1', unreachableRelay],
    ]);
    const first = readDrain(new Map(), pods, relays, 1000, 500);
    expect(first.busy.map((entry) => entry.pod)).toEqual(['relay-a-0', 'relay-a-1']);
    expect(first.changed).toEqual([{ pod: 'relay-a-0', forwarded: 10, quietForMs: 0 }]);
    const unchanged = readDrain(first.marks, pods.slice(0, 1), relays, 1600, 500);
    expect(unchanged.busy).toEqual([]);
    expect(unchanged.changed).toEqual([]);
    const moved = readDrain(first.marks, pods.slice(0, 1), new Map([['relay-a-0', relay('forwarding', 0, 11)]]), 1600, 500);
    expect(moved.busy).toEqual([{ pod: 'relay-a-0', quietForMs: 0 }]);
  });

  test('misplaced names each ordinal not served by a ready pod on the wanted side', () => {
    expect(misplaced([afterHandover()], 'new')).toEqual([]);
    expect(misplaced([beforeHandover()], 'new')).toEqual(['ordinal 0: sessions old']);
    expect(misplaced([afterHandover({ newPod: pod('relay-b-0', { ready: false }) })], 'new')).toEqual(['ordinal 0: relay-b-0 not ready']);
    expect(misplaced([beforeHandover()], 'old')).toEqual([]);
  });
});

// ---- how a run starts -------------------------------------------------------------------------------------------

describe('start plans', () => {
  const a = set('relay-a');

  test('a fresh update goes from the only set to the other', () => {
    expect(planUpdate(settings, startFacts(a, null))).toEqual({ kind: 'fresh', from: a, to: 'relay-b' });
    const b = set('relay-b');
    expect(planUpdate(settings, startFacts(null, b))).toEqual({ kind: 'fresh', from: b, to: 'relay-a' });
  });

  test.each<[string, StartFacts, string]>([
    ['no set', startFacts(null, null), Reason.NoActiveSet],
    ['both sets without a record', startFacts(a, set('relay-b')), Reason.BothSetsExist],
    ['same image', startFacts(set('relay-a', { image: 'relay:2' }), null), Reason.ImageUnchanged],
    ['another image in progress', startFacts(withRecord(a, record({ image: 'relay:3' })), null), Reason.UpdateInProgress],
    [
      'a rollback the user asked for',
      startFacts(withRecord(a, record({ direction: 'rollback', step: 'remove', rollbackRequestedBy: 'rollback' })), null),
      Reason.RollbackInProgress,
    ],
  ])('refuses: %s', (_, facts, reason) => {
    expect(planUpdate(settings, facts)).toMatchObject({ kind: 'refuse', reason });
  });

  test('resumes the recorded update with the same image, in its recorded direction', () => {
    const holder = withRecord(a, record());
    expect(planUpdate(settings, startFacts(holder, null))).toMatchObject({ kind: 'resume', set: holder });
    const rollingBack = withRecord(a, record({ direction: 'rollback', step: 'handback', rollbackRequestedBy: 'failure' }));
    expect(planUpdate(settings, startFacts(rollingBack, null))).toMatchObject({ kind: 'resume' });
  });

  test('a rerun of a completed update reports success; force restarts the same image', () => {
    const done = withRecord(set('relay-b', { image: 'relay:2' }), record({ phase: 'Completed', step: 'done' }));
    expect(planUpdate(settings, startFacts(null, done))).toMatchObject({ kind: 'already-done' });
    expect(planUpdate({ ...settings, force: true }, startFacts(null, done))).toMatchObject({ kind: 'fresh', to: 'relay-a' });
  });

  test('preflight wants every pod running and ready, every relay serving', () => {
    const pods = [pod('relay-a-0'), pod('relay-a-1'), pod('relay-a-2')];
    const serving = new Map(pods.map((entry) => [entry.name, relay('serving', 10)]));
    expect(preflightFresh(a, pods, serving)).toBeNull();
    expect(preflightFresh(a, pods.slice(0, 2), serving)).toMatchObject({ reason: Reason.PodsNotReady, message: expect.stringContaining('relay-a-2 missing') });
    expect(preflightFresh(a, [pods[0]!, pods[1]!, pod('relay-a-2', { ready: false })], serving)).toMatchObject({ reason: Reason.PodsNotReady });
    expect(preflightFresh(a, pods, new Map([...serving, ['relay-a-1', unreachableRelay]]))).toMatchObject({ reason: Reason.RelaysNotServing });
    expect(preflightFresh(a, pods, new Map([...serving, ['relay-a-1', relay('forwarding')]]))).toMatchObject({ reason: Reason.RelaysNotServing });
  });

  test('abort only before any handover; rollback until the delete step', () => {
    const early = startFacts(withRecord(a, record({ step: 'create' })), null);
    expect(planControl('abort', early)).toMatchObject({ kind: 'start-rollback', requestedBy: 'abort' });
    const handedOver = startFacts(withRecord(a, record({ handedOver: { '0': {} as never } })), null);
    expect(planControl('abort', handedOver)).toMatchObject({ kind: 'refuse', reason: Reason.HandoverStarted });
    expect(planControl('rollback', handedOver)).toMatchObject({ kind: 'start-rollback', requestedBy: 'rollback' });
    const deleting = startFacts(a, withRecord(set('relay-b'), record({ step: 'delete' })));
    expect(planControl('rollback', deleting)).toMatchObject({ kind: 'refuse', reason: Reason.PastPointOfNoReturn });
    expect(planControl('rollback', startFacts(a, null))).toMatchObject({ kind: 'refuse', reason: Reason.NoUpdateInProgress });
    const rolling = startFacts(withRecord(a, record({ direction: 'rollback', step: 'remove' })), null);
    expect(planControl('abort', rolling)).toMatchObject({ kind: 'resume' });
  });
});
