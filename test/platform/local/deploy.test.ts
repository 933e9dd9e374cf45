import { execFile } from 'node:child_process';
import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { DtlsClient } from '../../../client/index.ts';
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
import { closeAll, connectDevices, request } from '../../support/devices.ts';
import { eventually } from '../../support/eventually.ts';
import { alivePids, recordedPids, running, tempState } from './helpers.ts';

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
 * A newcomer's first run: deploy (from a process that exits), devices through the service front, recovery by
 * deploying again, teardown. Once per network mode. The update under live devices is test/e2e/local-update.test.ts
 * (the default mode); the Platform contract, restores and straggler tunnels included, runs in the shared mode
 * (contract.test.ts), so each mode moves sessions between relays somewhere in the suite.
 */
describe.each(['pod-ips', 'shared'] as const)('local platform (%s): deploy, devices, recovery, teardown', (network) => {
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
    expect(await errorCode(deployLocal({ stateDir: state.dir, ...deploy, restartBackoffScale: 0 }))).toBe('ERR_LOCAL_INVALID_OPTION');
    expect(await errorCode(openLocalPlatform({ stateDir: join(state.dir, 'nothing-here') }))).toBe('ERR_LOCAL_NOT_DEPLOYED');
  });

  test('devices talk through the service front, spread over the ready relays', async () => {
    clients = await connectDevices({ port: info.service.port, serverPublicKey: info.serverPublicKey, count: 8, concurrency: 4 });
    const replies = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`hello ${i}`))));
    expect(replies.map((r) => r.reply.toString())).toEqual(clients.map((_, i) => `hello ${i}`));
    const sessions = await Promise.all((await platform!.listPods('relay-a')).map(async (pod) => (await platform!.relay.status(pod)).sessions));
    expect(sessions).toEqual([4, 4]);
  });

  test('deploy again brings back a service that was stopped (SIGTERM, clean exit) and a relay that died', async () => {
    const paths = localPaths(state.dir);
    const service = (await readService(paths))!;
    process.kill(service.pid, 'SIGTERM');
    // A clean stop removes its own record.
    await eventually('the service to stop', async () => !running(service.pid) && (await readService(paths)) === null);
    expect((await localClusterInfo({ stateDir: state.dir }))?.serviceRunning).toBe(false);
    const relay = (await readPod(paths, 'relay-a-0'))!;
    process.kill(relay.pid!, 'SIGKILL');
    const failed = await eventually('relay-a-0 Failed', async () => {
      const [first] = await platform!.listPods('relay-a');
      return first?.phase === 'Failed' ? first : null;
    });
    // Not ready and unreachable: the orchestrator never talks to a relay that is not there.
    expect(failed).toMatchObject({ ready: false, mgmtUrl: null });

    const back = await deployLocal({ stateDir: state.dir, ...deploy });
    expect(back).toMatchObject({ serviceRunning: true, service: info.service, sets: ['relay-a'] });
    const pods = await platform!.listPods('relay-a');
    expect(pods.map((pod) => [pod.name, pod.phase, pod.ready])).toEqual([['relay-a-0', 'Running', true], ['relay-a-1', 'Running', true]]);
    // The restarted relay serves at once: nobody holds sessions it could restore (its devices handshake again).
    expect((await platform!.relay.status(pods[0]!)).state).toBe('serving');
    expect((await readPod(paths, 'relay-a-0'))!.pid).not.toBe(relay.pid);
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
