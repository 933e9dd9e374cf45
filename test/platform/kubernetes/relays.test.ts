import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { DtlsClient } from '../../../client/index.ts';
import { isKubernetesPlatformError, KubeErrorCode, type OpenedKubernetesPlatform } from '../../../orchestrator/platform/kubernetes/index.ts';
import { RESTORE_LABEL, RESTORE_LABEL_VALUE, type PodInfo, type RelayStatus } from '../../../orchestrator/platform/platform.ts';
import { closeAll, connectDevices, request } from '../../support/devices.ts';
import { deployFleet, type Fleet } from './fleet.ts';
import { bindRole, eventually, notCache } from './standin.ts';

/**
 * The relays' management API reached through the API server (port-forward, TLS inside the tunnel) and directly,
 * against real relayd processes run by the stand-in's kubelet.
 */

let fleet: Fleet;
let clients: DtlsClient[] = [];

beforeAll(async () => {
  fleet = await deployFleet({ replicas: 2, healthPort: true });
}, 60_000);

afterAll(async () => {
  await closeAll(clients);
  await fleet?.close();
});

/** The pods of `set`, once `count` of them run with an address and answer relay.status. */
async function relaysOf(opened: OpenedKubernetesPlatform, set: string, count: number): Promise<Array<{ pod: PodInfo; status: RelayStatus }>> {
  return eventually(opened.platform, `${count} relays of ${set} answering`, async () => {
    const pods = (await opened.platform.listPods(set)).filter((pod) => pod.phase === 'Running' && pod.mgmtUrl !== null).sort((x, y) => x.ordinal - y.ordinal);
    if (pods.length !== count) return null;
    return Promise.all(pods.map(async (pod) => ({ pod, status: await opened.platform.relay.status(pod) })));
  });
}

describe('reaching the relays', () => {
  test('through the API server: a port-forward per relay, mutual TLS inside it, the operator certificate read from its Secret', async () => {
    const opened = await fleet.standin.open({ mgmtAccess: 'port-forward' });
    expect(opened.target.mgmtAccess).toBe('port-forward');
    const mark = fleet.standin.mark();
    const relays = await relaysOf(opened, 'relay-a', 2);
    expect(relays.map(({ pod, status }) => [pod.name, status.pod, status.state, status.ready])).toEqual([
      ['relay-a-0', 'relay-a-0', 'serving', true],
      ['relay-a-1', 'relay-a-1', 'serving', true],
    ]);
    await eventually(opened.platform, 'relay-a Ready', async () => (await opened.platform.listPods('relay-a')).every((pod) => pod.ready));
    const calls = fleet.standin.calls(mark, notCache);
    expect(calls.filter((call) => call.includes('secrets'))).toEqual(['get secrets relay-relayctl-tls']);
    expect(calls).toContain('get pods/portforward relay-a-0');
    expect(calls).toContain('get pods/portforward relay-a-1');
  });

  test('directly: the pod IPs, with the certificate given as files (nothing read from the Secret)', async () => {
    const opened = await fleet.standin.open({ mgmtAccess: 'direct', mgmtTls: fleet.operator });
    const mark = fleet.standin.mark();
    const relays = await relaysOf(opened, 'relay-a', 2);
    expect(relays.map(({ status }) => status.state)).toEqual(['serving', 'serving']);
    expect(fleet.standin.calls(mark, notCache).filter((call) => call.includes('secrets') || call.includes('portforward'))).toEqual([]);
  });

  test('a restore through the tunnel: the new set\'s relay waits for its double, takes its live sessions, and the devices go on', async () => {
    const opened = await fleet.standin.open({ mgmtAccess: 'port-forward' });
    const [a0] = await relaysOf(opened, 'relay-a', 2);
    clients = await connectDevices({ host: new URL(a0!.pod.mgmtUrl!).hostname, port: 5684, serverPublicKey: fleet.serverPublicKey, count: 4, concurrency: 2 });
    await Promise.all(clients.map((client, i) => request(client, Buffer.from(`before ${i}`))));
    expect((await opened.platform.relay.status(a0!.pod)).sessions).toBe(4);

    const template = (await opened.platform.getSet('relay-a'))!;
    await opened.platform.createSet({ name: 'relay-b', replicas: 2, image: 'relay:2', template, annotations: { 'relayctl.dev/update-id': 'u-1' } });
    const [b0] = await relaysOf(opened, 'relay-b', 2);
    expect(b0!.status.state).toBe('awaiting-restore');
    expect(b0!.pod).toMatchObject({ image: 'relay:2', ready: false });

    await opened.platform.patchPodLabels('relay-a-0', { [RESTORE_LABEL]: RESTORE_LABEL_VALUE });
    const outcome = await opened.platform.relay.restore(b0!.pod, a0!.pod);
    expect(outcome).toMatchObject({ sessions: 4, skipped: 0 });
    expect(await opened.platform.relay.status(b0!.pod)).toMatchObject({ state: 'serving', sessions: 4 });
    expect(await opened.platform.relay.status(a0!.pod)).toMatchObject({ state: 'forwarding', sessions: 0 });
    // The kubelet's readiness probes (relayd's health port) follow: the new pod turns Ready, the old one not.
    await eventually(opened.platform, 'relay-b-0 ready and relay-a-0 not', async () => {
      const pods = [...(await opened.platform.listPods('relay-a')), ...(await opened.platform.listPods('relay-b'))];
      return pods.find((pod) => pod.name === 'relay-b-0')?.ready === true && pods.find((pod) => pod.name === 'relay-a-0')?.ready === false;
    });
    // Their flows still reach relay-a-0, which tunnels them to relay-b-0: answered, no new handshake.
    const replies = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`after ${i}`))));
    expect(replies.map((reply) => reply.reply.toString())).toEqual(clients.map((_, i) => `after ${i}`));
    expect(clients.every((client) => client.stats.handshakes === 1)).toBe(true);
  });

  test('a Role without pods/portforward: relay calls fail naming both verbs the upgrade is checked with', async () => {
    bindRole(fleet.standin, 'no-forward', 'stranger', [
      { apiGroups: ['', 'apps'], resources: ['pods', 'statefulsets'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
    ]);
    const opened = await fleet.standin.open({ mgmtAccess: 'port-forward' }, 'stranger');
    const [pod] = await opened.platform.listPods('relay-a');
    const error = await opened.platform.relay.status(pod!).catch((caught: unknown) => caught);
    expect(isKubernetesPlatformError(error) && error.code).toBe(KubeErrorCode.Forbidden);
    expect((error as Error).message).toContain(`get pods/portforward ${pod!.name} in namespace relays: forbidden for stranger`);
    expect((error as Error).message).toContain('must allow get and create on pods/portforward');
  });
});
