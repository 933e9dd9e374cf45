import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { DtlsClient } from '../../../client/index.ts';
import { ErrorCode, isLockHeldError } from '../../../orchestrator/errors.ts';
import { deployLocal, openLocalPlatform, type LocalClusterInfo, type LocalPlatform } from '../../../orchestrator/platform/local/index.ts';
import { localPaths, peersFile, podFile, readPod } from '../../../orchestrator/platform/local/state.ts';
import type { PodInfo, PodPhase, SetInfo } from '../../../orchestrator/platform/platform.ts';
import { closeAll, connectDevices, request } from '../../support/devices.ts';
import { alivePids, codeOf, sleep, tempState, waitFor } from './helpers.ts';

/**
 * The behaviours the orchestrator relies on (the same ones test/fakes/platform.ts models), against real relayd
 * processes on loopback. Tests run in order and build on each other: the deployed set relay-a, then relay-b.
 */
describe('local platform: the Platform contract against real relays', () => {
  let state: Awaited<ReturnType<typeof tempState>>;
  let info: LocalClusterInfo;
  let platform: LocalPlatform;
  let clients: DtlsClient[] = [];

  const pods = async (set: string): Promise<PodInfo[]> => platform.listPods(set);
  const pod = async (name: string): Promise<PodInfo> => {
    const found = (await pods(name.replace(/-\d+$/, ''))).find((candidate) => candidate.name === name);
    if (found === undefined) throw new Error(`no pod ${name}`);
    return found;
  };
  const setA = async (): Promise<SetInfo> => (await platform.getSet('relay-a'))!;
  /** The relays' peer list (relayd --peers-file), as host:port lines. */
  const peers = async (): Promise<string[]> => (await readFile(peersFile(localPaths(state.dir)), 'utf8')).split('\n').filter((line) => line !== '').sort();
  const endpoints = async (...sets: string[]): Promise<string[]> =>
    (await Promise.all(sets.map((set) => pods(set)))).flat().map((p) => new URL(p.mgmtUrl!).host).sort();

  beforeAll(async () => {
    state = await tempState();
    info = await deployLocal({ stateDir: state.dir, replicas: 2, image: 'relay:1', servicePort: 0, affinityMs: 60_000 });
    platform = await openLocalPlatform({ stateDir: state.dir });
  });

  afterAll(async () => {
    await closeAll(clients);
    await platform?.close();
    await state?.cleanup();
  });

  test('the deployed set: labels and image recorded, each pod running and ready on a loopback address of its own', async () => {
    expect(await setA()).toMatchObject({ name: 'relay-a', replicas: 2, image: 'relay:1', labels: { app: 'relay' }, annotations: {} });
    expect(await platform.getSet('relay-b')).toBeNull();
    expect(await platform.getSet('../cluster')).toBeNull();
    expect(await platform.listPods('relay-b')).toEqual([]);
    const listed = await pods('relay-a');
    expect(listed.map((p) => [p.name, p.ordinal, p.phase, p.ready, p.image])).toEqual([
      ['relay-a-0', 0, 'Running', true, 'relay:1'],
      ['relay-a-1', 1, 'Running', true, 'relay:1'],
    ]);
    const [url0, url1] = listed.map((p) => new URL(p.mgmtUrl!));
    expect(url0!.hostname).toMatch(/^127\.\d+\.\d+\.1$/);
    expect(url1!.hostname).toBe(url0!.hostname.replace(/\.1$/, '.2'));
    expect(url0!.port).toBe('8443');
    const status = await platform.relay.status(listed[0]!);
    expect(status).toMatchObject({ pod: 'relay-a-0', state: 'serving', ready: true, sessions: 0, forwardedDatagrams: 0, lastForwardAt: null });
    expect(info.serverPublicKey.length).toBeGreaterThan(0);
  });

  test('createSet: relays start awaiting restore (running, not ready) on their own addresses; a second create is refused', async () => {
    const template = await setA();
    const created = await platform.createSet({ name: 'relay-b', replicas: 2, image: 'relay:2', template, annotations: { 'relayctl.dev/update-id': 'u1' } });
    expect(created).toMatchObject({ name: 'relay-b', replicas: 2, image: 'relay:2', labels: { app: 'relay' }, annotations: { 'relayctl.dev/update-id': 'u1' } });
    expect(created.resourceVersion).not.toBe(template.resourceVersion);
    expect(await codeOf(platform.createSet({ name: 'relay-b', replicas: 1, image: 'relay:3', template, annotations: {} }))).toBe(ErrorCode.AlreadyExists);

    const seen = new Set<PodPhase>();
    const running = await waitFor('relay-b pods running', async () => {
      const listed = await pods('relay-b');
      for (const p of listed) seen.add(p.phase);
      return listed.length === 2 && listed.every((p) => p.phase === 'Running') ? listed : null;
    });
    expect([...seen].every((phase) => phase === 'Pending' || phase === 'Running')).toBe(true);
    expect(running.map((p) => [p.name, p.ready, p.image, p.labels])).toEqual([
      ['relay-b-0', false, 'relay:2', { app: 'relay' }],
      ['relay-b-1', false, 'relay:2', { app: 'relay' }],
    ]);
    // Its own /24: the old and the new pod of one ordinal never share an address.
    const a0 = new URL((await pod('relay-a-0')).mgmtUrl!).hostname;
    const b0 = new URL(running[0]!.mgmtUrl!).hostname;
    expect(b0.split('.').slice(0, 3)).not.toEqual(a0.split('.').slice(0, 3));
    expect((await platform.relay.status(running[0]!)).state).toBe('awaiting-restore');
    // Every relay can find every other one, to claim the session of a device the front moved to it.
    expect(await peers()).toEqual(await endpoints('relay-a', 'relay-b'));
    // The image is a label on local: it is in the pod's log.
    expect(await readFile(`${info.logs}/relay-b-0.log`, 'utf8')).toContain('"image":"relay:2"');
  });

  test('annotations: every write changes the resourceVersion, a stale one conflicts, pod labels leave it alone', async () => {
    const before = await setA();
    const written = await platform.patchSetAnnotations('relay-a', { 'relayctl.dev/update': 'v1', keep: 'k' }, before.resourceVersion);
    expect(written.annotations).toEqual({ 'relayctl.dev/update': 'v1', keep: 'k' });
    expect(written.resourceVersion).not.toBe(before.resourceVersion);
    expect(await codeOf(platform.patchSetAnnotations('relay-a', { 'relayctl.dev/update': 'v2' }, before.resourceVersion))).toBe(ErrorCode.Conflict);
    expect((await setA()).annotations['relayctl.dev/update']).toBe('v1');
    const removed = await platform.patchSetAnnotations('relay-a', { 'relayctl.dev/update': null, keep: null });
    expect(removed.annotations).toEqual({});
    await platform.patchPodLabels('relay-a-1', { touched: 'yes' });
    await platform.patchPodLabels('relay-a-1', { touched: null });
    expect((await setA()).resourceVersion).toBe(removed.resourceVersion);
    expect(await codeOf(platform.patchSetAnnotations('relay-z', { a: 'b' }))).toBe(ErrorCode.NotFound);
  });

  test('pod labels: set and removed; an unknown pod is not found', async () => {
    await platform.patchPodLabels('relay-b-1', { restore: 'true', extra: 'x' });
    expect((await pod('relay-b-1')).labels).toEqual({ app: 'relay', restore: 'true', extra: 'x' });
    await platform.patchPodLabels('relay-b-1', { restore: null, extra: null });
    expect((await pod('relay-b-1')).labels).toEqual({ app: 'relay' });
    expect(await codeOf(platform.patchPodLabels('relay-a-9', { restore: 'true' }))).toBe(ErrorCode.NotFound);
  });

  test('lock: held against others, renewed, released, taken over once expired', async () => {
    const lease = await platform.lock.acquire('relay', 'alice', 10_000);
    expect(await platform.lock.inspect('relay')).toEqual({ name: 'relay', owner: 'alice', expiresAt: lease.expiresAt });
    const held = await platform.lock.acquire('relay', 'bob', 10_000).catch((error: unknown) => error);
    expect(isLockHeldError(held) && held.holder === 'alice' && held.expiresAt === lease.expiresAt).toBe(true);
    // A second process sees the same lease.
    const other = await openLocalPlatform({ stateDir: state.dir });
    try {
      expect((await other.lock.inspect('relay'))?.owner).toBe('alice');
    } finally {
      await other.close();
    }
    await sleep(5);
    expect(await lease.renew()).toBeGreaterThan(lease.expiresAt);
    await lease.release();
    await lease.release();
    expect(await platform.lock.inspect('relay')).toBeNull();

    const short = await platform.lock.acquire('relay', 'alice', 300);
    await sleep(400);
    expect(await platform.lock.inspect('relay')).toBeNull();
    const bob = await platform.lock.acquire('relay', 'bob', 10_000);
    expect(await codeOf(short.renew())).toBe(ErrorCode.LockLost);
    await short.release();
    expect((await platform.lock.inspect('relay'))?.owner).toBe('bob');
    await bob.release();
    expect(await platform.lock.inspect('relay')).toBeNull();
  });

  test('restore is refused by the label rule as the labels are now, whatever the caller passes', async () => {
    const a0 = await pod('relay-a-0');
    const b0 = await pod('relay-b-0');
    expect(await codeOf(platform.relay.restore(b0, a0))).toBe(ErrorCode.RestoreRefused);
    // A stale or forged view of the labels does not get past the check.
    expect(await codeOf(platform.relay.restore(b0, { ...a0, labels: { ...a0.labels, restore: 'true' } }))).toBe(ErrorCode.RestoreRefused);
    await platform.patchPodLabels('relay-a-0', { restore: 'true' });
    await platform.patchPodLabels('relay-b-0', { restore: 'true' });
    expect(await codeOf(platform.relay.restore(b0, a0))).toBe(ErrorCode.RestoreRefused);
    // An old pod never restores from a new one.
    expect(await codeOf(platform.relay.restore(a0, b0))).toBe(ErrorCode.RestoreRefused);
    await platform.patchPodLabels('relay-b-0', { restore: null });
    await platform.patchPodLabels('relay-a-1', { restore: 'true' });
    // Only from its double (same ordinal).
    expect(await codeOf(platform.relay.restore(b0, await pod('relay-a-1')))).toBe(ErrorCode.RestoreRefused);
    expect((await platform.relay.status(a0)).state).toBe('serving');
    expect((await platform.relay.status(b0)).state).toBe('awaiting-restore');
  });

  test('restore moves live sessions between two real relays; devices behind the front keep being answered', async () => {
    clients = await connectDevices({ port: info.service.port, serverPublicKey: info.serverPublicKey, count: 6, concurrency: 3 });
    await Promise.all(clients.map((client, i) => request(client, Buffer.from(`before ${i}`))));
    const a0 = await pod('relay-a-0');
    const b0 = await pod('relay-b-0');
    const held = (await platform.relay.status(a0)).sessions;
    // The front spreads new flows over ready relays, so relay-a-0 holds some of them.
    expect(held).toBeGreaterThan(0);

    const outcome = await platform.relay.restore(b0, a0);
    expect(outcome).toMatchObject({ sessions: held, skipped: 0 });
    expect(outcome.bytes).toBeGreaterThan(0);
    expect(await platform.relay.status(b0)).toMatchObject({ state: 'serving', ready: true, sessions: held });
    expect(await platform.relay.status(a0)).toMatchObject({ state: 'forwarding', ready: false, sessions: 0 });
    expect((await pod('relay-b-0')).ready).toBe(true);
    expect((await pod('relay-a-0')).ready).toBe(false);

    // Flows stay on relay-a-0 (affinity): it tunnels them to relay-b-0, which answers through it.
    const replies = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`after ${i}`))));
    expect(replies.map((r) => r.reply.toString())).toEqual(clients.map((_, i) => `after ${i}`));
    expect((await platform.relay.status(a0)).forwardedDatagrams).toBeGreaterThan(0);
    expect(clients.every((client) => client.stats.handshakes === 1)).toBe(true);
    // The restore happened; doing it again is refused by the relays, not by the platform.
    expect(await codeOf(platform.relay.restore(b0, a0))).toBe(ErrorCode.RestoreFailed);
  });

  test('a relay that dies is Failed; deleteSet stops its relays, forgets the set and is idempotent', async () => {
    const created = await platform.createSet({ name: 'relay-x', replicas: 1, image: 'relay:9', template: await setA(), annotations: {} });
    expect(created.name).toBe('relay-x');
    await waitFor('relay-x-0 running', async () => (await pod('relay-x-0')).phase === 'Running');
    const record = (await readPod(localPaths(state.dir), 'relay-x-0'))!;
    process.kill(record.pid!, 'SIGKILL');
    await waitFor('relay-x-0 failed', async () => (await pod('relay-x-0')).phase === 'Failed');
    expect((await pod('relay-x-0')).mgmtUrl).toBeNull();

    const b = await pods('relay-b');
    const pids = await Promise.all(b.map(async (p) => (await readPod(localPaths(state.dir), p.name))!.pid!));
    await platform.deleteSet('relay-x');
    await platform.deleteSet('relay-b');
    expect(await platform.getSet('relay-b')).toBeNull();
    expect(await platform.listPods('relay-b')).toEqual([]);
    expect(await platform.listPods('relay-x')).toEqual([]);
    expect(alivePids(pids)).toEqual([]);
    expect(await peers()).toEqual(await endpoints('relay-a'));
    await expect(readFile(podFile(localPaths(state.dir), 'relay-b-0'))).rejects.toThrow(/ENOENT/);
    await platform.deleteSet('relay-b');
    await platform.deleteSet('relay-never-was');
    // The set the front routed to is still whole.
    expect((await pods('relay-a')).map((p) => p.phase)).toEqual(['Running', 'Running']);
  });
});
