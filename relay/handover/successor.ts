import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RestoreRequest, RestoreResponse } from '../../api/management.ts';
import { HANDOVER_HEADERS } from '../../api/management.ts';
import { ManagementError } from '../../api/management-client.ts';
import { HttpError, readJson, sendJson } from '../mgmt/server.ts';
import type { Session } from '../session/session.ts';
import type { HandoverHost } from './host.ts';
import { ImportStage } from './staged-import.ts';
import { TunnelSealer } from './tunnel-codec.ts';

const DEFAULT_COMMIT_TIMEOUT_MS = 10_000;
const COMMIT_RETRY_MS = 200;

/** Route marker of sessions whose device still reaches us through the predecessor. */
export interface TunnelVia {
  readonly tunnel: true;
  readonly predecessor: string;
}

/**
 * The NEW relay's side: POST /v1/restore pulls the predecessor's sessions, validates all of them,
 * applies the nonce fence, imports them parked, arms the straggler tunnel and commits. Only after
 * the predecessor acknowledged the commit does this relay report ready. Any failure before that
 * aborts the handover on the predecessor (which resumes serving) and discards what was imported.
 */
export class HandoverSuccessor {
  private readonly host: HandoverHost;
  private busy = false;

  constructor(host: HandoverHost) {
    this.host = host;
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = parseRestoreRequest(await readJson(request));
    sendJson(response, 200, await this.run(body));
  }

  /** POST /v1/restore's work, also run by the relay itself when nobody drives it (relay/startup/). */
  async run(body: RestoreRequest): Promise<RestoreResponse> {
    const previous = this.host.state;
    if (this.busy) throw new HttpError(409, 'ERR_RESTORE_IN_PROGRESS', 'a restore is already running');
    if (previous === 'handing-over' || previous === 'stopping' || previous === 'starting') {
      throw new HttpError(409, 'ERR_NOT_RESTORABLE', `relay is ${previous}; it cannot restore now`);
    }
    if (previous === 'serving' && this.host.adapter.sessionCount > 0) {
      throw new HttpError(409, 'ERR_HAS_SESSIONS', `relay serves ${this.host.adapter.sessionCount} sessions of its own; restoring over them would lose them`);
    }
    if (body.empty === true) {
      if (previous !== 'awaiting-restore') throw new HttpError(409, 'ERR_NOT_RESTORABLE', `relay is ${previous}; only a relay awaiting its restore can be told to start empty`);
      this.host.finishRestore({ ok: true });
      this.host.log.warn('serving without predecessor state: its devices will handshake again');
      return { from: '', sessions: 0, skipped: 0, bytes: 0, durationMs: 0, pauseMs: 0, queuedForwarded: 0, precopySessions: 0, deltaSessions: 0, delta: false };
    }
    this.busy = true;
    try {
      return await this.restore(body as RestoreRequest & { from: string }, previous);
    } finally {
      this.busy = false;
    }
  }

  private async restore(body: RestoreRequest & { from: string }, previous: typeof this.host.state): Promise<RestoreResponse> {
    const { host } = this;
    const started = performance.now();
    const commitTimeoutMs = body.commitTimeoutMs ?? DEFAULT_COMMIT_TIMEOUT_MS;
    const log = host.log.child({ restoreFrom: body.from });
    host.setRestoring(`restoring from ${body.from}`);
    const key = TunnelSealer.newKey();
    let handoverId: string | null = null;
    /** Whether this restore armed the tunnel: a failed one leaves a tunnel it did not arm as it was. */
    let tunnelArmed = false;
    let imported: Session[] = [];
    let stage: ImportStage | null = null;
    try {
      // Until a device's flow reaches us directly, its answers go out through the predecessor,
      // whose address the device's NAT and the load balancer's conntrack still expect.
      const via: TunnelVia = { tunnel: true, predecessor: body.from };
      // Sessions are built as records arrive, overlapping the old relay's encoding; they join the
      // table only after the trailer checked out (all or nothing).
      stage = new ImportStage(host.adapter, { via });
      let bytes = 0;

      // Phase 0, not paused: a full pre-copy. If it fails, the handover just carries everything,
      // unless it failed because the state cannot fit: then pausing the old relay would be for nothing.
      let precopyId: string | undefined;
      let precopySessions = 0;
      try {
        const pre = await host.peers.precopy(body.from, { successor: host.podName });
        precopyId = headerOf(pre.headers, HANDOVER_HEADERS.precopyId);
        const decoder = stage.decoder(Date.now());
        for await (const chunk of pre.body) {
          bytes += chunk.length;
          decoder.push(chunk);
        }
        precopySessions = decoder.finish().header.count;
      } catch (error) {
        if ((error as { code?: string }).code === 'ERR_RELAY_CAPACITY') throw error;
        log.warn({ code: (error as { code?: string }).code, reason: (error as Error).message }, 'pre-copy failed; the handover will carry the full state');
        precopyId = undefined;
        stage.reset();
      }
      const tPrecopied = performance.now();

      // Phase 1: the old relay pauses and sends what changed since the pre-copy (or everything).
      const stream = await host.peers.handover(body.from, {
        successor: host.podName,
        tunnelPort: host.tunnelPort,
        ...(host.tunnelHost === null ? {} : { tunnelHost: host.tunnelHost }),
        tunnelKey: key.toString('base64'),
        commitTimeoutMs,
        ...(precopyId === undefined ? {} : { precopyId }),
      });
      const tHeaders = performance.now();
      handoverId = headerOf(stream.headers, HANDOVER_HEADERS.id);
      const predecessorTunnelPort = Number(headerOf(stream.headers, HANDOVER_HEADERS.tunnelPort));
      // A stream that is not a delta of our pre-copy is the full state: the stage starts over.
      const decoder = stage.decoder(Date.now(), precopyId);
      for await (const chunk of stream.body) {
        bytes += chunk.length;
        decoder.push(chunk);
      }
      const { header } = decoder.finish();
      const deltaSessions = header.count;
      const skipped = stage.skipped;
      const tDecoded = performance.now();
      await host.tunnel.open({
        key,
        role: 'new',
        remoteHost: new URL(body.from).hostname.replace(/^\[|\]$/g, ''),
        remotePort: predecessorTunnelPort,
        onFrame: (frame) => host.onPredecessorFrame(frame, via),
      });
      tunnelArmed = true;
      imported = stage.commit();
      const tImported = performance.now();
      const commit = await this.commit(body.from, handoverId, commitTimeoutMs);
      const tCommitted = performance.now();
      const phasesMs = {
        precopy: Math.round(tPrecopied - started),
        request: Math.round(tHeaders - tPrecopied),
        streamAndDecode: Math.round(tDecoded - tHeaders),
        tunnelAndCommitToTable: Math.round(tImported - tDecoded),
        commit: Math.round(tCommitted - tImported),
      };
      const durationMs = Math.round(performance.now() - started);
      host.finishRestore({ ok: true });
      log.info({ sessions: imported.length, precopySessions, deltaSessions, delta: header.base !== undefined, skipped, bytes, durationMs, phasesMs, pauseMs: commit.pauseMs, queuedForwarded: commit.queuedForwarded }, 'restore committed; serving');
      return { from: body.from, sessions: imported.length, skipped, bytes, durationMs, pauseMs: commit.pauseMs, queuedForwarded: commit.queuedForwarded, precopySessions, deltaSessions, delta: header.base !== undefined };
    } catch (error) {
      stage?.discard();
      host.adapter.discard(imported);
      // A relay that was forwarding to the relay it tried to restore from goes on forwarding to it.
      if (tunnelArmed) host.tunnel.shut();
      if (handoverId !== null) {
        await host.peers.abort(body.from, { handoverId, reason: (error as Error).message }).catch(() => undefined);
      }
      const reason = `restore from ${body.from} failed: ${(error as Error).message}`;
      host.finishRestore({ ok: false, previous, reason, staged: stage?.peak ?? 0 });
      log.error({ code: (error as { code?: string }).code }, reason);
      if (error instanceof HttpError) throw error;
      const code = (error as { code?: string }).code ?? 'ERR_RESTORE_FAILED';
      throw new HttpError(502, code, reason);
    }
  }

  /** The commit is idempotent on the predecessor, so a lost answer is simply asked again. */
  private async commit(from: string, handoverId: string, timeoutMs: number) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        return await this.host.peers.commit(from, { handoverId });
      } catch (error) {
        const retryable = error instanceof ManagementError && (error.code === 'ERR_MGMT_UNREACHABLE' || error.code === 'ERR_MGMT_TIMEOUT');
        if (!retryable || performance.now() + COMMIT_RETRY_MS > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, COMMIT_RETRY_MS));
      }
    }
  }
}

export function parseRestoreRequest(value: unknown): RestoreRequest {
  const body = value as Partial<RestoreRequest> | null;
  if (body === null || typeof body !== 'object') throw new HttpError(400, 'ERR_BAD_REQUEST', 'body must be a JSON object like {"from": "https://old-relay:8443"}');
  if (body.empty !== undefined) {
    if (body.empty !== true || body.from !== undefined) throw new HttpError(400, 'ERR_BAD_REQUEST', 'give either from (the old relay\'s URL) or empty: true, not both');
    return { empty: true };
  }
  if (typeof body.from !== 'string') throw new HttpError(400, 'ERR_BAD_REQUEST', 'from must be the management URL of the old relay, e.g. https://relay-a-0:8443');
  let url: URL;
  try {
    url = new URL(body.from);
  } catch {
    throw new HttpError(400, 'ERR_BAD_REQUEST', `from "${body.from}" is not a URL (expected https://host:port)`);
  }
  if (url.protocol !== 'https:') throw new HttpError(400, 'ERR_BAD_REQUEST', `from must be an https URL, got ${url.protocol}`);
  if (body.commitTimeoutMs !== undefined && (!Number.isInteger(body.commitTimeoutMs) || body.commitTimeoutMs < 100 || body.commitTimeoutMs > 120_000)) {
    throw new HttpError(400, 'ERR_BAD_REQUEST', `commitTimeoutMs must be a whole number from 100 to 120000, got ${JSON.stringify(body.commitTimeoutMs)}`);
  }
  return { from: body.from, commitTimeoutMs: body.commitTimeoutMs };
}

function headerOf(headers: Record<string, string | string[] | undefined>, name: string): string {
  const value = headers[name];
  if (typeof value !== 'string' || value === '') throw new ManagementError('ERR_MGMT_PROTOCOL', `handover answer lacks the ${name} header`);
  return value;
}
