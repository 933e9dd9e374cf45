import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isKubernetesPlatformError, KubeErrorCode, type OpenedKubernetesPlatform } from '../../../orchestrator/platform/kubernetes/index.ts';
import type { PodInfo, RelayStatus } from '../../../orchestrator/platform/platform.ts';
import { deployFleet, type Fleet } from './fleet.ts';
import { bindRole, eventually, notCache } from './standin.ts';

/**
 * The relays' management API reached through the API server (port-forward, TLS inside the tunnel) and directly,
 * against real relayd processes run by the stand-in's kubelet. A restore through the tunnel with live devices is
 * the Platform contract's (contract.test.ts, with the device checks in under-test.ts).
 */

let fleet: Fleet;

beforeAll(async () => {
  fleet = await deployFleet({ replicas: 2, healthPort: true });
}, 60_000);

afterAll(async () => {
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
