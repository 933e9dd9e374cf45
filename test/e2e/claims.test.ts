import dgram from 'node:dgram';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManagementClient } from '../../api/management-client.ts';
import { StateDecoder } from '../../api/state-codec.ts';
import { DtlsClient } from '../../client/index.ts';
import { relayClientTlsOptions } from '../../orchestrator/platform/local/pki.ts';
import { closeAll, generateDeviceKey, request } from '../support/devices.ts';
import { eventually } from '../support/eventually.ts';
import { metricValue, relayFixture, type RelayProcess } from '../support/relayd.ts';
import { StateTamperingProxy } from '../support/tampering-proxy.ts';


/** A UDP socket standing for the device's address; `target` plays the load balancer's choice of relay. */
async function movableFlow(ports: number[]) {
  const socket = dgram.createSocket('udp4');
  const state = { target: ports[0]!, device: null as dgram.RemoteInfo | null, lastFromDevice: null as Buffer | null };
  socket.on('message', (datagram, rinfo) => {
    if (ports.includes(rinfo.port)) {
      // Only the relay the flow is pinned to can answer through it (conntrack).
      if (rinfo.port === state.target && state.device !== null) socket.send(datagram, state.device.port, state.device.address);
      return;
    }
    state.device = rinfo;
    state.lastFromDevice = datagram;
    socket.send(datagram, state.target, '127.0.0.1');
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return { socket, state, port: socket.address().port };
}

describe('sessions follow their device between sibling relays', () => {
  const fixture = relayFixture();
  const relay = (name: string, args: string[] = []): Promise<RelayProcess> => fixture.relay(name, args);

  it('a relay that receives a flow it has no session for claims it from the sibling that has it', async () => {
    const a = await relay('relay-b-0');
    const b = await relay('relay-b-1', ['--peers', `127.0.0.1:${new URL(a.mgmtUrl).port}`]);
    const flow = await movableFlow([a.dtlsPort, b.dtlsPort]);
    const client = new DtlsClient({ host: '127.0.0.1', port: flow.port, serverPublicKey: fixture.env.pki.dtls.publicKeyDer, clientKey: generateDeviceKey() });
    await client.connect();
    try {
      await request(client, Buffer.from('on a'));
      // The load balancer forgets the flow and picks the other relay.
      flow.state.target = b.dtlsPort;
      expect((await request(client, Buffer.from('on b'), { timeoutMs: 3_000 })).reply.toString()).toBe('on b');
      expect(client.stats.handshakes).toBe(1);
      expect(client.stats.replaysDropped).toBe(0);
      expect((await fixture.env.operator.status(a.mgmtUrl)).sessions.total).toBe(0);
      expect((await fixture.env.operator.status(b.mgmtUrl)).sessions.total).toBe(1);
      expect(metricValue(await fixture.env.operator.metrics(b.mgmtUrl), 'relay_session_claims_total{result="claimed"}')).toBe(1);
      expect(metricValue(await fixture.env.operator.metrics(a.mgmtUrl), 'relay_session_claims_total{result="gave"}')).toBe(1);
      // And it keeps working there.
      for (let i = 0; i < 5; i++) await request(client, Buffer.from(`b ${i}`));
    } finally {
      await closeAll([client]);
      flow.socket.close();
    }
  });

  it('an owner gives a session only for an authentic, fresh record', async () => {
    const a = await relay('relay-b-0');
    const flow = await movableFlow([a.dtlsPort]);
    const client = new DtlsClient({ host: '127.0.0.1', port: flow.port, serverPublicKey: fixture.env.pki.dtls.publicKeyDer, clientKey: generateDeviceKey() });
    await client.connect();
    const sibling = new ManagementClient(relayClientTlsOptions(fixture.env.pki));
    try {
      await request(client, Buffer.from('hello'));
      const seen = flow.state.lastFromDevice!;
      const peer = { address: '127.0.0.1', port: flow.port };
      let claimId = 0;
      const given = async (claims: Array<{ peer: { address: string; port: number }; record: Buffer }>): Promise<number> => {
        const stream = await sibling.claim(a.mgmtUrl, { claimant: 'mallory', claimId: `c-${++claimId}`, claims: claims.map((c) => ({ peer: c.peer, record: c.record.toString('base64') })) });
        const decoder = new StateDecoder({ now: Date.now() });
        for await (const chunk of stream.body) decoder.push(chunk);
        return decoder.finish().sessions.length;
      };
      // A record the owner has already processed is a replay: no.
      expect(await given([{ peer, record: seen }])).toBe(0);
      // A forged record: no.
      const forged = Buffer.from(seen);
      forged.writeUIntBE(seen.readUIntBE(5, 6) + 10, 5, 6);
      forged[forged.length - 1]! ^= 1;
      expect(await given([{ peer, record: forged }])).toBe(0);
      // An address it does not hold: nothing.
      expect(await given([{ peer: { address: '127.0.0.1', port: 9 }, record: seen }])).toBe(0);
      // A malformed claim is refused with a reason.
      await expect(sibling.claim(a.mgmtUrl, { claimant: 'x', claims: [{ peer: { address: 'nowhere', port: 1 }, record: 'AA==' }] })).rejects.toMatchObject({ status: 400, remoteCode: 'ERR_BAD_REQUEST' });
      // The session is untouched.
      expect((await request(client, Buffer.from('still mine'))).reply.toString()).toBe('still mine');
      expect(metricValue(await fixture.env.operator.metrics(a.mgmtUrl), 'relay_session_claims_total{result="refused"}')).toBe(2);
    } finally {
      await sibling.close();
      await closeAll([client]);
      flow.socket.close();
    }
  });

  it('a relay restoring from its successor (a handback) claims nothing: what reaches it waits for the restore and is answered after it', async () => {
    const peersFile = join(fixture.env.dir, 'peers');
    const a = await relay('relay-a-0', ['--peers-file', peersFile]);
    const b = await relay('relay-b-0', ['--await-restore', '--peers-file', peersFile]);
    await writeFile(peersFile, [a.mgmtUrl, b.mgmtUrl].map((url) => new URL(url).host).join('\n'));
    const flow = await movableFlow([a.dtlsPort, b.dtlsPort]);
    const client = new DtlsClient({ host: '127.0.0.1', port: flow.port, serverPublicKey: fixture.env.pki.dtls.publicKeyDer, clientKey: generateDeviceKey() });
    await client.connect();
    const { operator } = fixture.env;
    const proxy = new StateTamperingProxy({ target: b.mgmtUrl, pki: fixture.env.pki, mode: { kind: 'hold' } });
    try {
      await request(client, Buffer.from('on a'));
      await operator.restore(b.mgmtUrl, { from: a.mgmtUrl });
      // The flow stays on a, which tunnels it to b.
      expect((await request(client, Buffer.from('through a'))).reply.toString()).toBe('through a');

      // The handback, held once b is paused: a is restoring and does not hold the session yet.
      const handback = operator.restore(a.mgmtUrl, { from: await proxy.listen() });
      await eventually('b paused for the handback', async () => (await operator.status(b.mgmtUrl)).state === 'handing-over');
      expect((await operator.status(a.mgmtUrl)).state).toBe('restoring');
      const received = metricValue(await operator.metrics(a.mgmtUrl), 'relay_datagrams_total{direction="device_in"}');
      const answer = request(client, Buffer.from('during the handback'), { timeoutMs: 5_000 });
      await eventually('the request to reach a', async () => metricValue(await operator.metrics(a.mgmtUrl), 'relay_datagrams_total{direction="device_in"}') > received);
      proxy.release();
      expect(await handback).toMatchObject({ sessions: 1 });
      // Answered once a held the session: no claim, no retransmission, no handshake.
      expect((await answer).reply.toString()).toBe('during the handback');
      expect(client.stats.handshakes).toBe(1);
      const metrics = await operator.metrics(a.mgmtUrl);
      for (const result of ['claimed', 'unowned', 'declined', 'dropped']) expect(metricValue(metrics, `relay_session_claims_total{result="${result}"}`), result).toBe(0);
      expect((await operator.status(a.mgmtUrl)).sessions.total).toBe(1);
    } finally {
      await proxy.close();
      await closeAll([client]);
      flow.socket.close();
    }
  });
});
