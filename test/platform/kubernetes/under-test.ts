import type { V1StatefulSet } from '@kubernetes/client-node';
import { expect } from 'vitest';
import type { DtlsClient } from '../../../client/index.ts';
import { ManualClock } from '../../../orchestrator/clock.ts';
import type { OpenedKubernetesPlatform } from '../../../orchestrator/platform/kubernetes/index.ts';
import { closeAll, connectDevices, request } from '../../support/devices.ts';
import type { PlatformUnderTest } from '../platform-contract.ts';
import { deployFleet } from './fleet.ts';
import { NS, eventually } from './standin.ts';

/**
 * The Kubernetes platform as the shared Platform contract wants it (../platform-contract.ts): fleet
 * `relay`, set relay-a of 2 relays on image relay:1, on the API stand-in with real relays, reached through
 * port-forwards. The lease's time is a ManualClock (`elapse` moves it); everything else runs in real time.
 * Readiness comes from relayd's health port, so the Ready condition follows the relays' own.
 */
export async function kubernetesUnderTest(): Promise<PlatformUnderTest> {
  const fleet = await deployFleet({ replicas: 2, healthPort: true });
  const clock = new ManualClock({ startMs: Date.now() });
  const opened: Array<{ close(): Promise<void> }> = [];
  let clients: DtlsClient[] = [];
  const open = async (): Promise<OpenedKubernetesPlatform> => {
    const platform = await fleet.standin.open({ mgmtAccess: 'port-forward', clock });
    opened.push(platform);
    return platform;
  };
  const main = await open();
  // The contract starts from a serving fleet.
  await eventually(main.platform, 'relay-a serving', async () => {
    const pods = await main.platform.listPods('relay-a');
    if (pods.length !== 2 || !pods.every((pod) => pod.ready)) return null;
    const states = await Promise.all(pods.map((pod) => main.platform.relay.status(pod).then((status) => status.state)));
    return states.every((state) => state === 'serving');
  });
  return {
    platform: main.platform,
    openAnother: open,
    eventually: <T>(what: string, check: () => Promise<T | null | false | undefined>): Promise<T> => eventually(main.platform, what, check),
    elapse: (ms: number) => clock.advance(ms),
    async holdSessions() {
      const a0 = (await main.platform.listPods('relay-a')).find((pod) => pod.name === 'relay-a-0');
      if (a0?.mgmtUrl == null) throw new Error('relay-a-0 has no address');
      clients = await connectDevices({ host: new URL(a0.mgmtUrl).hostname, port: 5684, serverPublicKey: fleet.serverPublicKey, count: 4, concurrency: 2 });
      await Promise.all(clients.map((client, i) => request(client, Buffer.from(`hello ${i}`))));
    },
    beyond: {
      /** The StatefulSet the API server holds: its own selector label, Parallel, the relays told to await restore. */
      async created() {
        const set = fleet.standin.api.store.get('statefulsets', NS, 'relay-b') as unknown as V1StatefulSet;
        expect(set.spec!.selector.matchLabels).toMatchObject({ 'relayctl.dev/set': 'relay-b', 'relayctl.dev/fleet': 'relay' });
        expect(set.spec!.podManagementPolicy).toBe('Parallel');
        expect(set.spec!.template.spec!.containers[0]!.env).toContainEqual({ name: 'RELAY_AWAIT_RESTORE', value: 'true' });
      },
      /** The devices connected to relay-a-0 go on through it (it forwards to its successor), none handshakes again. */
      async restored() {
        const replies = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`after ${i}`))));
        expect(replies.map((reply) => reply.reply.toString())).toEqual(clients.map((_, i) => `after ${i}`));
        expect(clients.map((client) => client.stats.handshakes)).toEqual(clients.map(() => 1));
      },
      /** Gone from the API server too, not just from the platform's reads. */
      async deleted() {
        expect(fleet.standin.api.store.list('pods', NS, 'relayctl.dev/set in (relay-b, relay-x)')).toEqual([]);
      },
    },
    async close() {
      await closeAll(clients);
      await Promise.all(opened.map((platform) => platform.close()));
      await fleet.close();
    },
  };
}
