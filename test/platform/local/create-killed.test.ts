import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { DtlsClient } from '../../../client/index.ts';
import { runUpdate, type RunResult, type UpdateEvent } from '../../../orchestrator/index.ts';
import { deployLocal, openLocalPlatform, type LocalClusterInfo, type LocalPlatform } from '../../../orchestrator/platform/local/index.ts';
import { localPaths, serviceLog } from '../../../orchestrator/platform/local/state.ts';
import { closeAll, connectDevices, request } from '../../support/devices.ts';
import { tempState } from './helpers.ts';

const UPDATE_CHILD = fileURLToPath(new URL('./update-child.ts', import.meta.url));

/** Runs update-child.ts; resolves with its events and how it ended. */
function killedUpdate(stateDir: string, killAfter: string): Promise<{ signal: NodeJS.Signals | null; events: UpdateEvent[] }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [UPDATE_CHILD, stateDir, 'relay:2', killAfter], { timeout: 30_000 }, (error, stdout) => {
      const events = stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as UpdateEvent);
      resolve({ signal: (error as { signal?: NodeJS.Signals } | null)?.signal ?? null, events });
    });
  });
}

/**
 * relayctl killed inside `create` (issue 11): right after it wrote the new set and the record of its first pod,
 * before that pod's relay started and before the other pods existed. The service process's controller completes
 * the set (as a StatefulSet controller would), so the rerun finds every pod and finishes the update; before the
 * controller, it waited out the pod-start deadline for pods nobody would start and rolled back.
 */
describe('an update killed inside create, then run again', () => {
  let state: Awaited<ReturnType<typeof tempState>>;
  let info: LocalClusterInfo;
  let platform: LocalPlatform;
  let clients: DtlsClient[] = [];

  beforeAll(async () => {
    state = await tempState();
    info = await deployLocal({ stateDir: state.dir, replicas: 3, image: 'relay:1', servicePort: 0, affinityMs: 60_000 });
    platform = await openLocalPlatform({ stateDir: state.dir });
    clients = await connectDevices({ port: info.service.port, serverPublicKey: info.serverPublicKey, count: 6, concurrency: 3 });
    await Promise.all(clients.map((client, i) => request(client, Buffer.from(`before ${i}`))));
  }, 60_000);

  afterAll(async () => {
    await closeAll(clients);
    await platform?.close();
    await state?.cleanup();
  }, 60_000);

  test('the controller makes the missing pods at once and the rerun finishes the update, every session moved', async () => {
    const killed = await killedUpdate(state.dir, 'pods/relay-b-0.json');
    expect(killed.signal).toBe('SIGKILL');
    expect(killed.events.filter((event) => event.type === 'step-started').map((event) => event.step)).toEqual(['lock', 'preflight', 'mark', 'create']);
    expect(killed.events.some((event) => event.type === 'step-finished' && event.step === 'create')).toBe(false);

    // The rerun waits at most 3 s for the dead run's lease; a pod-start deadline of 60 s instead of 5 minutes makes
    // a regression fail (rolled back) rather than hang.
    const events: UpdateEvent[] = [];
    const result: RunResult = await runUpdate(
      { name: 'relay', image: 'relay:2', owner: 'rerun', lockWaitMs: 10_000, drainQuietMs: 500, timeouts: { podStartMs: 60_000, drainMs: 5_000 } },
      platform,
      (event) => events.push(event),
    );
    expect(result, JSON.stringify(events.filter((event) => event.type === 'error' || event.type === 'waiting'))).toMatchObject({
      code: 'succeeded',
      outcome: 'updated',
      from: 'relay-a',
      to: 'relay-b',
    });
    const moved = result.code === 'succeeded' ? result.moved : [];
    expect(moved.map((entry) => [entry.source, entry.target])).toEqual([0, 1, 2].map((n) => [`relay-a-${n}`, `relay-b-${n}`]));
    expect(moved.reduce((sum, entry) => sum + (entry.sessions ?? 0), 0)).toBe(clients.length);
    expect(events.find((event) => event.type === 'run-resumed')).toMatchObject({ step: 'create', previousOwner: 'killed-run' });
    expect(events.some((event) => event.type === 'error' || event.type === 'rollback-started')).toBe(false);

    // Exactly what the killed run left undone, done by the controller in one pass: relay-b-1 and relay-b-2 made,
    // relay-b-0's relay started (its record had no pid); the rerun made none of them (createSet was not called
    // again). (Removing the old set's pods once their relays stopped is deleteSet's or the controller's, whichever
    // comes first.)
    const actions = (await readFile(serviceLog(localPaths(state.dir)), 'utf8'))
      .split('\n')
      .filter((line) => line.includes('"loop":"controller"'))
      .map((line) => JSON.parse(line) as { msg: string; pod?: string })
      .filter((line) => line.pod?.startsWith('relay-b-'))
      .map((line) => `${line.msg} ${line.pod}`);
    expect(actions).toEqual(['created missing pod relay-b-1', 'created missing pod relay-b-2', 'started relay that never ran relay-b-0']);

    const replies = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`after ${i}`))));
    expect(replies.map((reply) => reply.reply.toString())).toEqual(clients.map((_, i) => `after ${i}`));
    expect(clients.every((client) => client.stats.handshakes === 1)).toBe(true);
  }, 120_000);
});
