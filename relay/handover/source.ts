import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type {
  HandoverAbortRequest, HandoverCommitRequest, HandoverCommitResponse, HandoverRequest, PrecopyRequest,
} from '../../api/management.ts';
import { encodeSessionChunks } from '../../api/state-codec.ts';
import { HANDOVER_HEADERS, STATE_CONTENT_TYPE } from '../../api/management.ts';
import { HttpError, readJson, sendJson } from '../mgmt/server.ts';
import type { HandoverHost } from './host.ts';
import { changedSince, lazySnapshot, snapshotAll, type SessionVersion } from './snapshot.ts';
import { asStateRecords } from './state-records.ts';
import { FrameKind, TUNNEL_KEY_BYTES } from './tunnel-codec.ts';

/** Bounds on what a successor may ask for. */
const MIN_COMMIT_TIMEOUT_MS = 100;
const MAX_COMMIT_TIMEOUT_MS = 120_000;

/** A pre-copy is good for this long; a successor that takes longer gets the full state again. */
const PRECOPY_TTL_MS = 120_000;

interface Precopy {
  id: string;
  successor: string;
  versions: Map<string, SessionVersion>;
  expiresAt: number;
}

interface Pending {
  id: string;
  successor: string;
  pausedAt: number;
  streamed: boolean;
  deadline: NodeJS.Timeout | null;
}

/**
 * The OLD relay's side of a handover. Two-phase: pause and stream (POST /v1/handover), then either
 * commit (POST /v1/handover/commit: stop serving, forward stragglers) or resume as if nothing
 * happened (abort, commit deadline, or the stream broke). Until commit the old relay's sessions
 * stay intact, so nothing is lost whichever way it ends.
 */
export class HandoverSource {
  private readonly host: HandoverHost;
  private pending: Pending | null = null;
  /** Id and figures of the last committed handover: a repeated commit gets the same answer. */
  private committed: HandoverCommitResponse | null = null;
  private precopied: Precopy | null = null;

  constructor(host: HandoverHost) {
    this.host = host;
  }

  get active(): boolean {
    return this.pending !== null;
  }

  /**
   * Phase 0 (optional): a full snapshot streamed WITHOUT pausing. Sessions keep changing meanwhile;
   * the handover that follows sends only those that did, so the pause no longer grows with the
   * number of idle sessions.
   */
  async precopy(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readJson(request) as Partial<PrecopyRequest> | null;
    if (body === null || typeof body !== 'object' || typeof body.successor !== 'string' || body.successor.length === 0 || body.successor.length > 253) {
      throw new HttpError(400, 'ERR_BAD_REQUEST', 'successor must be a pod name of 1-253 characters');
    }
    if (this.host.state !== 'serving') {
      throw new HttpError(409, 'ERR_NOT_SERVING', `relay is ${this.host.state}; only a serving relay hands its sessions over`);
    }
    // Sessions are exported lazily as the stream is written, yielding to the event loop between
    // chunks: the relay keeps serving its devices while 100,000 sessions stream out.
    const snapshot = lazySnapshot(this.host.adapter);
    const precopy: Precopy = { id: randomUUID(), successor: body.successor, versions: snapshot.versions, expiresAt: Date.now() + PRECOPY_TTL_MS };
    this.precopied = precopy;
    response.writeHead(200, { 'content-type': STATE_CONTENT_TYPE, [HANDOVER_HEADERS.precopyId]: precopy.id, 'cache-control': 'no-store' });
    for (const chunk of encodeSessionChunks({ source: this.host.podName, createdAt: Date.now(), count: snapshot.count }, asStateRecords(snapshot.sessions))) {
      if (!response.write(chunk)) await once(response, 'drain');
      else await new Promise((resolve) => setImmediate(resolve));
      if (response.destroyed) return;
    }
    response.end();
    this.host.log.info({ precopy: precopy.id, successor: body.successor, sessions: snapshot.count }, 'pre-copy streamed (not paused)');
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = parseHandoverRequest(await readJson(request));
    // A session offered to a sibling's claim may be leaving: the snapshot waits until every offer is settled
    // (checked again right before the pause, in the same turn, so no new offer slips in between).
    while (this.host.state === 'serving' && this.host.offering) await this.host.offersClosed();
    if (this.host.state !== 'serving') {
      throw new HttpError(409, 'ERR_NOT_SERVING', `relay is ${this.host.state}; only a serving relay hands its sessions over`);
    }
    const pending: Pending = { id: randomUUID(), successor: body.successor, pausedAt: performance.now(), streamed: false, deadline: null };
    this.pending = pending;
    // From here on nothing is decrypted or encrypted: the snapshot's sequence numbers are final.
    this.host.pause(`handing over to ${body.successor}`);
    const log = this.host.log.child({ handover: pending.id, successor: body.successor });
    try {
      const remoteAddress = body.tunnelHost ?? request.socket.remoteAddress ?? null;
      await this.host.tunnel.open({
        key: Buffer.from(body.tunnelKey, 'base64'),
        role: 'old',
        remoteHost: remoteAddress,
        remotePort: body.tunnelPort,
        onFrame: (frame) => {
          if (frame.kind === FrameKind.toDevice) this.host.sendToDevice(frame.payload, frame.peer);
        },
      });
      const tPaused = performance.now();
      const precopy = this.precopied;
      this.precopied = null;
      const delta = precopy !== null && precopy.id === body.precopyId && precopy.expiresAt > Date.now()
        ? changedSince(this.host.adapter, precopy.versions)
        : null;
      const sessions = delta?.changed ?? snapshotAll(this.host.adapter);
      const exportMs = Math.round(performance.now() - tPaused);
      response.on('close', () => {
        // 'close' also follows a normal end; only a stream that did not finish means the successor is gone.
        if (!response.writableFinished && this.pending === pending) this.resume(pending, 'the state stream broke before it was complete');
      });
      response.writeHead(200, {
        'content-type': STATE_CONTENT_TYPE,
        [HANDOVER_HEADERS.id]: pending.id,
        [HANDOVER_HEADERS.tunnelPort]: String(this.host.tunnelPort),
        'cache-control': 'no-store',
      });
      let bytes = 0;
      const header = { source: this.host.podName, createdAt: Date.now(), count: sessions.length, ...(delta === null ? {} : { base: precopy!.id, removed: delta.removed }) };
      for (const chunk of encodeSessionChunks(header, asStateRecords(sessions))) {
        bytes += chunk.length;
        if (!response.write(chunk)) await once(response, 'drain');
        if (this.pending !== pending) return;
      }
      // Complete as soon as the last byte is handed over: the successor may have read the trailer and
      // sent its commit (on another connection) before end()'s callback runs here.
      pending.streamed = true;
      const ended = new Promise<void>((resolve) => response.end(resolve));
      if (this.pending === pending) {
        pending.deadline = setTimeout(() => this.resume(pending, `no commit within ${body.commitTimeoutMs} ms`), body.commitTimeoutMs);
      }
      await ended;
      log.info({ sessions: sessions.length, delta: delta !== null, removed: delta?.removed.length ?? 0, bytes, exportMs, streamMs: Math.round(performance.now() - tPaused) - exportMs, commitTimeoutMs: body.commitTimeoutMs }, 'state streamed; waiting for commit');
    } catch (error) {
      if (this.pending === pending) this.resume(pending, `handover failed: ${(error as Error).message}`);
      throw error;
    }
  }

  async commit(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readJson(request) as Partial<HandoverCommitRequest>;
    if (typeof body?.handoverId !== 'string') throw new HttpError(400, 'ERR_BAD_REQUEST', 'handoverId (string) is required');
    if (this.committed?.handoverId === body.handoverId) {
      sendJson(response, 200, this.committed);
      return;
    }
    const pending = this.pending;
    if (pending === null || pending.id !== body.handoverId) {
      throw new HttpError(409, 'ERR_NO_SUCH_HANDOVER', `no handover ${body.handoverId} is waiting for commit (it was aborted, timed out, or never started)`);
    }
    if (!pending.streamed) throw new HttpError(409, 'ERR_HANDOVER_INCOMPLETE', 'the state stream has not finished');
    if (pending.deadline !== null) clearTimeout(pending.deadline);
    this.pending = null;
    const pauseMs = Math.round(performance.now() - pending.pausedAt);
    const queuedForwarded = this.host.commitHandover(pending.successor);
    this.committed = { handoverId: pending.id, pauseMs, queuedForwarded };
    this.host.log.info({ handover: pending.id, pauseMs, queuedForwarded }, 'handover committed; forwarding stragglers');
    sendJson(response, 200, this.committed);
  }

  async abort(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readJson(request) as Partial<HandoverAbortRequest>;
    if (typeof body?.handoverId !== 'string') throw new HttpError(400, 'ERR_BAD_REQUEST', 'handoverId (string) is required');
    const pending = this.pending;
    if (pending === null || pending.id !== body.handoverId) {
      throw new HttpError(409, 'ERR_NO_SUCH_HANDOVER', `no handover ${body.handoverId} is in progress`);
    }
    this.resume(pending, `aborted by successor: ${String(body.reason ?? 'no reason given').slice(0, 200)}`);
    sendJson(response, 200, { handoverId: pending.id, resumed: true });
  }

  /** Shutdown: a pending handover is abandoned; the relay is going away anyway. */
  cancel(): void {
    if (this.pending?.deadline) clearTimeout(this.pending.deadline);
    this.pending = null;
  }

  private resume(pending: Pending, reason: string): void {
    if (this.pending !== pending) return;
    if (pending.deadline !== null) clearTimeout(pending.deadline);
    this.pending = null;
    this.host.tunnel.shut();
    const replayed = this.host.resume(reason);
    this.host.log.warn({ handover: pending.id, reason, replayed }, 'handover abandoned; serving again');
  }
}

export function parseHandoverRequest(value: unknown): HandoverRequest {
  const body = value as Partial<HandoverRequest> | null;
  const fail = (message: string): never => {
    throw new HttpError(400, 'ERR_BAD_REQUEST', message);
  };
  if (body === null || typeof body !== 'object') return fail('body must be a JSON object');
  if (typeof body.successor !== 'string' || body.successor.length === 0 || body.successor.length > 253) fail('successor must be a pod name of 1-253 characters');
  if (!Number.isInteger(body.tunnelPort) || body.tunnelPort! < 1 || body.tunnelPort! > 65535) fail(`tunnelPort must be a port 1-65535, got ${JSON.stringify(body.tunnelPort)}`);
  if (typeof body.tunnelKey !== 'string' || Buffer.from(body.tunnelKey, 'base64').length !== TUNNEL_KEY_BYTES) fail(`tunnelKey must be ${TUNNEL_KEY_BYTES} bytes in base64`);
  const timeout = body.commitTimeoutMs;
  if (!Number.isInteger(timeout) || timeout! < MIN_COMMIT_TIMEOUT_MS || timeout! > MAX_COMMIT_TIMEOUT_MS) {
    fail(`commitTimeoutMs must be a whole number from ${MIN_COMMIT_TIMEOUT_MS} to ${MAX_COMMIT_TIMEOUT_MS}, got ${JSON.stringify(timeout)}`);
  }
  if (body.tunnelHost !== undefined && (typeof body.tunnelHost !== 'string' || isIP(body.tunnelHost) === 0)) fail(`tunnelHost must be an IP address, got ${JSON.stringify(body.tunnelHost)}`);
  if (body.precopyId !== undefined && (typeof body.precopyId !== 'string' || body.precopyId.length > 128)) fail('precopyId must be the id a pre-copy answered with');
  return body as HandoverRequest;
}
