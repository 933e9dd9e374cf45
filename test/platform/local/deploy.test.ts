import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
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
} from '../../../orchestrator/platform/local/index.ts';
import { closeAll, connectDevices, request, startLoad, type LoadResult } from '../../helpers/devices.ts';
import { alivePids, recordedPids, tempState } from './helpers.ts';

async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return String((error as { code?: unknown }).code);
  }
}

/**
 * A newcomer's first run, end to end: deploy, devices through the service front, an update by the orchestrator
 * while they talk, teardown.
 *
 * One replica: with more, the devices whose flows the front (like kube-proxy) moves once the old set is deleted
 * land on any new relay, and the one not holding their session drops them (relay_drops_total{reason=
 * "unknown-session"}); the relays do not forward records of sessions they do not hold. Multi-replica behaviour
 * of the platform itself is covered by contract.test.ts.
 */
describe('local platform: deploy, devices, an update, teardown', () => {
  let state: Awaited<ReturnType<typeof tempState>>;
  let info: LocalClusterInfo;
  let platform: LocalPlatform | undefined;
  let clients: DtlsClient[] = [];
  const deploy = { replicas: 1, image: 'relay:1', servicePort: 0, affinityMs: 1_500 };

  beforeAll(async () => {
    state = await tempState();
    info = await deployLocal({ stateDir: state.dir, ...deploy });
  });

  afterAll(async () => {
    await closeAll(clients);
    await platform?.close();
    await state?.cleanup();
  });

  test('deploy is idempotent, refuses a different fleet or size, and says where devices connect', async () => {
    expect(info).toMatchObject({ name: 'relay', sets: ['relay-a'], serviceRunning: true, service: { address: '127.0.0.1' } });
    expect(info.service.port).toBeGreaterThan(0);
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

  test('devices talk through the service front', async () => {
    clients = await connectDevices({ port: info.service.port, serverPublicKey: info.serverPublicKey, count: 8, concurrency: 4 });
    const replies = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`hello ${i}`))));
    expect(replies.map((r) => r.reply.toString())).toEqual(clients.map((_, i) => `hello ${i}`));
    platform = await openLocalPlatform({ stateDir: state.dir });
    const sessions = await Promise.all((await platform.listPods('relay-a')).map(async (pod) => (await platform!.relay.status(pod)).sessions));
    expect(sessions).toEqual([8]);
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
    expect(result.code === 'succeeded' && result.moved.map((m) => m.sessions)).toEqual([8]);
    // Stragglers really happened: flows stayed on the old relay and were tunnelled until it was deleted.
    expect(events.some((e) => e.type === 'drain-progress' && e.forwardedDatagrams > 0)).toBe(true);
    expect(seen.errors).toBe(0);
    expect(seen.answered).toBe(seen.requests);
    expect(clients.every((client) => client.stats.handshakes === 1 && client.stats.replaysDropped === 0)).toBe(true);
    expect(await platform!.getSet('relay-a')).toBeNull();
    expect((await platform!.getSet('relay-b'))?.image).toBe('relay:2');
    const pods = await platform!.listPods('relay-b');
    expect(pods.map((pod) => [pod.name, pod.ready, pod.labels])).toEqual([['relay-b-0', true, { app: 'relay' }]]);
    // After the update the devices reach the new relays directly.
    const after = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`after ${i}`))));
    expect(after.map((r) => r.reply.toString())).toEqual(clients.map((_, i) => `after ${i}`));
    expect((await localClusterInfo({ stateDir: state.dir }))?.sets).toEqual(['relay-b']);
  });

  test('teardown stops every relay and the service process and keeps only the PKI', async () => {
    await platform?.close();
    platform = undefined;
    const pids = await recordedPids(state.dir);
    expect(pids.length).toBe(2);
    expect(alivePids(pids)).toEqual(pids);
    await teardownLocal({ stateDir: state.dir });
    expect(alivePids(pids)).toEqual([]);
    expect(await localClusterInfo({ stateDir: state.dir })).toBeNull();
    await expect(access(join(state.dir, 'local'))).rejects.toThrow(/ENOENT/);
    expect(await readdir(join(state.dir, 'pki'))).toContain('dtls-key.pem');
    await teardownLocal({ stateDir: state.dir });
  });
});
