import { execFile } from 'node:child_process';
import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { DtlsClient } from '../../../client/index.ts';
import { runUpdate, type RunResult, type UpdateEvent } from '../../../orchestrator/index.ts';
import {
  deployLocal,
  localClusterInfo,
  openLocalPlatform,
  teardownLocal,
  type LocalClusterInfo,
  type LocalPlatform,
  type NetworkMode,
} from '../../../orchestrator/platform/local/index.ts';
import { localPaths, readPod, readService } from '../../../orchestrator/platform/local/state.ts';
import { closeAll, connectDevices, request, startLoad, type LoadResult } from '../../support/devices.ts';
import { alivePids, recordedPids, running, tempState, waitFor } from './helpers.ts';

const DEPLOY_CHILD = fileURLToPath(new URL('./deploy-child.ts', import.meta.url));

async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return String((error as { code?: unknown }).code);
  }
}

/** Deploys from a separate process that then exits, as `relayctl deploy` does. */
async function deployInChild(stateDir: string, network: NetworkMode): Promise<LocalClusterInfo> {
  const { stdout } = await promisify(execFile)(process.execPath, [DEPLOY_CHILD, stateDir, network], { timeout: 25_000 });
  const parsed = JSON.parse(stdout) as LocalClusterInfo & { serverPublicKey: string };
  return { ...parsed, serverPublicKey: Buffer.from(parsed.serverPublicKey, 'base64') };
}

/**
 * A newcomer's first run, end to end: deploy (from a process that exits), devices through the service front, an
 * update by the orchestrator while they talk, recovery by deploying again, teardown. Once per network mode.
 *
 * Two replicas, so that once the old set is deleted the front (like kube-proxy) moves the flows still pinned to it
 * onto either new relay: the one that does not hold a device's session claims it from its sibling, found through
 * the peers file the platform keeps.
 */
describe.each(['pod-ips', 'shared'] as const)('local platform (%s): deploy, devices, an update, recovery, teardown', (network) => {
  let state: Awaited<ReturnType<typeof tempState>>;
  let info: LocalClusterInfo;
  let platform: LocalPlatform | undefined;
  let clients: DtlsClient[] = [];
  const deploy = { replicas: 2, image: 'relay:1', servicePort: 0, affinityMs: 1_500, network };

  beforeAll(async () => {
    state = await tempState();
    info = await deployInChild(state.dir, network);
  });

  afterAll(async () => {
    await closeAll(clients);
    await platform?.close();
    await state?.cleanup();
  });

  test('the cluster outlives the process that deployed it; deploy again is idempotent and refuses other fleets or sizes', async () => {
    expect(info).toMatchObject({ name: 'relay', sets: ['relay-a'], serviceRunning: true, network, service: { address: '127.0.0.1' } });
    expect(info.service.port).toBeGreaterThan(0);
    platform = await openLocalPlatform({ stateDir: state.dir });
    const pods = await platform.listPods('relay-a');
    expect(pods.map((pod) => [pod.name, pod.phase, pod.ready])).toEqual([['relay-a-0', 'Running', true], ['relay-a-1', 'Running', true]]);
    expect(new URL(pods[0]!.mgmtUrl!).hostname).toMatch(network === 'shared' ? /^127\.0\.0\.1$/ : /^127\.\d+\.\d+\.1$/);

    const again = await deployLocal({ stateDir: state.dir, ...deploy });
    expect(again.service).toEqual(info.service);
    expect(again.upstream).toEqual(info.upstream);
    expect(again.serverPublicKey.equals(info.serverPublicKey)).toBe(true);
    expect(await localClusterInfo({ stateDir: state.dir })).toEqual(again);
    expect(await errorCode(deployLocal({ stateDir: state.dir, ...deploy, replicas: 3 }))).toBe('ERR_LOCAL_MISMATCH');
    expect(await errorCode(deployLocal({ stateDir: state.dir, ...deploy, image: 'relay:7' }))).toBe('ERR_LOCAL_MISMATCH');
    expect(await errorCode(deployLocal({ stateDir: state.dir, ...deploy, name: 'other' }))).toBe('ERR_LOCAL_OTHER_FLEET');
    expect(await errorCode(deployLocal({ stateDir: state.dir, ...deploy, replicas: 0 }))).toBe('ERR_LOCAL_INVALID_OPTION');
    expect(await errorCode(openLocalPlatform({ stateDir: join(state.dir, 'nothing-here') }))).toBe('ERR_LOCAL_NOT_DEPLOYED');
  });

  test('devices talk through the service front, spread over the ready relays', async () => {
    clients = await connectDevices({ port: info.service.port, serverPublicKey: info.serverPublicKey, count: 8, concurrency: 4 });
    const replies = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`hello ${i}`))));
    expect(replies.map((r) => r.reply.toString())).toEqual(clients.map((_, i) => `hello ${i}`));
    const sessions = await Promise.all((await platform!.listPods('relay-a')).map(async (pod) => (await platform!.relay.status(pod)).sessions));
    expect(sessions).toEqual([4, 4]);
  });

  test('the orchestrator updates the fleet while devices talk: every session moves, no request is lost, nobody handshakes again', async () => {
    const events: UpdateEvent[] = [];
    const load = startLoad(clients, { pauseMs: 50 });
    let result: RunResult;
    let seen: LoadResult;
    try {
      result = await runUpdate(
        {
          name: 'relay',
          image: 'relay:2',
          owner: 'test@local',
          drainQuietMs: 1_000,
          pollIntervalMs: 200,
          lockTtlMs: 6_000,
          // Devices that never pause keep their flows on the old relay: the drain ends by its timeout.
          timeouts: { drainMs: 2_000, podStartMs: 15_000, readinessMs: 10_000, deleteMs: 15_000 },
        },
        platform!,
        (event) => events.push(event),
      );
    } finally {
      // Whatever the update did, so a failure cannot leave devices looping.
      seen = await load.stop();
    }
    expect(result, JSON.stringify(events.filter((e) => e.type === 'error' || e.type === 'warning'))).toMatchObject({
      code: 'succeeded',
      outcome: 'updated',
      from: 'relay-a',
      to: 'relay-b',
    });
    expect(result.code === 'succeeded' && result.moved.map((m) => m.sessions)).toEqual([4, 4]);
    // Stragglers really happened: flows stayed on the old relay and were tunnelled until it was deleted.
    expect(events.some((e) => e.type === 'drain-progress' && e.forwardedDatagrams > 0)).toBe(true);
    expect(seen.errors).toBe(0);
    expect(seen.answered).toBe(seen.requests);
    expect(clients.every((client) => client.stats.handshakes === 1 && client.stats.replaysDropped === 0)).toBe(true);
    expect(await platform!.getSet('relay-a')).toBeNull();
    expect((await platform!.getSet('relay-b'))?.image).toBe('relay:2');
    const pods = await platform!.listPods('relay-b');
    expect(pods.map((pod) => [pod.name, pod.ready, pod.labels])).toEqual([
      ['relay-b-0', true, { app: 'relay' }],
      ['relay-b-1', true, { app: 'relay' }],
    ]);
    // After the update the devices reach the new relays directly.
    const after = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`after ${i}`))));
    expect(after.map((r) => r.reply.toString())).toEqual(clients.map((_, i) => `after ${i}`));
    expect((await localClusterInfo({ stateDir: state.dir }))?.sets).toEqual(['relay-b']);
  });

  test('deploy again brings back a service that was stopped (SIGTERM, clean exit) and a relay that died', async () => {
    const paths = localPaths(state.dir);
    const service = (await readService(paths))!;
    process.kill(service.pid, 'SIGTERM');
    // A clean stop removes its own record.
    await waitFor('the service to stop', async () => !running(service.pid) && (await readService(paths)) === null);
    expect((await localClusterInfo({ stateDir: state.dir }))?.serviceRunning).toBe(false);
    const relay = (await readPod(paths, 'relay-b-0'))!;
    process.kill(relay.pid!, 'SIGKILL');
    await waitFor('relay-b-0 Failed', async () => (await platform!.listPods('relay-b'))[0]?.phase === 'Failed');

    const back = await deployLocal({ stateDir: state.dir, ...deploy, image: 'relay:2' });
    expect(back).toMatchObject({ serviceRunning: true, service: info.service, sets: ['relay-b'] });
    const pods = await platform!.listPods('relay-b');
    expect(pods.map((pod) => [pod.name, pod.phase, pod.ready])).toEqual([['relay-b-0', 'Running', true], ['relay-b-1', 'Running', true]]);
    // The lone set's relay serves at once: nobody holds sessions it could restore.
    expect((await platform!.relay.status(pods[0]!)).state).toBe('serving');
    expect((await readPod(paths, 'relay-b-0'))!.pid).not.toBe(relay.pid);
  });

  test('teardown stops every relay and the service process and keeps only the PKI', async () => {
    await platform?.close();
    platform = undefined;
    const pids = await recordedPids(state.dir);
    expect(pids.length).toBe(3);
    expect(alivePids(pids)).toEqual(pids);
    await teardownLocal({ stateDir: state.dir });
    expect(alivePids(pids)).toEqual([]);
    expect(await localClusterInfo({ stateDir: state.dir })).toBeNull();
    await expect(access(join(state.dir, 'local'))).rejects.toThrow(/ENOENT/);
    expect(await readdir(join(state.dir, 'pki'))).toContain('dtls-key.pem');
    await teardownLocal({ stateDir: state.dir });
  });
});
