/**
 * relayd as it runs in a pod: the plain-HTTP health port next to the mutual-TLS management port, and the
 * start-up restore decision reading its double through a Kubernetes API double.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, connectDevices, request } from '../support/devices.ts';
import { relayFixture, type RelayProcess } from '../support/relayd.ts';
import { startFakeKubeApi, type FakeKubeApi } from '../relay/fake-kube-api.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForLog(relay: RelayProcess, match: (line: Record<string, unknown>) => boolean, what: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = relay.logs.find(match);
    if (line !== undefined) return line;
    if (Date.now() > deadline) throw new Error(`${relay.name}: no log line for ${what}; got ${relay.logs.map((l) => String(l.msg)).join(' | ')}`);
    await sleep(50);
  }
}

async function health(relay: RelayProcess, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${relay.healthUrl}${path}`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const decision = (line: Record<string, unknown>): boolean => typeof line.restoreDecision === 'string';

describe('relayd in a pod', () => {
  const fixture = relayFixture();
  let api: FakeKubeApi;
  beforeAll(async () => {
    api = await startFakeKubeApi('relays');
  });
  afterAll(() => api?.close());

  const apiArgs = (): string[] => ['--kubernetes-api', api.url, '--service-account-dir', api.serviceAccountDir, '--pod-namespace', 'relays'];

  it('answers probes on the plain-HTTP health port, and stays live while forwarding after a handover', async () => {
    const a = await fixture.relay('relay-a-0');
    const b = await fixture.relay('relay-b-0', ['--await-restore', '--kubernetes-api', 'off']);
    expect(await health(a, '/readyz')).toEqual({ status: 200, body: { ready: true, state: 'serving', reason: null } });
    expect((await health(b, '/readyz')).status).toBe(503);
    expect(await health(b, '/livez')).toEqual({ status: 200, body: { live: true, state: 'awaiting-restore' } });
    expect((await fetch(`${a.healthUrl}/v1/status`)).status).toBe(404);
    expect(await (await fetch(`${a.healthUrl}/metrics`)).text()).toContain('relay_sessions{state="live"}');

    await fixture.env.operator.restore(b.mgmtUrl, { from: a.mgmtUrl });
    expect(await health(a, '/livez')).toEqual({ status: 200, body: { live: true, state: 'forwarding' } });
    expect(await health(a, '/readyz')).toMatchObject({ status: 503, body: { state: 'forwarding', ready: false } });
    expect((await health(b, '/readyz')).status).toBe(200);
  });

  it('serves empty at once when its double does not exist (a first install), and says why', async () => {
    api.pods.set('relay-b-3', { name: 'relay-b-3', podIp: '127.0.0.1' });
    const b = await fixture.relay('relay-b-3', ['--await-restore', ...apiArgs()]);
    const line = await waitForLog(b, decision, 'the start-up decision');
    expect(line).toMatchObject({ restoreDecision: 'serve-empty', reason: 'DoubleGone', msg: 'start-up restore: double relay-a-3 does not exist: nothing to restore' });
    await waitForLog(b, (l) => l.msg === 'relay state' && l.to === 'serving', 'serving');
    expect((await health(b, '/readyz')).status).toBe(200);
    expect(api.requests).toEqual(expect.arrayContaining(['GET /api/v1/namespaces/relays/pods/relay-b-3', 'GET /api/v1/namespaces/relays/pods/relay-a-3']));
  });

  it('undriven, restores its marked double\'s sessions itself after --restore-wait: the devices notice nothing', async () => {
    const a = await fixture.relay('relay-a-1');
    const mgmtPort = Number(new URL(a.mgmtUrl).port);
    api.pods.set('relay-a-1', { name: 'relay-a-1', labels: { 'relayctl.dev/restore': 'true' }, podIp: '127.0.0.1', mgmtPort });
    api.pods.set('relay-b-1', { name: 'relay-b-1', podIp: '127.0.0.1' });
    const devices = await connectDevices({ port: a.dtlsPort, serverPublicKey: fixture.env.pki.dtls.publicKeyDer, count: 20 });
    try {
      for (const [i, device] of devices.entries()) expect((await request(device, Buffer.from(`before ${i}`))).reply.toString()).toBe(`before ${i}`);
      const b = await fixture.relay('relay-b-1', ['--await-restore', '--restore-wait', '1s', ...apiArgs()]);
      expect(await waitForLog(b, decision, 'the start-up decision')).toMatchObject({ restoreDecision: 'wait', reason: 'DoubleMarked' });
      expect(await waitForLog(b, (l) => l.restoreDecision === 'restore', 'the deadline decision')).toMatchObject({ reason: 'DoubleMarked', from: `https://127.0.0.1:${mgmtPort}` });
      await waitForLog(b, (l) => l.msg === 'start-up restore: restored 20 sessions from relay-a-1', 'the restore');
      expect(await fixture.env.operator.status(a.mgmtUrl)).toMatchObject({ state: 'forwarding', sessions: { total: 0 } });
      expect(await fixture.env.operator.status(b.mgmtUrl)).toMatchObject({ state: 'serving', sessions: { total: 20 } });
      // Still routed to the old relay (conntrack): tunnelled to the new one, answered, no new handshake.
      for (const [i, device] of devices.entries()) expect((await request(device, Buffer.from(`after ${i}`))).reply.toString()).toBe(`after ${i}`);
      expect(devices.map((d) => d.stats.handshakes)).toEqual(devices.map(() => 1));
    } finally {
      await closeAll(devices);
    }
  });

  it('a pod that carries the restore label itself never restores from its double', async () => {
    api.pods.set('relay-a-2', { name: 'relay-a-2', labels: { 'relayctl.dev/restore': 'true' }, podIp: '127.0.0.1', mgmtPort: 1 });
    api.pods.set('relay-b-2', { name: 'relay-b-2', labels: { 'relayctl.dev/restore': 'true' }, podIp: '127.0.0.1' });
    const b = await fixture.relay('relay-b-2', ['--await-restore', ...apiArgs()]);
    expect(await waitForLog(b, decision, 'the start-up decision')).toMatchObject({ restoreDecision: 'serve-empty', reason: 'SelfMarked' });
  });
});
