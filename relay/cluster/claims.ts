import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { ManagementClient } from '../../api/management-client.ts';
import type { ClaimRequest, ClaimSettleRequest, ClaimSettleResponse, RelayState } from '../../api/management.ts';
import { STATE_CONTENT_TYPE } from '../../api/management.ts';
import { encodeSessionChunks } from '../../api/state-codec.ts';
import type { SessionState } from '../../api/state-format.ts';
import { MAX_INBOUND_DATAGRAM, type DtlsAdapter } from '../dtls/adapter.ts';
import { fenceSequence } from '../handover/fence.ts';
import { ImportStage } from '../handover/staged-import.ts';
import { asStateRecords } from '../handover/state-records.ts';
import { HttpError, readJson, sendJson } from '../mgmt/server.ts';
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
 * (claim-proof.ts: a spoofed address or a replayed record cannot pull sessions around), then offers
 * the session with the same state format and nonce fence as a handover.
 *
 * The give is two-phase, so a session is never on neither relay. The owner keeps what it offers,
 * held for the claim (the session's datagrams wait), until the claimant settles the claim: the
 * sessions it imported leave the owner, the others the owner serves again. The claimant takes an
 * offered session only while it can serve it (serving or awaiting its restore, with room, and a
 * sequence number the fence can move); a relay that is restoring does not claim at all (relay.ts
 * holds those datagrams until its restore ends). An owner that never hears back counts the offer
 * as taken: two relays must never both serve one session (their nonce fences would overlap).
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
/**
 * How long an owner holds offered sessions for a claimant that does not settle: longer than a claimant
 * takes to read its answer, import it and settle, before it counts them as taken.
 */
export const OFFER_TIMEOUT_MS = 15_000;
const SETTLE_TIMEOUT_MS = 2_000;
/** A settle that found no answer is tried again, 0.5 s, 1 s, 2 s ... later, while the owner still holds its offer. */
const SETTLE_RETRY_FOR_MS = OFFER_TIMEOUT_MS - 3_000;
/** Why a claim request failed without reaching the owner: then it offered nothing and there is nothing to settle. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * claimed: taken over from a sibling. unowned: nobody offered it. declined: offered, but this relay
 * could not take it (left with its owner). gave: taken by a sibling (settled, or its offer timed out).
 * kept: offered, not taken, served again. refused: bad proof. dropped: claim queue full or no room.
 * bad-answer: a sibling's answer refused as a whole (altered, cut, or not what was asked).
 */
export type ClaimEvent = 'claimed' | 'unowned' | 'declined' | 'gave' | 'kept' | 'refused' | 'dropped' | 'bad-answer';

export interface ClaimHost {
  readonly podName: string;
  readonly state: RelayState;
  readonly log: Logger;
  readonly adapter: DtlsAdapter;
  readonly peers: ManagementClient;
  /** The session left this relay: its upstream socket goes too. */
  released(session: Session): void;
  counted(event: ClaimEvent, count?: number): void;
  /**
   * A datagram a claim held, to be handled as the relay's state says (processed, queued while paused,
   * forwarded, held while restoring).
   */
  deliver(datagram: Buffer, peer: PeerAddress, via: Via): void;
  /** Datagrams held for an offered session that could not wait (held-overflow) or whose session was taken (claimed-away). */
  dropped(reason: 'held-overflow' | 'claimed-away', count?: number): void;
}

interface PendingClaim {
  peer: PeerAddress;
  /** The first datagram: the proof shown to the owner. */
  proof: Buffer;
  datagrams: Array<{ datagram: Buffer; via: Via }>;
}

/** What a batch of claims got from its siblings, by device address. */
interface ClaimOutcome {
  offered: Set<string>;
  taken: Set<string>;
}

/** An owner's offer of sessions to one claim, until it is settled or times out. */
interface Offer {
  claimId: string;
  claimant: string;
  sessions: Map<string, { session: Session; held: Array<{ datagram: Buffer; via: Via }> }>;
  timer: NodeJS.Timeout;
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
  /** Owner side: open offers by claim id, and the offer each offered session belongs to. */
  private readonly offers = new Map<string, Offer>();
  private readonly offered = new Map<string, Offer>();
  private offersSettled: Array<() => void> = [];
  private readonly offerTimeoutMs: number;

  constructor(host: ClaimHost, directory: PeerDirectory, options: { offerTimeoutMs?: number } = {}) {
    this.host = host;
    this.directory = directory;
    this.offerTimeoutMs = options.offerTimeoutMs ?? OFFER_TIMEOUT_MS;
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
    // A claim the relay has no room to import would only be declined.
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
      claimId: randomUUID(),
      claims: batch.map((claim) => ({ peer: { address: claim.peer.address, port: claim.peer.port }, record: claim.proof.toString('base64') })),
    };
    const claims = new Map(batch.map((claim) => [peerKey(claim.peer), claim]));
    const outcome: ClaimOutcome = { offered: new Set(), taken: new Set() };
    try {
      const siblings = await this.directory.list();
      // Every sibling gets the whole batch; each session has at most one owner. Each answer is taken
      // whole or not at all, and settled as soon as it is imported, so its owner holds it briefly.
      await Promise.all(siblings.map((url) => this.claimFrom(url, body, claims, outcome)));
    } catch (error) {
      this.host.log.debug({ err: error }, 'claim batch failed');
    }
    let unowned = 0;
    let declined = 0;
    for (const [key, claim] of claims) {
      this.pending.delete(key);
      if (outcome.taken.has(key)) continue;
      this.unowned.set(key, Date.now() + NEGATIVE_CACHE_MS);
      if (outcome.offered.has(key)) declined++;
      else unowned++;
      // A relay that began a handover meanwhile queues or forwards what waited; one that still claims
      // would only ask again for a session nobody gave it.
      if (this.host.state !== 'serving' && this.host.state !== 'awaiting-restore') {
        for (const item of claim.datagrams) this.host.deliver(item.datagram, claim.peer, item.via);
      }
    }
    if (outcome.taken.size > 0) this.host.counted('claimed', outcome.taken.size);
    if (declined > 0) this.host.counted('declined', declined);
    if (unowned > 0) this.host.counted('unowned', unowned);
    this.sweepUnowned();
  }

  /**
   * Claims `body` from one sibling, imports what it offers that this relay can take, processes the
   * datagrams that waited for those, and settles the claim with that sibling.
   */
  private async claimFrom(url: string, body: ClaimRequest, claims: ReadonlyMap<string, PendingClaim>, outcome: ClaimOutcome): Promise<void> {
    let offered: SessionState[];
    try {
      const stream = await this.host.peers.claim(url, body, CLAIM_TIMEOUT_MS);
      offered = await readClaimAnswer(stream.body, new Set(claims.keys()), Date.now());
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      if (code === 'ERR_RELAY_CLAIM' || code.startsWith('ERR_STATE_')) {
        this.host.counted('bad-answer');
        this.host.log.warn({ code, reason: (error as Error).message }, 'claim answer refused; nothing of it imported');
      } else {
        this.host.log.debug({ err: error }, 'claim request failed');
      }
      // Whatever it may have offered stays with it.
      if (mayHaveOffered(error)) void this.settle(url, body, []);
      return;
    }
    if (offered.length === 0) return;
    const mine: PeerAddress[] = [];
    for (const session of offered) {
      const key = peerKey(session.peer);
      const claim = claims.get(key)!;
      outcome.offered.add(key);
      // Only a relay that serves (or awaits its restore) takes sessions; anything else leaves them with their owner.
      const accepting = this.host.state === 'serving' || this.host.state === 'awaiting-restore';
      if (outcome.taken.has(key) || !accepting || !this.importClaimed(session, claim.datagrams[0]!.via)) continue;
      outcome.taken.add(key);
      mine.push(claim.peer);
      for (const item of claim.datagrams) this.host.adapter.receive(item.datagram, claim.peer, item.via);
    }
    // Not awaited: the batch (and the claims waiting for a batch slot) need not wait for a slow owner.
    void this.settle(url, body, mine);
  }

  /**
   * Tells the owner what was taken. Tried again while the owner still holds its offer, because an owner
   * that hears nothing counts all of it as taken.
   */
  private async settle(url: string, body: ClaimRequest, taken: PeerAddress[]): Promise<void> {
    const request = { claimant: body.claimant, claimId: body.claimId!, taken: taken.map((peer) => ({ address: peer.address, port: peer.port })) };
    const until = Date.now() + SETTLE_RETRY_FOR_MS;
    for (let delayMs = 500; ; delayMs *= 2) {
      try {
        await this.host.peers.settleClaim(url, request, SETTLE_TIMEOUT_MS);
        return;
      } catch (error) {
        // An answer means the owner heard it (an owner that offered nothing knows no such claim).
        if ((error as { status?: number | null }).status != null) return;
        if (Date.now() + delayMs >= until || this.host.state === 'stopping') {
          this.host.log.warn({ sibling: url, claimId: request.claimId, taken: taken.length, reason: (error as Error).message }, 'claim not settled; the owner counts its offer as taken');
          return;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
    }
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

  // --- owner side ------------------------------------------------------------------------------

  /** Owner side: POST /v1/sessions/claim. Answers with the sessions it offers: possibly none. */
  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = parseClaim(await readJson(request, 2 * 1024 * 1024));
    const { adapter } = this.host;
    const given: ExportedSession[] = [];
    let refused = 0;
    // Only a serving owner offers sessions; while paused or forwarding they belong to a handover. A
    // claimant that would not settle (no claimId) might drop what it is given: it gets nothing.
    if (this.host.state === 'serving' && body.claimId !== undefined && !this.offers.has(body.claimId)) {
      const sessions: Offer['sessions'] = new Map();
      for (const claim of body.claims) {
        const session = adapter.getSession(claim.peer);
        if (session === undefined || this.offered.has(session.key) || sessions.has(session.key)) continue;
        const state = adapter.exportSession(session);
        if (state === null) continue;
        if (!claimProofHolds(Buffer.from(claim.record, 'base64'), session.replay, state.dtls)) {
          refused++;
          continue;
        }
        // A session the claimant could not fence would be declined anyway: it stays here, serving.
        if (fenceSequence(state.dtls.outSeq) === null) continue;
        sessions.set(session.key, { session, held: [] });
        given.push(state);
      }
      if (sessions.size > 0) this.openOffer(body.claimId, body.claimant, sessions);
    } else if (this.host.state === 'serving' && body.claimId === undefined) {
      this.host.log.debug({ claimant: body.claimant }, 'claim without a claimId (a claimant that does not settle): nothing offered');
    }
    if (refused > 0) this.host.counted('refused', refused);
    if (given.length > 0) this.host.log.debug({ sessions: given.length, claimant: body.claimant, claimId: body.claimId }, 'sessions offered to a sibling');
    response.writeHead(200, { 'content-type': STATE_CONTENT_TYPE, 'cache-control': 'no-store' });
    for (const chunk of encodeSessionChunks({ source: this.host.podName, createdAt: Date.now(), count: given.length }, asStateRecords(given))) response.write(chunk);
    response.end();
  }

  /** Owner side: POST /v1/sessions/claim/settle. */
  async settleRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = parseSettle(await readJson(request, 256 * 1024));
    const offer = this.offers.get(body.claimId);
    if (offer === undefined || offer.claimant !== body.claimant) {
      // Already settled, timed out, or never offered anything: nothing to do.
      sendJson(response, 200, { claimId: body.claimId, taken: 0, kept: 0 } satisfies ClaimSettleResponse);
      return;
    }
    const result = this.closeOffer(offer, new Set(body.taken.map((peer) => peerKey(peer))));
    sendJson(response, 200, { claimId: body.claimId, ...result } satisfies ClaimSettleResponse);
  }

  /**
   * Owner side: holds a datagram for a session offered to a claim (it is neither this relay's to process
   * nor the claimant's yet). False when its session is not on offer.
   */
  holdIfOffered(datagram: Buffer, peer: PeerAddress, via: Via): boolean {
    if (this.offered.size === 0) return false;
    const offer = this.offered.get(peerKey(peer));
    if (offer === undefined) return false;
    const entry = offer.sessions.get(peerKey(peer))!;
    if (entry.held.length < PENDING_PER_PEER) entry.held.push({ datagram, via });
    else this.host.dropped('held-overflow');
    return true;
  }

  /** Whether sessions are on offer: a handover must not snapshot them while a claimant may be taking them. */
  get offering(): boolean {
    return this.offers.size > 0;
  }

  /** Resolves once no offer is open (each ends when settled, or at OFFER_TIMEOUT_MS). */
  offersClosed(): Promise<void> {
    if (this.offers.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.offersSettled.push(resolve));
  }

  /** Shutdown: open offers are abandoned with the relay. */
  close(): void {
    for (const offer of this.offers.values()) clearTimeout(offer.timer);
    this.offers.clear();
    this.offered.clear();
    for (const resolve of this.offersSettled.splice(0)) resolve();
  }

  private openOffer(claimId: string, claimant: string, sessions: Offer['sessions']): void {
    const offer: Offer = {
      claimId,
      claimant,
      sessions,
      timer: setTimeout(() => {
        if (this.offers.get(claimId) !== offer) return;
        // Never two relays serving one session: silence counts as taken.
        const { taken } = this.closeOffer(offer, new Set(offer.sessions.keys()));
        this.host.log.warn({ claimant, claimId, sessions: taken }, `claim not settled within ${this.offerTimeoutMs} ms; its sessions count as taken`);
      }, this.offerTimeoutMs),
    };
    offer.timer.unref();
    this.offers.set(claimId, offer);
    for (const key of sessions.keys()) this.offered.set(key, offer);
  }

  /** Ends an offer: `taken` sessions leave this relay, the others are served again with what waited for them. */
  private closeOffer(offer: Offer, taken: ReadonlySet<string>): { taken: number; kept: number } {
    clearTimeout(offer.timer);
    this.offers.delete(offer.claimId);
    for (const key of offer.sessions.keys()) this.offered.delete(key);
    const { adapter } = this.host;
    const gone: Session[] = [];
    const kept: Array<{ peer: PeerAddress; held: Array<{ datagram: Buffer; via: Via }> }> = [];
    let dropped = 0;
    for (const [key, { session, held }] of offer.sessions) {
      if (taken.has(key)) {
        gone.push(session);
        dropped += held.length;
      } else {
        kept.push({ peer: session.peer, held });
      }
    }
    adapter.discard(gone);
    for (const session of gone) this.host.released(session);
    if (gone.length > 0) this.host.counted('gave', gone.length);
    if (kept.length > 0) this.host.counted('kept', kept.length);
    if (dropped > 0) this.host.dropped('claimed-away', dropped);
    for (const { peer, held } of kept) for (const item of held) this.host.deliver(item.datagram, peer, item.via);
    if (this.offers.size === 0) for (const resolve of this.offersSettled.splice(0)) resolve();
    return { taken: gone.length, kept: kept.length };
  }
}

/** False when the claim request never reached the owner (refused connection, no route), or the owner refused it. */
function mayHaveOffered(error: unknown): boolean {
  const failure = error as { code?: string; cause?: { code?: string } };
  if (failure.code === 'ERR_MGMT_HTTP') return false;
  return failure.code !== 'ERR_MGMT_UNREACHABLE' || !NOT_CONNECTED.has(failure.cause?.code ?? '');
}

function badRequest(message: string): never {
  throw new HttpError(400, 'ERR_BAD_REQUEST', message);
}

/** What both bodies start with: an object naming its claimant. */
function checkClaimant(body: { claimant?: unknown } | null): void {
  if (body === null || typeof body !== 'object') badRequest('body must be a JSON object');
  if (typeof body!.claimant !== 'string' || body!.claimant.length > 253) badRequest('claimant must be a pod name');
}

/** A device address from a request body; `at` names the field in errors. */
function checkPeer(peer: unknown, at: string): void {
  const candidate = peer as { address?: unknown; port?: unknown } | null | undefined;
  if (candidate === null || typeof candidate !== 'object' || typeof candidate.address !== 'string' || isIP(candidate.address) === 0) badRequest(`${at}.address must be an IP address`);
  if (!Number.isInteger(candidate!.port) || (candidate!.port as number) < 1 || (candidate!.port as number) > 65535) badRequest(`${at}.port must be a port 1-65535`);
}

function parseClaim(value: unknown): ClaimRequest {
  const body = value as Partial<ClaimRequest> | null;
  checkClaimant(body);
  if (body!.claimId !== undefined && !isClaimId(body!.claimId)) badRequest('claimId must be 1-64 characters (a UUID)');
  if (!Array.isArray(body!.claims) || body!.claims.length > BATCH_MAX) badRequest(`claims must be an array of at most ${BATCH_MAX}`);
  body!.claims!.forEach((claim, i) => {
    checkPeer(claim?.peer, `claims[${i}].peer`);
    if (typeof claim.record !== 'string' || claim.record.length === 0 || claim.record.length > 2 * MAX_INBOUND_DATAGRAM) badRequest(`claims[${i}].record must be the device datagram in base64`);
  });
  return body as ClaimRequest;
}

function parseSettle(value: unknown): ClaimSettleRequest {
  const body = value as Partial<ClaimSettleRequest> | null;
  checkClaimant(body);
  if (!isClaimId(body!.claimId)) badRequest('claimId must be the id the claim was made with (1-64 characters)');
  if (!Array.isArray(body!.taken) || body!.taken.length > BATCH_MAX) badRequest(`taken must be an array of at most ${BATCH_MAX} addresses`);
  body!.taken!.forEach((peer, i) => checkPeer(peer, `taken[${i}]`));
  return body as ClaimSettleRequest;
}

function isClaimId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 64;
}
