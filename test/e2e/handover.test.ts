import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManagementClient } from '../../api/management-client.ts';
import { DtlsClient } from '../../client/index.ts';
import { DeviceFleet } from '../../loadgen/fleet.ts';
import { NONCE_FENCE } from '../../relay/handover/fence.ts';
import { ensureLocalPki, relayClientTlsOptions } from '../../orchestrator/platform/local/pki.ts';
import { UdpFront } from '../../orchestrator/platform/local/udp-front.ts';
import { closeAll, connectDevices, generateDeviceKey, request } from '../support/devices.ts';
import { metricValue, relayFixture, startRelay, type RelayProcess } from '../support/relayd.ts';
import { StateTamperingProxy } from '../support/tampering-proxy.ts';
import { eventually } from '../support/eventually.ts';

describe('session handover between two relayd processes', () => {
  const fixture = relayFixture();
  const relay = (name: string, args: string[] = []): Promise<RelayProcess> => fixture.relay(name, args);

  /**
   * Each client sends one request to paused relay `a`; resolves once `a` took every one in (it counts datagrams on
   * arrival) and queued it: none reached the upstream. `answers` settles with the answers.
   */
  async function requestsWhilePaused(a: RelayProcess, clients: DtlsClient[]): Promise<{ answers: Promise<{ reply: Buffer; sequence: number }[]> }> {
    const arrived = async (): Promise<number> => metricValue(await fixture.env.operator.metrics(a.mgmtUrl), 'relay_datagrams_total{direction="device_in"}');
    const before = await arrived();
    const echoedBefore = fixture.echo.received;
    const answers = Promise.all(clients.map((c, i) => request(c, Buffer.from(`paused ${i}`))));
    await eventually(`A to take in the ${clients.length} requests`, async () => (await arrived()) - before === clients.length);
    expect(fixture.echo.received).toBe(echoedBefore);
    return { answers };
  }

  // 300 handshakes and a few thousand requests on 2 shared cores: more than the default 30 s when the machine is busy.
  it('moves hundreds of live sessions to the new relay: no handshake, no lost request, no replay, stragglers tunnelled', { timeout: 90_000 }, async () => {
    const a = await relay('relay-a-0');
    const b = await relay('relay-b-0', ['--await-restore']);
    expect(await fixture.env.operator.readyz(b.mgmtUrl)).toMatchObject({ ready: false, state: 'awaiting-restore' });
    const front = new UdpFront({ affinityMs: 60_000 });
    const service = await front.listen();
    front.setBackends([{ id: 'a', address: '127.0.0.1', port: a.dtlsPort, ready: true }, { id: 'b', address: '127.0.0.1', port: b.dtlsPort, ready: false }]);
    const devices = 300;
    // Each device asks again 50-150 ms after its answer: about 3,000 requests/s, through the tunnel for a while.
    const fleet = new DeviceFleet({ host: '127.0.0.1', port: service.port, serverPublicKey: fixture.env.pki.dtls.publicKeyDer, devices, requestIntervalMs: 100 });
    try {
      await fleet.connect();
      fleet.start();
      await fleet.until('every device answered once on A', (seen) => seen.answered >= devices);
      const seqBefore = fleet.sessions().map((session) => session!.lastInboundSeq);

      const outcome = await fixture.env.operator.restore(b.mgmtUrl, { from: a.mgmtUrl });
      // Everything came in the pre-copy, while A served; the paused phase carried only what changed since.
      expect(outcome).toMatchObject({ sessions: devices, skipped: 0, precopySessions: devices, delta: true });
      expect(await fixture.env.operator.readyz(b.mgmtUrl)).toMatchObject({ ready: true, state: 'serving' });
      expect(await fixture.env.operator.readyz(a.mgmtUrl)).toMatchObject({ ready: false, state: 'forwarding' });
      front.setBackends([{ id: 'a', address: '127.0.0.1', port: a.dtlsPort, ready: false }, { id: 'b', address: '127.0.0.1', port: b.dtlsPort, ready: true }]);

      // Flows stay on A (conntrack): A tunnels them to B and B answers through A.
      const atCommit = fleet.snapshot().answered;
      await fleet.until(`${2 * devices} answers through the tunnel`, (seen) => seen.answered >= atCommit + 2 * devices);
      // The devices fall quiet (nothing in flight), so what A forwarded and what B took in can be compared.
      expect(await fleet.stop(5_000)).toEqual({ unanswered: 0 });
      const aStatus = await fixture.env.operator.status(a.mgmtUrl);
      expect(aStatus.forwarding.successor).toBe('relay-b-0');
      expect(aStatus.sessions.total).toBe(0);
      const forwardedBefore = aStatus.forwarding.datagrams;
      // What A queued while paused went to B first, then every straggler (each answer since the commit was one).
      expect(forwardedBefore).toBeGreaterThanOrEqual(Math.max(outcome.queuedForwarded, 2 * devices));
      // B took in every device datagram A forwarded (loopback loses nothing). A also forwarded the upstream's late
      // answers to requests it had passed on before it paused (at most one a device), which B does not count as
      // tunnel datagrams: a range, because how many were in flight at that instant depends on timing.
      const tunnelledIn = metricValue(await fixture.env.operator.metrics(b.mgmtUrl), 'relay_tunnel_datagrams_total{direction="in"}');
      expect(forwardedBefore - tunnelledIn).toBeGreaterThanOrEqual(0);
      expect(forwardedBefore - tunnelledIn).toBeLessThanOrEqual(devices);

      // The devices' conntrack entries expire; they reach B directly, and nothing goes through A any more.
      front.expireAffinity();
      const direct = fleet.snapshot().answered;
      fleet.start();
      await fleet.until(`${2 * devices} answers straight from B`, (seen) => seen.answered >= direct + 2 * devices);
      expect(await fleet.stop(5_000)).toEqual({ unanswered: 0 });
      expect((await fixture.env.operator.status(a.mgmtUrl)).forwarding.datagrams).toBe(forwardedBefore);
      expect(front.stats().misrouted).toBe(0);

      // Nothing was lost. A request answered later than the CoAP ACK timeout (2-3 s: a busy shared machine) is
      // retransmitted and then answered twice, so each retransmission has its duplicate answer; a request or an
      // answer lost in the handover would leave a retransmission without one. (On an idle machine both are 0.)
      await fleet.until('a second answer to every retransmitted request', (counted) => counted.duplicates >= counted.retransmissions, 10_000);
      const seen = fleet.snapshot();
      expect({ errors: seen.transmissionErrors, lost: seen.sessionsLost, handshakes: seen.handshakes, duplicates: seen.duplicates }).toEqual({ errors: 0, lost: 0, handshakes: devices, duplicates: seen.retransmissions });
      expect(seen.answered).toBe(seen.requests);
      fleet.sessions().forEach((session, i) => {
        expect(session, `device ${i}`).toMatchObject({ handshakes: 1, replaysDropped: 0, badRecordsDropped: 0 });
        // The nonce fence: the first record from B is far above the last one from A.
        expect(session!.lastInboundSeq, `device ${i}`).toBeGreaterThanOrEqual(seqBefore[i]! + NONCE_FENCE);
      });
      expect((await fixture.env.operator.status(b.mgmtUrl)).sessions.total).toBe(devices);
      expect(metricValue(await fixture.env.operator.metrics(b.mgmtUrl), 'relay_handshakes_total')).toBe(0);
    } finally {
      await fleet.close();
      await front.close();
    }
  });

  it('the pause holds exactly the datagrams that arrived during it: A forwards each to B once, B answers each through A', async () => {
    const a = await relay('relay-a-0');
    const b = await relay('relay-b-0', ['--await-restore']);
    // Holds A's answer to the handover (its paused phase) until the test has sent what it sends during the pause.
    const proxy = new StateTamperingProxy({ target: a.mgmtUrl, pki: fixture.env.pki, mode: { kind: 'hold' } });
    const proxyUrl = await proxy.listen();
    const clients = await connectDevices({ port: a.dtlsPort, serverPublicKey: fixture.env.pki.dtls.publicKeyDer, count: 40 });
    try {
      await Promise.all(clients.map((c, i) => request(c, Buffer.from(`warm ${i}`))));
      const seqBefore = clients.map((c) => c.stats.lastInboundSeq);
      const restoring = fixture.env.operator.restore(b.mgmtUrl, { from: proxyUrl });
      await eventually('A to pause', async () => (await fixture.env.operator.readyz(a.mgmtUrl)).state === 'handing-over');
      const echoedBefore = fixture.echo.received;
      const { answers: during } = await requestsWhilePaused(a, clients);
      proxy.release();

      // The paused phase carried no session (nothing changed since the pre-copy) and the 40 queued datagrams.
      expect(await restoring).toMatchObject({ sessions: 40, skipped: 0, precopySessions: 40, deltaSessions: 0, delta: true, queuedForwarded: 40 });
      const replies = await during;
      expect(replies.map((r) => r.reply.toString())).toEqual(clients.map((_, i) => `paused ${i}`));
      replies.forEach((r, i) => expect(r.sequence).toBeGreaterThanOrEqual(seqBefore[i]! + NONCE_FENCE));
      expect(fixture.echo.received - echoedBefore).toBe(40);
      expect((await fixture.env.operator.status(a.mgmtUrl)).forwarding.datagrams).toBe(40);
      const bMetrics = await fixture.env.operator.metrics(b.mgmtUrl);
      expect(metricValue(bMetrics, 'relay_tunnel_datagrams_total{direction="in"}')).toBe(40);
      expect(metricValue(bMetrics, 'relay_handshakes_total')).toBe(0);
      expect(clients.every((c) => c.stats.handshakes === 1 && c.stats.replaysDropped === 0)).toBe(true);
    } finally {
      await closeAll(clients);
      await proxy.close();
    }
  });

  it('hands the sessions on again: a relay that restored can be restored from (second update, and rollback)', async () => {
    const a = await relay('relay-a-0');
    const b = await relay('relay-b-0', ['--await-restore']);
    const clients = await connectDevices({ port: a.dtlsPort, serverPublicKey: fixture.env.pki.dtls.publicKeyDer, count: 20 });
    try {
      await Promise.all(clients.map((c, i) => request(c, Buffer.from(`first ${i}`))));
      expect((await fixture.env.operator.restore(b.mgmtUrl, { from: a.mgmtUrl })).sessions).toBe(20);
      // Back again: A (forwarding) restores from B, the rollback direction.
      expect((await fixture.env.operator.restore(a.mgmtUrl, { from: b.mgmtUrl })).sessions).toBe(20);
      expect(await fixture.env.operator.readyz(a.mgmtUrl)).toMatchObject({ ready: true });
      // Devices were never re-pointed: they always talked to A's address, which serves again.
      const replies = await Promise.all(clients.map((c, i) => request(c, Buffer.from(`again ${i}`))));
      expect(replies.every((r, i) => r.reply.toString() === `again ${i}`)).toBe(true);
      expect(clients.every((c) => c.stats.handshakes === 1 && c.stats.replaysDropped === 0)).toBe(true);
    } finally {
      await closeAll(clients);
    }
  });

  it('does not deliver a record captured before the handover and replayed to the new relay', async () => {
    const a = await relay('relay-a-0');
    const b = await relay('relay-b-0', ['--await-restore']);
    // A proxy socket is the device's address as both relays see it; it records what the device sends.
    const proxy = dgram.createSocket('udp4');
    let target = a.dtlsPort;
    let device: dgram.RemoteInfo | null = null;
    const captured: Buffer[] = [];
    proxy.on('message', (datagram, rinfo) => {
      if (rinfo.port === a.dtlsPort || rinfo.port === b.dtlsPort) {
        if (device !== null) proxy.send(datagram, device.port, device.address);
        return;
      }
      device = rinfo;
      if (datagram[0] === 23) captured.push(datagram);
      proxy.send(datagram, target, '127.0.0.1');
    });
    await new Promise<void>((resolve) => proxy.bind(0, '127.0.0.1', () => resolve()));
    const client = new DtlsClient({ host: '127.0.0.1', port: proxy.address().port, serverPublicKey: fixture.env.pki.dtls.publicKeyDer, clientKey: generateDeviceKey() });
    await client.connect();
    try {
      await request(client, Buffer.from('original request'));
      const replayed = captured.at(-1)!;
      await fixture.env.operator.restore(b.mgmtUrl, { from: a.mgmtUrl });
      target = b.dtlsPort;
      const upstreamBefore = fixture.echo.received;
      const before = await fixture.env.operator.metrics(b.mgmtUrl);
      await new Promise<void>((resolve) => proxy.send(replayed, b.dtlsPort, '127.0.0.1', () => resolve()));
      const replayDrops = (metrics: string): number => metricValue(metrics, 'relay_drops_total{reason="replay"}');
      await eventually('B to drop the replayed record', async () => replayDrops(await fixture.env.operator.metrics(b.mgmtUrl)) - replayDrops(before) === 1);
      expect(fixture.echo.received).toBe(upstreamBefore);
      // The session itself goes on.
      expect((await request(client, Buffer.from('fresh request'))).reply.toString()).toBe('fresh request');
      expect(client.stats.handshakes).toBe(1);
    } finally {
      await closeAll([client]);
      proxy.close();
    }
  });

  describe('failure paths: the old relay keeps serving every session', () => {
    const successorClient = (): ManagementClient => new ManagementClient(relayClientTlsOptions(fixture.env.pki));

    /** A fake successor: starts a handover on A, reads `readBytes` of the stream (all if undefined). */
    async function startHandover(a: RelayProcess, client: ManagementClient, commitTimeoutMs: number, readBytes?: number) {
      const tunnel = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => tunnel.bind(0, '127.0.0.1', () => resolve()));
      const stream = await client.handover(a.mgmtUrl, { successor: 'fake-b', tunnelPort: tunnel.address().port, tunnelKey: Buffer.alloc(32, 7).toString('base64'), commitTimeoutMs });
      let bytes = 0;
      for await (const chunk of stream.body) {
        bytes += chunk.length;
        if (readBytes !== undefined && bytes >= readBytes) {
          stream.body.destroy();
          break;
        }
      }
      tunnel.close();
      return { id: String(stream.headers['x-relayctl-handover-id']), bytes };
    }

    async function withDevices(a: RelayProcess, action: (clients: DtlsClient[]) => Promise<void>): Promise<void> {
      const clients = await connectDevices({ port: a.dtlsPort, serverPublicKey: fixture.env.pki.dtls.publicKeyDer, count: 40 });
      try {
        await Promise.all(clients.map((c, i) => request(c, Buffer.from(`warm ${i}`))));
        await action(clients);
        await eventually('A to serve again', async () => (await fixture.env.operator.readyz(a.mgmtUrl)).ready);
        const replies = await Promise.all(clients.map((c, i) => request(c, Buffer.from(`after ${i}`), { timeoutMs: 5_000 })));
        expect(replies.map((r) => r.reply.toString())).toEqual(clients.map((_, i) => `after ${i}`));
        expect(clients.every((c) => c.stats.handshakes === 1 && c.stats.replaysDropped === 0)).toBe(true);
        expect((await fixture.env.operator.status(a.mgmtUrl)).sessions.total).toBe(40);
      } finally {
        await closeAll(clients);
      }
    }

    it('abort: A resumes and answers exactly the requests that arrived while it was paused', async () => {
      const a = await relay('relay-a-0');
      const client = successorClient();
      await withDevices(a, async (clients) => {
        const { id } = await startHandover(a, client, 30_000);
        expect((await fixture.env.operator.readyz(a.mgmtUrl)).state).toBe('handing-over');
        const echoedBefore = fixture.echo.received;
        const { answers: pending } = await requestsWhilePaused(a, clients);
        await client.abort(a.mgmtUrl, { handoverId: id, reason: 'test abort' });
        expect((await pending).map((r) => r.reply.toString())).toEqual(clients.map((_, i) => `paused ${i}`));
        // Replayed once each: every queued request reached the upstream exactly once.
        expect(fixture.echo.received - echoedBefore).toBe(40);
      });
      await client.close();
    });

    it('commit deadline: A resumes by itself when no commit comes', async () => {
      const a = await relay('relay-a-0');
      const client = successorClient();
      await withDevices(a, async () => {
        const { id } = await startHandover(a, client, 300);
        // Nobody commits: at its deadline A ends the handover and serves again.
        await eventually('A to serve again', async () => (await fixture.env.operator.readyz(a.mgmtUrl)).state === 'serving');
        await expect(client.commit(a.mgmtUrl, { handoverId: id })).rejects.toMatchObject({ status: 409, remoteCode: 'ERR_NO_SUCH_HANDOVER' });
      });
      await client.close();
    });

    it('successor gone after the first bytes: A resumes at the commit deadline at the latest', async () => {
      const a = await relay('relay-a-0');
      const client = successorClient();
      await withDevices(a, async () => {
        // 40 sessions fit in the socket buffers, so A finished writing: only the deadline can tell.
        await startHandover(a, client, 500, 1);
        await client.close();
      });
    });

    it('new relay killed mid-restore: A resumes', async () => {
      const a = await relay('relay-a-0');
      const proxy = new StateTamperingProxy({ target: a.mgmtUrl, pki: fixture.env.pki, mode: { kind: 'stall' } });
      const proxyUrl = await proxy.listen();
      const b = await relay('relay-b-0', ['--await-restore']);
      await withDevices(a, async () => {
        const restore = fixture.env.operator.restore(b.mgmtUrl, { from: proxyUrl, commitTimeoutMs: 1_000 }).catch((error: unknown) => error);
        await eventually('A to pause', async () => (await fixture.env.operator.readyz(a.mgmtUrl)).state === 'handing-over');
        await b.stop('SIGKILL');
        await restore;
        proxy.release();
      });
      await proxy.close();
    });

    for (const mode of [{ kind: 'truncate' as const, atBytes: 600 }, { kind: 'corrupt' as const, atByte: 900 }]) {
      it(`${mode.kind === 'truncate' ? 'truncated' : 'corrupted'} state stream: the new relay refuses it, restores nothing, and A resumes`, async () => {
        const a = await relay('relay-a-0');
        const proxy = new StateTamperingProxy({ target: a.mgmtUrl, pki: fixture.env.pki, mode });
        const proxyUrl = await proxy.listen();
        const b = await relay('relay-b-0', ['--await-restore']);
        await withDevices(a, async () => {
          await expect(fixture.env.operator.restore(b.mgmtUrl, { from: proxyUrl })).rejects.toMatchObject({ status: 502, remoteCode: expect.stringMatching(/^ERR_STATE_/) });
          const status = await fixture.env.operator.status(b.mgmtUrl);
          expect(status).toMatchObject({ ready: false, state: 'awaiting-restore' });
          expect(status.sessions.total).toBe(0);
          expect(proxy.aborts).toBe(1);
        });
        await proxy.close();
      });
    }

    it('a successor with a certificate from another CA gets nothing', async () => {
      const a = await relay('relay-a-0');
      const otherDir = await mkdtemp(join(tmpdir(), 'relayctl-other-'));
      try {
        const other = await ensureLocalPki(otherDir);
        const stranger = await startRelay(other, { name: 'relay-b-0', upstream: fixture.upstream, args: ['--await-restore'] });
        fixture.track(stranger);
        const strangerOperator = new ManagementClient({ ca: other.ca.cert, cert: other.operator.cert, key: other.operator.key, servername: other.servername });
        await withDevices(a, async () => {
          await expect(strangerOperator.restore(stranger.mgmtUrl, { from: a.mgmtUrl })).rejects.toMatchObject({ status: 502, remoteCode: 'ERR_MGMT_UNREACHABLE' });
          expect((await fixture.env.operator.readyz(a.mgmtUrl)).state).toBe('serving');
        });
        await strangerOperator.close();
      } finally {
        await rm(otherDir, { recursive: true, force: true });
      }
    });

    it('refuses to restore over sessions of its own, and refuses a handover while not serving', async () => {
      const a = await relay('relay-a-0');
      const b = await relay('relay-b-0');
      const clients = await connectDevices({ port: b.dtlsPort, serverPublicKey: fixture.env.pki.dtls.publicKeyDer, count: 1 });
      await expect(fixture.env.operator.restore(b.mgmtUrl, { from: a.mgmtUrl })).rejects.toMatchObject({ status: 409, remoteCode: 'ERR_HAS_SESSIONS' });
      await closeAll(clients);
      const c = await relay('relay-c-0', ['--await-restore']);
      await expect(fixture.env.operator.restore(b.mgmtUrl, { from: c.mgmtUrl })).rejects.toMatchObject({ status: 409, remoteCode: 'ERR_HAS_SESSIONS' });
      const d = await relay('relay-d-0', ['--await-restore']);
      await expect(fixture.env.operator.restore(d.mgmtUrl, { from: c.mgmtUrl })).rejects.toMatchObject({ status: 502, remoteCode: 'ERR_MGMT_HTTP' });
      expect((await fixture.env.operator.readyz(d.mgmtUrl)).state).toBe('awaiting-restore');
      // Its double is gone: it may be told to start empty, once.
      await expect(fixture.env.operator.restore(d.mgmtUrl, { empty: true, from: a.mgmtUrl } as never)).rejects.toMatchObject({ status: 400 });
      expect(await fixture.env.operator.restore(d.mgmtUrl, { empty: true })).toMatchObject({ sessions: 0, from: '' });
      expect(await fixture.env.operator.readyz(d.mgmtUrl)).toMatchObject({ ready: true, state: 'serving' });
      await expect(fixture.env.operator.restore(d.mgmtUrl, { empty: true })).rejects.toMatchObject({ status: 409, remoteCode: 'ERR_NOT_RESTORABLE' });
    });
  });
});
