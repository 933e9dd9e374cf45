import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManagementError } from '../../api/management-client.ts';
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

function ownerHost(adapter: DtlsAdapter, counts: Map<Counted, number>, delivered: Buffer[] = []): ClaimHost {
  return {
    podName: 'relay-b-0',
    state: 'serving',
    log: pino({ level: 'silent' }),
    adapter,
    peers: {} as ClaimHost['peers'],
    released: () => undefined,
    counted: (event, count = 1) => counts.set(event, (counts.get(event) ?? 0) + count),
    deliver: (datagram) => delivered.push(datagram),
    dropped: (reason, count = 1) => counts.set(reason as Counted, (counts.get(reason as Counted) ?? 0) + count),
  };
}

/** What POST /v1/sessions/claim answers for one claim. */
async function claimWith(claims: SessionClaims, peer: { address: string; port: number }, record: Buffer, claimId: string | null = 'claim-1'): Promise<SessionState[]> {
  const response = new RecordingResponse();
  await claims.handle(jsonRequest({ claimant: 'relay-b-1', ...(claimId === null ? {} : { claimId }), claims: [{ peer, record: record.toString('base64') }] }), response.asServerResponse());
  expect(response.statusCode).toBe(200);
  return response.sessions();
}

/** What POST /v1/sessions/claim/settle answers. */
async function settle(claims: SessionClaims, taken: Array<{ address: string; port: number }>, claimId = 'claim-1'): Promise<unknown> {
  const response = new RecordingResponse();
  await claims.settleRequest(jsonRequest({ claimant: 'relay-b-1', claimId, taken }), response.asServerResponse());
  expect(response.statusCode).toBe(200);
  return JSON.parse(Buffer.concat(response.chunks).toString());
}

/** An owner holding a device's session, and the device's next record, which never reached it. */
async function ownerAndFreshRecord() {
  const owner = await adapterOnLoopback(serverKey);
  open.push(owner);
  const { flow, client } = await deviceThroughFlow(owner.port);
  await request(client, Buffer.from('seen'), { retransmit: false });
  return { owner, flow, client, fresh: await recordElsewhere(flow, client, 'fresh') };
}

/** The device's next record, sent while its flow no longer reaches the owner (the load balancer moved it). */
async function recordElsewhere(flow: Awaited<ReturnType<typeof deviceFlow>>, client: DtlsClient, payload: string): Promise<Buffer> {
  flow.forward = false;
  const sent = flow.fromDevice.length;
  client.send(Buffer.from(payload));
  await new Promise<void>((resolve) => {
    const poll = (): void => void (flow.fromDevice.length > sent ? resolve() : setImmediate(poll));
    poll();
  });
  return flow.fromDevice[sent]!;
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

  it('offers the session for an authentic record that never reached it, and gives it once the claimant says it took it', async () => {
    const { owner, flow, client, fresh } = await ownerAndFreshRecord();

    const counts = new Map<Counted, number>();
    const claims = new SessionClaims(ownerHost(owner.adapter, counts), {} as PeerDirectory);
    const given = await claimWith(claims, flow.peer, fresh);
    expect(given.map((s) => s.peer)).toEqual([flow.peer]);
    // Offered, not gone: the owner keeps it until the claim is settled, and offers it to nobody else.
    expect(owner.adapter.sessionCount).toBe(1);
    expect(claims.offering).toBe(true);
    expect(await claimWith(claims, flow.peer, fresh, 'claim-2')).toEqual([]);
    expect(await settle(claims, [flow.peer])).toEqual({ claimId: 'claim-1', taken: 1, kept: 0 });
    expect(owner.adapter.sessionCount).toBe(0);
    expect(claims.offering).toBe(false);
    expect(Object.fromEntries(counts)).toEqual({ gave: 1 });
    // A settle repeated (its answer was lost) changes nothing.
    expect(await settle(claims, [flow.peer])).toEqual({ claimId: 'claim-1', taken: 0, kept: 0 });
  });

  it('keeps a session the claimant did not take, and serves the datagrams that waited for it', async () => {
    const { owner, flow, client, fresh } = await ownerAndFreshRecord();

    const counts = new Map<Counted, number>();
    const delivered: Buffer[] = [];
    const claims = new SessionClaims(ownerHost(owner.adapter, counts, delivered), {} as PeerDirectory);
    const session = owner.adapter.getSession(flow.peer)!;
    expect(await claimWith(claims, flow.peer, fresh)).toHaveLength(1);
    // While offered, the session's datagrams wait for the claim.
    const waiting = await recordElsewhere(flow, client, 'while offered');
    expect(claims.holdIfOffered(waiting, flow.peer, null)).toBe(true);
    expect(delivered).toEqual([]);
    expect(await settle(claims, [])).toEqual({ claimId: 'claim-1', taken: 0, kept: 1 });
    expect(owner.adapter.getSession(flow.peer)).toBe(session);
    expect(delivered).toEqual([waiting]);
    expect(claims.holdIfOffered(waiting, flow.peer, null)).toBe(false);
    expect(Object.fromEntries(counts)).toEqual({ kept: 1 });
    flow.forward = true;
    expect((await request(client, Buffer.from('still here'), { retransmit: false })).reply.toString()).toBe('still here');
  });

  it('counts an offer nobody settled as taken (two relays must never serve one session), dropping what waited for it', async () => {
    const { owner, flow, client, fresh } = await ownerAndFreshRecord();
    const late = await recordElsewhere(flow, client, 'late');
    const counts = new Map<Counted, number>();
    const claims = new SessionClaims(ownerHost(owner.adapter, counts), {} as PeerDirectory, { offerTimeoutMs: 200 });
    expect(await claimWith(claims, flow.peer, fresh)).toHaveLength(1);
    expect(claims.holdIfOffered(late, flow.peer, null)).toBe(true);
    await claims.offersClosed();
    expect(owner.adapter.sessionCount).toBe(0);
    expect(Object.fromEntries(counts)).toEqual({ gave: 1, 'claimed-away': 1 });
  });

  it('offers nothing to a claim without a claimId (a claimant that would not say what it took)', async () => {
    const { owner, flow, client, fresh } = await ownerAndFreshRecord();
    const counts = new Map<Counted, number>();
    const claims = new SessionClaims(ownerHost(owner.adapter, counts), {} as PeerDirectory);
    expect(await claimWith(claims, flow.peer, fresh, null)).toEqual([]);
    expect(owner.adapter.sessionCount).toBe(1);
    expect(claims.offering).toBe(false);
    // The same record with a claimId still proves the claim: nothing was spent on the first.
    expect(await claimWith(claims, flow.peer, fresh)).toHaveLength(1);
  });
});

describe('claim answers: all or nothing, like a restore', () => {
  const peer = { address: '198.51.100.20', port: 40_000 };
  /** An application-data record from `peer` that this relay has no session for. */
  const unknownRecord = Buffer.concat([Buffer.from([CONTENT_APPLICATION_DATA, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 0, 24]), Buffer.alloc(24, 1)]);

  function ownedSession(at = peer): SessionState {
    return { ...fixtureSessions()[0]!, peer: at };
  }

  /**
   * A claimant whose one sibling answers `answer`; resolves with what it counted, how it settled the claim and
   * what it handed back to the relay once the batch is done. `meanwhile` runs when the answer arrives.
   */
  async function claimAgainst(answer: Buffer[] | Error, meanwhile: (host: { state: ClaimHost['state'] }) => void = () => undefined) {
    const adapter = new DtlsAdapter({
      serverKey,
      events: { transmit: () => undefined, established: () => undefined, data: () => undefined, closed: () => undefined, handshakeFailed: () => undefined, dropped: () => undefined },
    });
    open.push({ close: () => adapter.close() });
    const counted: Counted[] = [];
    const settled: unknown[] = [];
    const delivered: Buffer[] = [];
    let done: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const host: { -readonly [K in keyof ClaimHost]: ClaimHost[K] } = {
      ...ownerHost(adapter, new Map(), delivered),
      podName: 'relay-b-1',
      peers: {
        claim: async () => {
          meanwhile(host);
          if (answer instanceof Error) throw answer;
          return { headers: {}, body: (async function* () { yield* answer; })() };
        },
        settleClaim: async (_url: string, body: unknown) => {
          settled.push(body);
          return {};
        },
      } as unknown as ClaimHost['peers'],
      counted: (event) => {
        counted.push(event);
        if (event === 'claimed' || event === 'unowned' || event === 'declined') done();
      },
    };
    const claims = new SessionClaims(host, { list: async () => ['https://relay-b-0:8443'] } as unknown as PeerDirectory);
    claims.onUnknownSession(unknownRecord, peer, null);
    await finished;
    return { adapter, counted, settled, delivered };
  }

  const stream = (sessions: SessionState[], count = sessions.length): Buffer => encodeSessions({ source: 'relay-b-0', createdAt: FIXTURE_CREATED_AT, count }, sessions);

  it('imports an intact answer and settles it as taken (control)', async () => {
    const { adapter, counted, settled } = await claimAgainst([stream([ownedSession()])]);
    expect(counted).toEqual(['claimed']);
    expect(adapter.getSession(peer)).toBeDefined();
    expect(settled).toEqual([{ claimant: 'relay-b-1', claimId: expect.any(String), taken: [peer] }]);
  });

  it('takes nothing once it can no longer serve the session (a handover began meanwhile): the owner keeps it, the datagram goes the relay\'s way', async () => {
    const { adapter, counted, settled, delivered } = await claimAgainst([stream([ownedSession()])], (host) => (host.state = 'handing-over'));
    expect(counted).toEqual(['declined']);
    expect(adapter.sessionCount).toBe(0);
    expect(settled).toEqual([{ claimant: 'relay-b-1', claimId: expect.any(String), taken: [] }]);
    expect(delivered).toEqual([unknownRecord]);
  });

  it('settles nothing with a sibling it could not reach (it offered nothing), but settles a claim whose answer timed out', async () => {
    const refused = new ManagementError('ERR_MGMT_UNREACHABLE', 'POST https://relay-b-0:8443/v1/sessions/claim: ECONNREFUSED', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    const unreachable = await claimAgainst(refused);
    expect(unreachable.counted).toEqual(['unowned']);
    expect(unreachable.settled).toEqual([]);
    const timedOut = await claimAgainst(new ManagementError('ERR_MGMT_TIMEOUT', 'POST https://relay-b-0:8443/v1/sessions/claim: body timeout'));
    expect(timedOut.counted).toEqual(['unowned']);
    expect(timedOut.settled).toEqual([{ claimant: 'relay-b-1', claimId: expect.any(String), taken: [] }]);
  });

  it('imports nothing from an answer whose SHA-256 does not match', async () => {
    const altered = stream([ownedSession()]);
    altered[altered.length - 1]! ^= 1; // the last byte of the trailer's sha256
    const { adapter, counted, settled } = await claimAgainst([altered]);
    expect(counted).toEqual(['bad-answer', 'unowned']);
    expect(adapter.sessionCount).toBe(0);
    // Whatever the sibling offered stays with it.
    expect(settled).toEqual([{ claimant: 'relay-b-1', claimId: expect.any(String), taken: [] }]);
  });

  it('imports nothing from an answer cut before its trailer', async () => {
    const whole = stream([ownedSession()]);
    const trailerBytes = new Packr({ useRecords: false, variableMapSize: true }).pack({ count: 1, sha256: Buffer.alloc(32) }).length;
    const { adapter, counted, settled } = await claimAgainst([whole.subarray(0, whole.length - trailerBytes)]);
    expect(counted).toEqual(['bad-answer', 'unowned']);
    expect(adapter.sessionCount).toBe(0);
    // Whatever the sibling offered stays with it.
    expect(settled).toEqual([{ claimant: 'relay-b-1', claimId: expect.any(String), taken: [] }]);
  });

  it('imports nothing from an answer that carries sessions nobody claimed', async () => {
    const { adapter, counted, settled } = await claimAgainst([stream([ownedSession(), ownedSession({ address: '198.51.100.21', port: 1 })])]);
    expect(counted).toEqual(['bad-answer', 'unowned']);
    expect(adapter.sessionCount).toBe(0);
    // Whatever the sibling offered stays with it.
    expect(settled).toEqual([{ claimant: 'relay-b-1', claimId: expect.any(String), taken: [] }]);
  });
});
