import { readFile, rm, writeFile } from 'node:fs/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { formatDuration } from '../../../lib/duration.ts';
import { CRASH_LOOP_BACK_OFF, LocalController } from '../../../orchestrator/platform/local/controller.ts';
import { deployLocal, openLocalPlatform, type LocalPlatform } from '../../../orchestrator/platform/local/index.ts';
import { exited, findProcesses, processMatches } from '../../../orchestrator/platform/local/processes.ts';
import { relayMarkers } from '../../../orchestrator/platform/local/relays.ts';
import { serviceMarkers } from '../../../orchestrator/platform/local/service.ts';
import { listJson } from '../../../orchestrator/platform/local/state-fs.ts';
import {
  localPaths,
  podFile,
  previousPodLog,
  readPod,
  readService,
  serviceLog,
  setFile,
  type LocalPaths,
  type PodRecord,
} from '../../../orchestrator/platform/local/state.ts';
import { eventually } from '../../support/eventually.ts';
import { tempState } from './helpers.ts';

/**
 * The local platform's controller (controller.ts) with real relay processes: what the StatefulSet controller and
 * the kubelet do on Kubernetes. First in-process on a clock moved by hand, with the service process stopped, so
 * that every pass and every restart is counted exactly; then the service process's own controller, as a cluster
 * runs it.
 */

const T = Date.UTC(2026, 0, 1);

async function record(paths: LocalPaths, pod: string): Promise<PodRecord> {
  const found = await readPod(paths, pod);
  if (found === null) throw new Error(`no record of ${pod}`);
  return found;
}

/** Kills the relay of `pod` as a crash would, and waits until its process is gone. */
async function crash(paths: LocalPaths, pod: string): Promise<number> {
  const { pid } = await record(paths, pod);
  process.kill(pid!, 'SIGKILL');
  await eventually(`${pod} (pid ${pid}) to exit`, () => exited(pid!));
  return pid!;
}

describe('the controller, in-process on a hand-moved clock (service process stopped)', () => {
  let state: Awaited<ReturnType<typeof tempState>>;
  let platform: LocalPlatform;
  let paths: LocalPaths;
  let controller: LocalController;
  let now = T;
  /** One controller pass at T + `at`; the kinds of what it did. */
  const pass = async (at: number): Promise<string[]> => {
    now = T + at;
    return (await controller.reconcile()).map((action) => `${action.kind} ${action.kind === 'create' ? `${action.set.name}-${action.ordinal}` : action.pod.name}`);
  };

  beforeAll(async () => {
    state = await tempState();
    await deployLocal({ stateDir: state.dir, replicas: 1, image: 'relay:1', servicePort: 0 });
    paths = localPaths(state.dir);
    const service = (await readService(paths))!;
    process.kill(service.pid, 'SIGTERM');
    await eventually('the service process to stop', () => exited(service.pid));
    platform = await openLocalPlatform({ stateDir: state.dir });
    controller = new LocalController({ paths, pki: platform.pki, log: pino({ level: 'silent' }), now: () => now });
  }, 60_000);

  afterAll(async () => {
    await platform?.close();
    await state?.cleanup();
  }, 60_000);

  test('a relay that keeps crashing: restarted at once, then after 10s, 20s, 40s ... 5m; counted; forgotten after 10 minutes of running', async () => {
    expect(await pass(0)).toEqual([]);
    const first = await crash(paths, 'relay-a-0');
    expect(await pass(0)).toEqual(['restart relay-a-0']);
    const restarted = await record(paths, 'relay-a-0');
    expect(restarted).toMatchObject({ restartCount: 1, restartBackoff: { delayMs: 10_000, lastUpdate: T }, waiting: null });
    expect(restarted.pid).not.toBe(first);
    expect(processMatches(restarted.pid, relayMarkers(platform.pki, 'relay-a-0'))).toBe(true);
    // The run that crashed keeps its log, as `kubectl logs --previous`.
    expect(await readFile(previousPodLog(paths, 'relay-a-0'), 'utf8')).toContain('"msg":"local platform: starting relay"');

    let since = 0;
    const waits: number[] = [];
    for (let restarts = 2; restarts <= 8; restarts++) {
      const delay = (await record(paths, 'relay-a-0')).restartBackoff!.delayMs;
      waits.push(delay);
      await crash(paths, 'relay-a-0');
      expect(await pass(since + 1)).toEqual(['back-off relay-a-0']);
      expect((await record(paths, 'relay-a-0')).waiting).toEqual({
        reason: CRASH_LOOP_BACK_OFF,
        message: `back-off ${formatDuration(delay)} restarting failed relay pod=relay-a-0`,
        until: T + since + delay,
      });
      expect(await pass(since + delay - 1)).toEqual([]);
      expect(await pass(since + delay)).toEqual(['restart relay-a-0']);
      since += delay;
      expect(await record(paths, 'relay-a-0')).toMatchObject({ restartCount: restarts, restartBackoff: { lastUpdate: T + since }, waiting: null });
    }
    expect(waits).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);

    // Ten minutes of running later, a crash is restarted at once and the delay starts over.
    expect(await pass(since + 600_001)).toEqual([]);
    await crash(paths, 'relay-a-0');
    expect(await pass(since + 600_001)).toEqual(['restart relay-a-0']);
    expect(await record(paths, 'relay-a-0')).toMatchObject({ restartCount: 9, restartBackoff: { delayMs: 10_000, lastUpdate: T + since + 600_001 } });
  });

  test('a relay of a set an update created comes back awaiting restore; a record without a pid gets its running relay adopted, not a second one', async () => {
    const template = (await platform.getSet('relay-a'))!;
    await platform.createSet({ name: 'relay-b', replicas: 1, image: 'relay:2', template, annotations: {} });
    await crash(paths, 'relay-b-0');
    expect(await pass(700_000)).toEqual(['restart relay-b-0']);
    const pod = await eventually('relay-b-0 running again', async () => (await platform.listPods('relay-b')).find((p) => p.phase === 'Running'));
    expect(pod.restartCount).toBe(1);
    expect((await platform.relay.status(pod)).state).toBe('awaiting-restore');

    // As if the process that started it died between the start and writing the pid.
    const { pid } = await record(paths, 'relay-b-0');
    await writeFile(podFile(paths, 'relay-b-0'), JSON.stringify({ ...(await record(paths, 'relay-b-0')), pid: null }));
    expect(await pass(700_001)).toEqual(['start relay-b-0']);
    expect((await record(paths, 'relay-b-0')).pid).toBe(pid);
    expect(findProcesses(relayMarkers(platform.pki, 'relay-b-0'))).toEqual([pid]);
  });

  test('a deleted set stays deleted: its pods are not made again, a terminating relay that exits is not restarted', async () => {
    const b = (await record(paths, 'relay-b-0')).pid!;
    await platform.deleteSet('relay-b');
    expect(exited(b)).toBe(true);
    expect(await pass(700_002)).toEqual([]);
    expect(await listJson(paths.pods)).toEqual(['relay-a-0']);
    expect(findProcesses(relayMarkers(platform.pki, 'relay-b-0'))).toEqual([]);

    // A deleteSet whose caller died after marking the pods: the controller finishes it, and never restarts them.
    const template = (await platform.getSet('relay-a'))!;
    await platform.createSet({ name: 'relay-b', replicas: 1, image: 'relay:2', template, annotations: {} });
    const terminating = await record(paths, 'relay-b-0');
    await rm(setFile(paths, 'relay-b'));
    await writeFile(podFile(paths, 'relay-b-0'), JSON.stringify({ ...terminating, deletingAt: T + 700_003 }));
    await crash(paths, 'relay-b-0');
    expect(await pass(700_003)).toEqual(['reap relay-b-0']);
    expect(await pass(700_004)).toEqual([]);
    expect(await listJson(paths.pods)).toEqual(['relay-a-0']);

    // A pod whose set file was removed without marking it (a deleter killed in between) is terminated.
    await platform.createSet({ name: 'relay-b', replicas: 1, image: 'relay:2', template, annotations: {} });
    const orphan = (await record(paths, 'relay-b-0')).pid!;
    await rm(setFile(paths, 'relay-b'));
    expect(await pass(700_005)).toEqual(['orphaned relay-b-0']);
    await eventually('the orphaned relay to stop on SIGTERM', () => exited(orphan));
    expect(await pass(700_006)).toEqual(['reap relay-b-0']);
    expect(await listJson(paths.pods)).toEqual(['relay-a-0']);
  });
  test('a pod whose record was removed while its relay runs: that relay is stopped first, then the pod is made again', async () => {
    const { pid } = await record(paths, 'relay-a-0');
    await rm(podFile(paths, 'relay-a-0'));
    expect(await pass(800_000)).toEqual([]);
    await eventually('the unrecorded relay to stop on SIGTERM', () => exited(pid!));
    expect(await pass(800_001)).toEqual(['create relay-a-0']);
    const made = await record(paths, 'relay-a-0');
    expect(made).toMatchObject({ restartCount: 0 });
    expect(findProcesses(relayMarkers(platform.pki, 'relay-a-0'))).toEqual([made.pid]);
  });
});

describe("the service process's controller", () => {
  let state: Awaited<ReturnType<typeof tempState>>;
  let platform: LocalPlatform;
  let paths: LocalPaths;

  beforeAll(async () => {
    state = await tempState();
    // The kubelet's back-off at half: 5 s doubling to 2m30s.
    await deployLocal({ stateDir: state.dir, replicas: 2, image: 'relay:1', servicePort: 0, restartBackoffScale: 0.5 });
    paths = localPaths(state.dir);
    platform = await openLocalPlatform({ stateDir: state.dir });
  }, 60_000);

  afterAll(async () => {
    await platform?.close();
    await state?.cleanup();
  }, 60_000);

  const podInfo = async (set: string, name: string) => (await platform.listPods(set)).find((pod) => pod.name === name);

  test('restarts a relay that crashed at once, holds it in CrashLoopBackOff when it crashes again within its back-off (listPods says so), then restarts it', async () => {
    const first = await crash(paths, 'relay-a-0');
    // Restarted: crashed again at once, well within the 5 s back-off its restart started.
    const restarted = await eventually('relay-a-0 restarted', async () => {
      const pod = await readPod(paths, 'relay-a-0');
      return pod?.pid != null && pod.pid !== first && processMatches(pod.pid, relayMarkers(platform.pki, 'relay-a-0')) ? pod : null;
    });
    expect(restarted).toMatchObject({ restartCount: 1, waiting: null });
    await crash(paths, 'relay-a-0');
    const held = await eventually('relay-a-0 in CrashLoopBackOff', async () => {
      const pod = await podInfo('relay-a', 'relay-a-0');
      return pod?.waiting?.reason === CRASH_LOOP_BACK_OFF ? pod : null;
    });
    expect(held).toMatchObject({ phase: 'Pending', ready: false, mgmtUrl: null, restartCount: 1 });
    expect(held.waiting!.message).toBe('back-off 5s restarting failed relay pod=relay-a-0');
    const again = await eventually('relay-a-0 restarted after its back-off, and ready', async () => {
      const pod = await podInfo('relay-a', 'relay-a-0');
      return pod?.ready === true ? pod : null;
    });
    expect(again).toMatchObject({ phase: 'Running', restartCount: 2, waiting: null });
    expect((await platform.relay.status(again)).state).toBe('serving');
    expect((await podInfo('relay-a', 'relay-a-1'))?.restartCount).toBe(0);
  }, 60_000);

  test('survives a torn state folder: unreadable files are left alone and reported once, other relays are still restarted', async () => {
    const service = (await readService(paths))!;
    await writeFile(setFile(paths, 'relay-x'), '{"version": 1, "name": "relay-x", "repl');
    await writeFile(podFile(paths, 'relay-x-0'), 'not json at all');
    await writeFile(podFile(paths, 'relay-a-7'), JSON.stringify({ version: 1, name: 'relay-a-7' }));
    await writeFile(`${paths.pods}/.relay-a-1.json.123.abcdef.tmp`, '{"half": ');
    const crashed = await crash(paths, 'relay-a-1');
    const back = await eventually('relay-a-1 restarted despite the torn files', async () => {
      const pod = await readPod(paths, 'relay-a-1');
      return pod !== null && pod.pid !== crashed && processMatches(pod.pid, relayMarkers(platform.pki, 'relay-a-1')) ? pod : null;
    });
    expect(back.restartCount).toBe(1);
    expect(processMatches(service.pid, serviceMarkers(state.dir))).toBe(true);
    expect((await readService(paths))?.pid).toBe(service.pid);
    // Nothing was made over or for the files it could not read.
    expect(await readFile(podFile(paths, 'relay-x-0'), 'utf8')).toBe('not json at all');
    expect((await listJson(paths.pods)).sort()).toEqual(['relay-a-0', 'relay-a-1', 'relay-a-7', 'relay-x-0']);
    const warnings = (await readFile(serviceLog(paths), 'utf8')).split('\n').filter((line) => line.includes('cannot read'));
    expect(warnings.filter((line) => line.includes('cannot read set relay-x'))).toHaveLength(1);
    expect(warnings.filter((line) => line.includes('cannot read pod relay-x-0'))).toHaveLength(1);
    await Promise.all([rm(setFile(paths, 'relay-x')), rm(podFile(paths, 'relay-x-0')), rm(podFile(paths, 'relay-a-7'))]);
  }, 60_000);
});
