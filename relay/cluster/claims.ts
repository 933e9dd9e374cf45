import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { ManagementClient } from '../../api/management-client.ts';
import type { ClaimRequest, RelayState } from '../../api/management.ts';
import { STATE_CONTENT_TYPE } from '../../api/management.ts';
import { StateDecoder, encodeSessionChunks } from '../../api/state-codec.ts';
import { MAX_INBOUND_DATAGRAM, type DtlsAdapter, type ExportedSession } from '../dtls/adapter.ts';
import { fenceSequence } from '../handover/fence.ts';
import { HttpError, readJson } from '../mgmt/server.ts';
import { peerKey, type PeerAddress, type Session, type Via } from '../session/session.ts';
import type { PeerDirectory } from './peers.ts';

/**
 * Sessions follow their device's flow between sibling relays.
 *
 * A load balancer may move a device's flow to another relay at any time: its conntrack entry
 * expired while the device slept, or the relay it was pinned to was deleted by an update. Without
 * DTLS Connection IDs the new relay cannot tell which relay holds the session, so it asks all of
 * them, showing the datagram it received. The owner checks that the record is authentic and fresh
 * (so a spoofed address cannot pull sessions around), then hands the session over with the same
 * state format and nonce fence as a handover. Datagrams that arrive meanwhile wait, bounded.
 */
const PENDING_PER_PEER = 16;
const MAX_CLAIMS_IN_FLIGHT = 256;
/** After nobody owned an address, its datagrams are dropped for this long instead of asking again. */
const NEGATIVE_CACHE_MS = 5_000;

export interface ClaimHost {
  readonly podName: string;
  readonly state: RelayState;
  readonly log: Logger;
  readonly adapter: DtlsAdapter;
  readonly peers: ManagementClient;
  /** The session left this relay: its upstream socket goes too. */
  released(session: Session): void;
  counted(event: 'claimed' | 'unowned' | 'gave' | 'refused' | 'dropped'): void;
}

interface PendingClaim {
  datagrams: Array<{ datagram: Buffer; via: Via }>;
}

export class SessionClaims {
  private readonly host: ClaimHost;
  private readonly directory: PeerDirectory;
  private readonly pending = new Map<string, PendingClaim>();
  private readonly unowned = new Map<string, number>();

  constructor(host: ClaimHost, directory: PeerDirectory) {
    this.host = host;
    this.directory = directory;
  }

  /** Claimant side: a datagram for a session we do not hold. */
  onUnknownSession(datagram: Buffer, peer: PeerAddress, via: Via): void {
    const key = peerKey(peer);
    const waiting = this.pending.get(key);
    if (waiting !== undefined) {
      if (waiting.datagrams.length < PENDING_PER_PEER) waiting.datagrams.push({ datagram, via });
      else this.host.counted('dropped');
      return;
    }
    const unownedUntil = this.unowned.get(key);
    if ((unownedUntil !== undefined && unownedUntil > Date.now()) || this.pending.size >= MAX_CLAIMS_IN_FLIGHT || datagram.length > MAX_INBOUND_DATAGRAM) {
      this.host.counted('dropped');
      return;
    }
    this.unowned.delete(key);
    const claim: PendingClaim = { datagrams: [{ datagram, via }] };
    this.pending.set(key, claim);
    void this.claim(key, peer, datagram, via).finally(() => this.pending.delete(key));
  }

  private async claim(key: string, peer: PeerAddress, datagram: Buffer, via: Via): Promise<void> {
    const body: ClaimRequest = { peer: { address: peer.address, port: peer.port }, record: datagram.toString('base64'), claimant: this.host.podName };
    let session: ExportedSession | null = null;
    try {
      const siblings = await this.directory.list();
      // Ask everyone at once; at most one holds it.
      const answers = await Promise.allSettled(siblings.map(async (url) => {
        const stream = await this.host.peers.claim(url, body);
        if (stream === null) return null;
        const decoder = new StateDecoder({ now: Date.now() });
        for await (const chunk of stream.body) decoder.push(chunk);
        return decoder.finish().sessions[0] ?? null;
      }));
      for (const answer of answers) if (answer.status === 'fulfilled' && answer.value !== null) session = answer.value;
    } catch (error) {
      this.host.log.debug({ err: error, peer: key }, 'claim failed');
    }
    const claim = this.pending.get(key);
    const outSeq = session === null ? null : fenceSequence(session.dtls.outSeq);
    if (session === null || outSeq === null || !this.accepting()) {
      this.unowned.set(key, Date.now() + NEGATIVE_CACHE_MS);
      this.host.counted('unowned');
      return;
    }
    this.host.adapter.importSessions([{ ...session, dtls: { ...session.dtls, outSeq } }], via);
    this.host.counted('claimed');
    this.host.log.debug({ peer: key }, 'session claimed from a sibling');
    this.pending.delete(key);
    for (const item of claim?.datagrams ?? []) this.host.adapter.receive(item.datagram, peer, item.via);
  }

  private accepting(): boolean {
    return this.host.state === 'serving' || this.host.state === 'awaiting-restore';
  }

  /** Owner side: POST /v1/sessions/claim. */
  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = parseClaim(await readJson(request));
    const { adapter } = this.host;
    const session = adapter.getSession(body.peer);
    // Only a serving owner gives sessions away; while paused or forwarding they belong to a handover.
    if (session === undefined || this.host.state !== 'serving') {
      throw new HttpError(404, 'ERR_NOT_OWNER', `no session for ${peerKey(body.peer)} here`);
    }
    const datagram = Buffer.from(body.record, 'base64');
    if (!adapter.provesSession(session, datagram)) {
      this.host.counted('refused');
      throw new HttpError(403, 'ERR_BAD_PROOF', 'the record does not authenticate under that session, or it is a replay');
    }
    const [exported] = adapter.exportSessions((candidate) => candidate === session);
    adapter.discard([session]);
    this.host.released(session);
    this.host.counted('gave');
    this.host.log.debug({ peer: session.key, claimant: body.claimant }, 'session handed to a sibling');
    response.writeHead(200, { 'content-type': STATE_CONTENT_TYPE, 'cache-control': 'no-store' });
    for (const chunk of encodeSessionChunks({ source: this.host.podName, createdAt: Date.now(), count: 1 }, [{ ...exported!, upstream: { identity: null } }])) response.write(chunk);
    response.end();
  }
}

function parseClaim(value: unknown): ClaimRequest {
  const body = value as Partial<ClaimRequest> | null;
  const fail = (message: string): never => {
    throw new HttpError(400, 'ERR_BAD_REQUEST', message);
  };
  if (body === null || typeof body !== 'object') return fail('body must be a JSON object');
  const peer = body.peer;
  if (peer === undefined || typeof peer !== 'object' || typeof peer.address !== 'string' || isIP(peer.address) === 0) fail('peer.address must be an IP address');
  if (!Number.isInteger(peer!.port) || peer!.port < 1 || peer!.port > 65535) fail('peer.port must be a port 1-65535');
  if (typeof body.record !== 'string' || body.record.length === 0 || body.record.length > 2 * MAX_INBOUND_DATAGRAM) fail('record must be the device datagram in base64');
  if (typeof body.claimant !== 'string' || body.claimant.length > 253) fail('claimant must be a pod name');
  return body as ClaimRequest;
}
