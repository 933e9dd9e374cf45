import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { ManagementClient } from '../../api/management-client.ts';
import type { ClaimRequest, RelayState } from '../../api/management.ts';
import { STATE_CONTENT_TYPE } from '../../api/management.ts';
import { encodeSessionChunks } from '../../api/state-codec.ts';
import type { SessionState } from '../../api/state-format.ts';
import { MAX_INBOUND_DATAGRAM, type DtlsAdapter } from '../dtls/adapter.ts';
import { ImportStage } from '../handover/staged-import.ts';
import { asStateRecords } from '../handover/state-records.ts';
import { HttpError, readJson } from '../mgmt/server.ts';
import { Arena } from '../session/arena.ts';
import type { ExportedSession } from '../session/exported.ts';
import { peerKey, type PeerAddress, type Session, type Via } from '../session/session.ts';
import { readClaimAnswer } from './claim-answer.ts';
import { claimProofHolds } from './claim-proof.ts';
import type { PeerDirectory } from './peers.ts';

/**
 * Sessions follow their device's flow between sibling relays.
 *
 * A load balancer may move a device's flow to another relay at any time: its conntrack entry
 * expired while the device slept, or the relay it was pinned to was deleted by an update. Without
 * DTLS Connection IDs the new relay cannot tell which relay holds the session, so it asks all of
 * them, showing the datagram it received. The owner checks that the record is authentic and fresh
 * (claim-proof.ts: a spoofed address or a replayed record cannot pull sessions around), then hands
 * the session over with the same state format and nonce fence as a handover. An answer is imported
 * all or nothing, like a restore, and only while the relay has room. Datagrams that arrive
 * meanwhile wait, bounded.
 *
 * Claims are batched: when an old set is deleted, thousands of flows move at once, and one request
 * per sibling carrying hundreds of claims costs a fraction of one request per claim.
 */
const PENDING_PER_PEER = 16;
/** Addresses waiting for an answer; beyond this, datagrams of new unknown addresses are dropped. */
const MAX_PENDING = 50_000;
const BATCH_MAX = 1_000;
/** How long the first claim of a batch waits for others to join it. */
const BATCH_WINDOW_MS = 2;
const MAX_BATCHES_IN_FLIGHT = 4;
/** After nobody owned an address, its datagrams are dropped for this long instead of asking again. */
const NEGATIVE_CACHE_MS = 5_000;
const CLAIM_TIMEOUT_MS = 5_000;

export type ClaimEvent = 'claimed' | 'unowned' | 'gave' | 'refused' | 'dropped' | 'bad-answer';

export interface ClaimHost {
  readonly podName: string;
  readonly state: RelayState;
  readonly log: Logger;
  readonly adapter: DtlsAdapter;
  readonly peers: ManagementClient;
  /** The session left this relay: its upstream socket goes too. */
  released(session: Session): void;
  /** `bad-answer`: a sibling's answer was refused as a whole (altered, cut, or not what was asked). */
  counted(event: ClaimEvent, count?: number): void;
}

interface PendingClaim {
  peer: PeerAddress;
  /** The first datagram: the proof shown to the owner. */
  proof: Buffer;
  datagrams: Array<{ datagram: Buffer; via: Via }>;
}

export class SessionClaims {
  private readonly host: ClaimHost;
  private readonly directory: PeerDirectory;
  private readonly pending = new Map<string, PendingClaim>();
  private readonly unowned = new Map<string, number>();
  private queue: PendingClaim[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private batchesInFlight = 0;
  /** Claimed sessions arrive a few at a time: they share one arena instead of a slab each. */
  private readonly arena = new Arena();

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
    // A claim the relay has no room to import would only take the session from its owner.
    const full = this.pending.size >= Math.min(MAX_PENDING, this.host.adapter.room);
    if ((unownedUntil !== undefined && unownedUntil > Date.now()) || full || datagram.length > MAX_INBOUND_DATAGRAM) {
      this.host.counted('dropped');
      return;
    }
    this.unowned.delete(key);
    const claim: PendingClaim = { peer, proof: datagram, datagrams: [{ datagram, via }] };
    this.pending.set(key, claim);
    this.queue.push(claim);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== null || this.queue.length === 0 || this.batchesInFlight >= MAX_BATCHES_IN_FLIGHT) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      const batch = this.queue.splice(0, BATCH_MAX);
      this.batchesInFlight++;
      void this.claimBatch(batch).finally(() => {
        this.batchesInFlight--;
        this.scheduleFlush();
      });
    }, BATCH_WINDOW_MS);
  }

  private async claimBatch(batch: PendingClaim[]): Promise<void> {
    const body: ClaimRequest = {
      claimant: this.host.podName,
      claims: batch.map((claim) => ({ peer: { address: claim.peer.address, port: claim.peer.port }, record: claim.proof.toString('base64') })),
    };
    const asked = new Set(batch.map((claim) => peerKey(claim.peer)));
    const found = new Map<string, SessionState>();
    try {
      const siblings = await this.directory.list();
      // Every sibling gets the whole batch; each session has at most one owner. Each answer is
      // taken whole or not at all.
      const answers = await Promise.allSettled(siblings.map(async (url) => {
        const stream = await this.host.peers.claim(url, body, CLAIM_TIMEOUT_MS);
        return readClaimAnswer(stream.body, asked, Date.now());
      }));
      for (const answer of answers) {
        if (answer.status === 'fulfilled') {
          for (const session of answer.value) {
            const key = peerKey(session.peer);
            if (!found.has(key)) found.set(key, session);
          }
          continue;
        }
        const code = (answer.reason as { code?: string }).code ?? '';
        if (code === 'ERR_RELAY_CLAIM' || code.startsWith('ERR_STATE_')) {
          this.host.counted('bad-answer');
          this.host.log.warn({ code, reason: (answer.reason as Error).message }, 'claim answer refused; nothing of it imported');
        } else {
          this.host.log.debug({ err: answer.reason }, 'claim request failed');
        }
      }
    } catch (error) {
      this.host.log.debug({ err: error }, 'claim batch failed');
    }
    const accepting = this.host.state === 'serving' || this.host.state === 'awaiting-restore';
    let claimed = 0;
    let unowned = 0;
    for (const claim of batch) {
      const key = peerKey(claim.peer);
      this.pending.delete(key);
      const session = found.get(key);
      if (session === undefined || !accepting || !this.importClaimed(session, claim.datagrams[0]!.via)) {
        this.unowned.set(key, Date.now() + NEGATIVE_CACHE_MS);
        unowned++;
        continue;
      }
      claimed++;
      for (const item of claim.datagrams) this.host.adapter.receive(item.datagram, claim.peer, item.via);
    }
    if (claimed > 0) this.host.counted('claimed', claimed);
    if (unowned > 0) this.host.counted('unowned', unowned);
    this.sweepUnowned();
  }

  /** False when the session cannot be taken: too close to 2^48 to fence, or no room any more. */
  private importClaimed(session: SessionState, via: Via): boolean {
    const stage = new ImportStage(this.host.adapter, { via, arena: this.arena });
    try {
      stage.add(session);
      return stage.commit().length === 1;
    } catch (error) {
      stage.discard();
      this.host.log.debug({ code: (error as { code?: string }).code }, 'claimed session not imported');
      return false;
    }
  }

  private sweepUnowned(): void {
    if (this.unowned.size < 10_000) return;
    const now = Date.now();
    for (const [key, until] of this.unowned) if (until <= now) this.unowned.delete(key);
  }

  /** Owner side: POST /v1/sessions/claim. Answers with the sessions it gives: possibly none. */
  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = parseClaim(await readJson(request, 2 * 1024 * 1024));
    const { adapter } = this.host;
    const given: ExportedSession[] = [];
    let refused = 0;
    // Only a serving owner gives sessions away; while paused or forwarding they belong to a handover.
    if (this.host.state === 'serving') {
      for (const claim of body.claims) {
        const session = adapter.getSession(claim.peer);
        if (session === undefined) continue;
        const state = adapter.exportSession(session);
        if (state === null) continue;
        if (!claimProofHolds(Buffer.from(claim.record, 'base64'), session.replay, state.dtls)) {
          refused++;
          continue;
        }
        adapter.discard([session]);
        this.host.released(session);
        given.push(state);
      }
    }
    if (refused > 0) this.host.counted('refused', refused);
    if (given.length > 0) {
      this.host.counted('gave', given.length);
      this.host.log.debug({ sessions: given.length, claimant: body.claimant }, 'sessions handed to a sibling');
    }
    response.writeHead(200, { 'content-type': STATE_CONTENT_TYPE, 'cache-control': 'no-store' });
    for (const chunk of encodeSessionChunks({ source: this.host.podName, createdAt: Date.now(), count: given.length }, asStateRecords(given))) response.write(chunk);
    response.end();
  }
}

function parseClaim(value: unknown): ClaimRequest {
  const body = value as Partial<ClaimRequest> | null;
  const fail = (message: string): never => {
    throw new HttpError(400, 'ERR_BAD_REQUEST', message);
  };
  if (body === null || typeof body !== 'object') return fail('body must be a JSON object');
  if (typeof body.claimant !== 'string' || body.claimant.length > 253) fail('claimant must be a pod name');
  if (!Array.isArray(body.claims) || body.claims.length > BATCH_MAX) fail(`claims must be an array of at most ${BATCH_MAX}`);
  body.claims!.forEach((claim, i) => {
    const peer = claim?.peer;
    if (peer === undefined || typeof peer !== 'object' || typeof peer.address !== 'string' || isIP(peer.address) === 0) fail(`claims[${i}].peer.address must be an IP address`);
    if (!Number.isInteger(peer!.port) || peer!.port < 1 || peer!.port > 65535) fail(`claims[${i}].peer.port must be a port 1-65535`);
    if (typeof claim.record !== 'string' || claim.record.length === 0 || claim.record.length > 2 * MAX_INBOUND_DATAGRAM) fail(`claims[${i}].record must be the device datagram in base64`);
  });
  return body as ClaimRequest;
}
