import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeSessions } from '../../api/state-codec.ts';
import type { SessionState } from '../../api/state-format.ts';
import { DtlsClient, generateDeviceKey } from '../../client/index.ts';
import { SessionClaims, type ClaimHost } from '../../relay/cluster/claims.ts';
import type { PeerDirectory } from '../../relay/cluster/peers.ts';
import { DtlsAdapter } from '../../relay/dtls/adapter.ts';
import { fixtureSessions, FIXTURE_CREATED_AT } from '../fixtures/state/fixtures.ts';
import { adapterOnLoopback, deviceFlow, dtlsKeys } from '../support/adapter-harness.ts';
import { request } from '../support/devices.ts';
import { RecordingResponse, jsonRequest } from '../support/mgmt-doubles.ts';

type Counted = Parameters<ClaimHost['counted']>[0];

let serverKey: Buffer;
let publicKey: Buffer;
const open: Array<{ close(): unknown }> = [];

beforeAll(async () => {
  ({ serverKey, publicKey } = await dtlsKeys());
});

afterEach(async () => {
  for (const item of open.splice(0)) await item.close();
});

/** A device connected to the relay at `port` through a flow that records what it sends. */
async function deviceThroughFlow(port: number) {
  const flow = await deviceFlow(port);
  open.push(flow);
  const client = new DtlsClient({ host: '127.0.0.1', port: flow.peer.port, serverPublicKey: publicKey, clientKey: generateDeviceKey() });
  open.push({ close: () => client.close({ notify: false }) });
  await client.connect();
  return { flow, client };
}

function ownerHost(adapter: DtlsAdapter, counts: Map<Counted, number>): ClaimHost {
  return {
    podName: 'relay-b-0',
    state: 'serving',
    log: pino({ level: 'silent' }),
    adapter,
    peers: {} as ClaimHost['peers'],
    released: () => undefined,
    counted: (event, count = 1) => counts.set(event, (counts.get(event) ?? 0) + count),
  };
}

/** What POST /v1/sessions/claim answers for one claim. */
async function claimWith(claims: SessionClaims, peer: { address: string; port: number }, record: Buffer): Promise<SessionState[]> {
  const response = new RecordingResponse();
  await claims.handle(jsonRequest({ claimant: 'relay-b-1', claims: [{ peer, record: record.toString('base64') }] }), response.asServerResponse());
  expect(response.statusCode).toBe(200);
  return response.sessions();
}

const CONTENT_HANDSHAKE = 22;
const CONTENT_APPLICATION_DATA = 23;
const recordType = (datagram: Buffer): number => datagram[0]!;
const recordEpoch = (datagram: Buffer): number => datagram.readUInt16BE(3);

describe('claim proofs: the owner gives a session only for a record it has not seen', () => {
  it('refuses the replayed handshake Finished and every record already seen, and the session goes on unharmed', async () => {
    const owner = await adapterOnLoopback(serverKey);
    open.push(owner);
    const { flow, client } = await deviceThroughFlow(owner.port);
    await request(client, Buffer.from('first'), { retransmit: false });
    await request(client, Buffer.from('second'), { retransmit: false });

    const finished = flow.fromDevice.find((d) => recordType(d) === CONTENT_HANDSHAKE && recordEpoch(d) === 1);
    const data = flow.fromDevice.filter((d) => recordType(d) === CONTENT_APPLICATION_DATA);
    expect(finished).toBeDefined();
    expect(data).toHaveLength(2);

    const counts = new Map<Counted, number>();
    const claims = new SessionClaims(ownerHost(owner.adapter, counts), {} as PeerDirectory);
    const session = owner.adapter.getSession(flow.peer)!;
    const before = { outSequence: session.outSequence, top: session.replay.top, recordsIn: session.recordsIn };

    for (const seen of [finished!, ...data]) expect(await claimWith(claims, flow.peer, seen)).toEqual([]);
    expect(counts.get('refused')).toBe(3);
    expect(counts.get('gave')).toBeUndefined();

    // A failed proof costs the owner nothing: same session, same sequence numbers, still answering.
    expect(owner.adapter.getSession(flow.peer)).toBe(session);
    expect({ outSequence: session.outSequence, top: session.replay.top, recordsIn: session.recordsIn }).toEqual(before);
    expect((await request(client, Buffer.from('still here'), { retransmit: false })).reply.toString()).toBe('still here');
    expect(client.stats.handshakes).toBe(1);

    // The Finished was marked in the window when the session was established: replayed to the
    // owner itself, it stops at the window instead of reaching mbedtls.
    await flow.sendFromDevice(finished!);
    await request(client, Buffer.from('after the replay'), { retransmit: false });
    expect(owner.drops.get('replay')).toBe(1);
  });

  it('gives the session for an authentic record that never reached it', async () => {
    const owner = await adapterOnLoopback(serverKey);
    open.push(owner);
    const { flow, client } = await deviceThroughFlow(owner.port);
    await request(client, Buffer.from('seen'), { retransmit: false });
    // The load balancer moved the flow: the next record goes elsewhere.
    flow.forward = false;
    const sent = flow.fromDevice.length;
    client.send(Buffer.from('fresh'));
    await new Promise<void>((resolve) => {
      const poll = (): void => void (flow.fromDevice.length > sent ? resolve() : setImmediate(poll));
      poll();
    });
    const fresh = flow.fromDevice[sent]!;

    const counts = new Map<Counted, number>();
    const claims = new SessionClaims(ownerHost(owner.adapter, counts), {} as PeerDirectory);
    const given = await claimWith(claims, flow.peer, fresh);
    expect(given.map((s) => s.peer)).toEqual([flow.peer]);
    expect(owner.adapter.sessionCount).toBe(0);
    expect(counts.get('gave')).toBe(1);
  });
});

describe('claim answers: all or nothing, like a restore', () => {
  const peer = { address: '198.51.100.20', port: 40_000 };
  /** An application-data record from `peer` that this relay has no session for. */
  const unknownRecord = Buffer.concat([Buffer.from([CONTENT_APPLICATION_DATA, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 0, 24]), Buffer.alloc(24, 1)]);

  function ownedSession(at = peer): SessionState {
    return { ...fixtureSessions()[0]!, peer: at };
  }

  /** A claimant whose one sibling answers `answer`; resolves with what it counted once the batch is done. */
  async function claimAgainst(answer: Buffer[]) {
    const adapter = new DtlsAdapter({
      serverKey,
      events: { transmit: () => undefined, established: () => undefined, data: () => undefined, closed: () => undefined, handshakeFailed: () => undefined, dropped: () => undefined },
    });
    open.push({ close: () => adapter.close() });
    const counted: Counted[] = [];
    let done: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const host: ClaimHost = {
      ...ownerHost(adapter, new Map()),
      podName: 'relay-b-1',
      peers: {
        claim: async () => ({ headers: {}, body: (async function* () { yield* answer; })() }),
      } as unknown as ClaimHost['peers'],
      counted: (event) => {
        counted.push(event);
        if (event === 'claimed' || event === 'unowned') done();
      },
    };
    const claims = new SessionClaims(host, { list: async () => ['https://relay-b-0:8443'] } as unknown as PeerDirectory);
    claims.onUnknownSession(unknownRecord, peer, null);
    await finished;
    return { adapter, counted };
  }

  const stream = (sessions: SessionState[], count = sessions.length): Buffer => encodeSessions({ source: 'relay-b-0', createdAt: FIXTURE_CREATED_AT, count }, sessions);

  it('imports an intact answer (control)', async () => {
    const { adapter, counted } = await claimAgainst([stream([ownedSession()])]);
    expect(counted).toEqual(['claimed']);
    expect(adapter.getSession(peer)).toBeDefined();
  });

  it('imports nothing from an answer whose SHA-256 does not match', async () => {
    const altered = stream([ownedSession()]);
    altered[altered.length - 1]! ^= 1; // the last byte of the trailer's sha256
    const { adapter, counted } = await claimAgainst([altered]);
    expect(counted).toEqual(['bad-answer', 'unowned']);
    expect(adapter.sessionCount).toBe(0);
  });

  it('imports nothing from an answer cut before its trailer', async () => {
    const whole = stream([ownedSession()]);
    const trailerBytes = new Packr({ useRecords: false, variableMapSize: true }).pack({ count: 1, sha256: Buffer.alloc(32) }).length;
    const { adapter, counted } = await claimAgainst([whole.subarray(0, whole.length - trailerBytes)]);
    expect(counted).toEqual(['bad-answer', 'unowned']);
    expect(adapter.sessionCount).toBe(0);
  });

  it('imports nothing from an answer that carries sessions nobody claimed', async () => {
    const { adapter, counted } = await claimAgainst([stream([ownedSession(), ownedSession({ address: '198.51.100.21', port: 1 })])]);
    expect(counted).toEqual(['bad-answer', 'unowned']);
    expect(adapter.sessionCount).toBe(0);
  });
});
