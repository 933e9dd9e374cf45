import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import type { DtlsClient } from '../../../client/index.ts';
import { deployLocal, openLocalPlatform } from '../../../orchestrator/platform/local/index.ts';
import { localPaths, peersFile, podFile, readPod } from '../../../orchestrator/platform/local/state.ts';
import { closeAll, connectDevices, request } from '../../support/devices.ts';
import { eventually } from '../../support/eventually.ts';
import { CONTRACT_FLEET, describePlatformContract, type PlatformUnderTest } from '../platform-contract.ts';
import { alivePids, tempState } from './helpers.ts';

/**
 * The local platform held to the Platform contract, with real relayd processes behind its UDP front. It runs in
 * the `shared` network mode (every pod on 127.0.0.1 with ports of its own), so that restores and straggler tunnels
 * between relays run in that mode too; the update end to end (test/e2e/local-update.test.ts) runs in the default
 * mode (a loopback address per pod).
 */

async function localUnderTest(): Promise<PlatformUnderTest> {
  const state = await tempState();
  const info = await deployLocal({ stateDir: state.dir, name: CONTRACT_FLEET.name, replicas: CONTRACT_FLEET.replicas, image: CONTRACT_FLEET.image, servicePort: 0, affinityMs: 60_000, network: 'shared' });
  const platform = await openLocalPlatform({ stateDir: state.dir });
  const paths = localPaths(state.dir);
  let clients: DtlsClient[] = [];
  /** relay-b's relay processes, to see them stopped once the set is deleted. */
  let setBPids: number[] = [];

  /** The relays' peer list (relayd --peers-file), as host:port lines. */
  const peers = async (): Promise<string[]> => (await readFile(peersFile(paths), 'utf8')).split('\n').filter((line) => line !== '').sort();
  const endpoints = async (...sets: string[]): Promise<string[]> =>
    (await Promise.all(sets.map((set) => platform.listPods(set)))).flat().map((pod) => new URL(pod.mgmtUrl!).host).sort();

  return {
    platform,
    openAnother: async () => {
      const other = await openLocalPlatform({ stateDir: state.dir });
      return { platform: other, close: () => other.close() };
    },
    eventually: (what, check) => eventually(what, check),
    // Leases compare the wall clocks of processes on one machine.
    elapse: (ms) => sleep(ms),
    async holdSessions() {
      // The front spreads new flows over the ready relays, fewest flows first: 3 on each.
      clients = await connectDevices({ port: info.service.port, serverPublicKey: info.serverPublicKey, count: 6, concurrency: 3 });
      await Promise.all(clients.map((client, i) => request(client, Buffer.from(`before ${i}`))));
    },
    beyond: {
      async created() {
        // Shared mode: every pod on 127.0.0.1, each with ports of its own, so an old and a new pod never collide.
        const all = await endpoints('relay-a', 'relay-b');
        expect(all.every((endpoint) => endpoint.startsWith('127.0.0.1:'))).toBe(true);
        expect(new Set(all).size).toBe(4);
        // Every relay can find every other one, to claim the session of a device the front moved to it.
        expect(await peers()).toEqual(all);
        // The image is a label on local: it is in the pod's log.
        expect(await readFile(`${info.logs}/relay-b-0.log`, 'utf8')).toContain('"image":"relay:2"');
        setBPids = await Promise.all(['relay-b-0', 'relay-b-1'].map(async (pod) => (await readPod(paths, pod))!.pid!));
        expect(alivePids(setBPids)).toEqual(setBPids);
      },
      async restored(target, source) {
        // Flows stay on the source (affinity): it tunnels them to the target, which answers through it.
        const replies = await Promise.all(clients.map((client, i) => request(client, Buffer.from(`after ${i}`))));
        expect(replies.map((r) => r.reply.toString())).toEqual(clients.map((_, i) => `after ${i}`));
        expect((await platform.relay.status(source)).forwardedDatagrams).toBeGreaterThan(0);
        expect((await platform.relay.status(target)).sessions).toBe(3);
        expect(clients.every((client) => client.stats.handshakes === 1)).toBe(true);
      },
      async deleted() {
        expect(alivePids(setBPids)).toEqual([]);
        await expect(readFile(podFile(paths, 'relay-b-0'))).rejects.toThrow(/ENOENT/);
        expect(await peers()).toEqual(await endpoints('relay-a'));
      },
    },
    async close() {
      await closeAll(clients);
      await platform.close();
      await state.cleanup();
    },
  };
}

describePlatformContract('the local platform', localUnderTest);
