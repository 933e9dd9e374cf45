import { describe, expect, test } from 'vitest';
import { CRASH_LOOP_BACK_OFF, decideController, type ControllerFacts, type ControllerTimings } from '../../../orchestrator/platform/local/controller.ts';
import {
  KUBELET_RESTART_BACKOFF,
  nextRestartBackoff,
  restartAllowedAt,
  scaledRestartBackoff,
  type RestartBackoff,
} from '../../../orchestrator/platform/local/restart-backoff.ts';
import { STATE_VERSION, type PodRecord, type SetRecord } from '../../../orchestrator/platform/local/state.ts';

/** The controller's decisions and the kubelet's back-off, from facts written by hand (no files, no processes). */

const T = 1_700_000_000_000;
const timings: ControllerTimings = { restartBackoff: KUBELET_RESTART_BACKOFF, terminationGraceMs: 15_000 };

function set(name: string, overrides: Partial<SetRecord> = {}): SetRecord {
  return { version: STATE_VERSION, name, replicas: 3, image: 'relay:1', labels: { app: 'relay' }, annotations: {}, resourceVersion: '1', createdAt: T, awaitRestore: false, slot: 0, ...overrides };
}

function pod(name: string, overrides: Partial<PodRecord> = {}): PodRecord {
  const [, owner, ordinal] = /^(.*)-(\d+)$/.exec(name)!;
  return {
    version: STATE_VERSION,
    name,
    set: owner!,
    ordinal: Number(ordinal),
    image: 'relay:1',
    labels: { app: 'relay' },
    address: '127.0.0.1',
    dtlsPort: 5684,
    mgmtPort: 8443,
    pid: 4242,
    createdAt: T,
    deletingAt: null,
    ...overrides,
  };
}

interface Scene {
  now?: number;
  sets?: SetRecord[];
  unreadableSets?: string[];
  pods?: { record: PodRecord; runs: boolean }[];
  unreadablePods?: string[];
}

function facts(scene: Scene): ControllerFacts {
  const sets = scene.sets ?? [];
  const pods = scene.pods ?? [];
  return {
    now: scene.now ?? T,
    sets: new Map(sets.map((entry) => [entry.name, entry])),
    setFiles: new Set([...sets.map((entry) => entry.name), ...(scene.unreadableSets ?? [])]),
    pods,
    podFiles: new Set([...pods.map((entry) => entry.record.name), ...(scene.unreadablePods ?? [])]),
  };
}

const running = (record: PodRecord) => ({ record, runs: true });
const exited = (record: PodRecord) => ({ record, runs: false });
const summary = (scene: Scene) =>
  decideController(facts(scene), timings).map((action) =>
    action.kind === 'create' ? `create ${action.set.name}-${action.ordinal}` : `${action.kind} ${action.pod.name}`,
  );

describe('the local controller decides', () => {
  test('a set short of pods (a create cut short) gets the missing ordinals; a whole set gets nothing', () => {
    const b = set('relay-b', { awaitRestore: true });
    expect(summary({ sets: [b], pods: [exited(pod('relay-b-0', { pid: null }))] })).toEqual(['create relay-b-1', 'create relay-b-2', 'start relay-b-0']);
    expect(summary({ sets: [b], pods: [0, 1, 2].map((n) => running(pod(`relay-b-${n}`))) })).toEqual([]);
    // An ordinal whose file cannot be read is not made again over it (its relay may run).
    expect(summary({ sets: [b], pods: [running(pod('relay-b-0'))], unreadablePods: ['relay-b-1'] })).toEqual(['create relay-b-2']);
  });

  test('deleted pods stay deleted: never started, removed once their relay is gone, killed after the grace period', () => {
    const deleting = pod('relay-b-0', { deletingAt: T - 1_000 });
    expect(summary({ pods: [exited(deleting)] })).toEqual(['reap relay-b-0']);
    expect(summary({ pods: [running(deleting)] })).toEqual([]);
    expect(summary({ now: T + 14_000, pods: [running(deleting)] })).toEqual([]);
    expect(summary({ now: T + 14_001, pods: [running(deleting)] })).toEqual(['kill relay-b-0']);
    // Even when a set of that name exists again: the terminating pod is the old one's.
    expect(summary({ sets: [set('relay-b', { replicas: 1 })], pods: [exited(deleting)] })).toEqual(['reap relay-b-0']);
  });

  test('a pod whose set is gone or has no such ordinal is terminated; one whose set file cannot be read is left alone', () => {
    expect(summary({ pods: [running(pod('relay-b-0')), exited(pod('relay-b-1'))] })).toEqual(['orphaned relay-b-0', 'orphaned relay-b-1']);
    expect(summary({ sets: [set('relay-a', { replicas: 1 })], pods: [running(pod('relay-a-0')), running(pod('relay-a-1'))] })).toEqual(['orphaned relay-a-1']);
    expect(summary({ unreadableSets: ['relay-b'], pods: [exited(pod('relay-b-0'))] })).toEqual([]);
  });

  test('an exited relay: restarted at once the first time, then held in CrashLoopBackOff for the delay since its last restart', () => {
    const a = set('relay-a', { replicas: 1 });
    const first = decideController(facts({ sets: [a], pods: [exited(pod('relay-a-0'))] }), timings);
    expect(first).toEqual([{ kind: 'restart', pod: pod('relay-a-0'), set: a, backoff: { delayMs: 10_000, lastUpdate: T } }]);

    const restarted = pod('relay-a-0', { restartCount: 1, restartBackoff: { delayMs: 10_000, lastUpdate: T } });
    const again = decideController(facts({ now: T + 3_000, sets: [a], pods: [exited(restarted)] }), timings);
    expect(again).toEqual([
      { kind: 'back-off', pod: restarted, waiting: { reason: CRASH_LOOP_BACK_OFF, message: 'back-off 10s restarting failed relay pod=relay-a-0', until: T + 10_000 } },
    ]);
    // Recorded: nothing more until it is due, then the restart with the doubled delay.
    const waiting = { ...restarted, waiting: { reason: CRASH_LOOP_BACK_OFF, message: '', until: T + 10_000 } };
    expect(decideController(facts({ now: T + 9_999, sets: [a], pods: [exited(waiting)] }), timings)).toEqual([]);
    expect(decideController(facts({ now: T + 10_000, sets: [a], pods: [exited(waiting)] }), timings)).toEqual([
      { kind: 'restart', pod: waiting, set: a, backoff: { delayMs: 20_000, lastUpdate: T + 10_000 } },
    ]);
    // A relay that ran longer than its delay is restarted at once, the delay still doubled.
    expect(decideController(facts({ now: T + 11_000, sets: [a], pods: [exited(restarted)] }), timings)).toEqual([
      { kind: 'restart', pod: restarted, set: a, backoff: { delayMs: 20_000, lastUpdate: T + 11_000 } },
    ]);
    // A relay that never ran (record written, crash before the start) is started, not restarted.
    expect(summary({ sets: [a], pods: [exited(pod('relay-a-0', { pid: null }))] })).toEqual(['start relay-a-0']);
  });
});

describe("the kubelet's restart back-off", () => {
  test('10 s doubling to 5 min, forgotten after 10 min without a restart', () => {
    let entry: RestartBackoff | null = null;
    let now = T;
    const delays: number[] = [];
    for (let restart = 0; restart < 8; restart++) {
      // Each run crashes at once: it waits until the previous entry allows it.
      now = restartAllowedAt(entry, now, KUBELET_RESTART_BACKOFF);
      entry = nextRestartBackoff(entry, now, KUBELET_RESTART_BACKOFF);
      delays.push(entry.delayMs);
    }
    expect(delays).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
    expect(restartAllowedAt(entry, now + 1, KUBELET_RESTART_BACKOFF)).toBe(now + 300_000);
    expect(restartAllowedAt(entry, now + 600_000, KUBELET_RESTART_BACKOFF)).toBe(now + 600_000);
    expect(restartAllowedAt(entry, now + 600_001, KUBELET_RESTART_BACKOFF)).toBe(now + 600_001);
    expect(nextRestartBackoff(entry, now + 600_000, KUBELET_RESTART_BACKOFF).delayMs).toBe(300_000);
    expect(nextRestartBackoff(entry, now + 600_001, KUBELET_RESTART_BACKOFF)).toEqual({ delayMs: 10_000, lastUpdate: now + 600_001 });
  });

  test('scaled for tests: the same curve in milliseconds', () => {
    expect(scaledRestartBackoff(0.001)).toEqual({ initialMs: 10, maxMs: 300 });
    expect(() => scaledRestartBackoff(0)).toThrow(/positive/);
  });
});
