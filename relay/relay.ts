import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { ManagementClient } from '../api/management-client.ts';
import type { RelayState, RestoreRequest, RestoreResponse, SessionsResponse, SessionView, StatusResponse } from '../api/management.ts';
import { MANAGEMENT_PATHS } from '../api/management.ts';
import type { RelayConfig } from './config.ts';
import { DtlsAdapter } from './dtls/adapter.ts';
import type { ClaimEvent, ClaimHost } from './cluster/claims.ts';
import { SessionClaims } from './cluster/claims.ts';
import { PeerDirectory } from './cluster/peers.ts';
import type { HandoverHost } from './handover/host.ts';
import { PauseQueue } from './handover/pause-queue.ts';
import { HandoverSource } from './handover/source.ts';
import { HandoverSuccessor } from './handover/successor.ts';
import { FrameKind, type Frame } from './handover/tunnel-codec.ts';
import { TunnelEnd } from './handover/tunnel.ts';
import { loadServerKey } from './dtls/server-key.ts';
import { collectGarbageNow } from './memory.ts';
import { RelayMetrics } from './metrics.ts';
import { HealthServer } from './mgmt/health-server.ts';
import { probeRoutes, type ProbeSource } from './mgmt/probes.ts';
import { HttpError, ManagementServer, sendJson } from './mgmt/server.ts';
import type { PeerAddress, Session, Via } from './session/session.ts';
import { KubernetesPodReader } from './startup/kubernetes-api.ts';
import { StartupRestore, type StartupRestoreHost } from './startup/startup-restore.ts';
import { UdpEndpoint } from './transport/udp-endpoint.ts';
import { UpstreamForwarder } from './upstream/forwarder.ts';
import { VERSION } from './version.ts';

const SWEEP_INTERVAL_MS = 1_000;
/** From this many sessions on, a restore is followed by one full garbage collection. */
const LARGE_RESTORE = 10_000;

/**
 * One relay: device UDP endpoint -> DTLS adapter -> upstream forwarder, plus the management server.
 * This file wires the parts; each part owns its own I/O.
 */
export class Relay implements HandoverHost, ClaimHost, StartupRestoreHost {
  readonly config: RelayConfig;
  readonly metrics: RelayMetrics;
  readonly adapter: DtlsAdapter;
  readonly log: Logger;
  readonly tunnel: TunnelEnd;
  readonly peers: ManagementClient;
  private readonly queue = new PauseQueue();
  /** Datagrams that reach a restoring relay: it neither holds their sessions yet nor may claim them. */
  private readonly restoreHold = new PauseQueue();
  private readonly source: HandoverSource;
  private readonly successor: HandoverSuccessor;
  private readonly claims: SessionClaims;
  private tunnelPortValue = 0;
  private forwardedDatagrams = 0;
  private lastForwardAt: number | null = null;
  private successorName: string | null = null;
  private readonly endpoint: UdpEndpoint;
  private forwarder!: UpstreamForwarder;
  private readonly mgmt: ManagementServer;
  private readonly health: HealthServer | null;
  private healthAddress: PeerAddress | null = null;
  private startupRestore: StartupRestore | null = null;
  private restoreStartedAtValue: number | null = null;
  private readonly publicKeySha256: string;
  private readonly startedAt = Date.now();
  private sweeper: NodeJS.Timeout | null = null;
  private stateValue: RelayState = 'starting';
  private notReadyReason: string | null = 'starting';
  private dtlsAddress: PeerAddress = { address: '', port: 0 };
  private mgmtAddress: PeerAddress = { address: '', port: 0 };

  constructor(config: RelayConfig, log: Logger) {
    this.config = config;
    this.log = log;
    this.publicKeySha256 = createHash('sha256').update(loadServerKey(config.dtls.key).publicKey).digest('hex');
    this.metrics = new RelayMetrics({
      sessions: () => {
        const live = this.adapter.liveCount;
        return { live, parked: this.adapter.sessionCount - live, handshaking: this.adapter.handshakeCount };
      },
    });
    const metrics = this.metrics;
    this.endpoint = new UdpEndpoint({
      host: config.dtls.host,
      onDatagram: (datagram, peer) => this.onDeviceDatagram(datagram, peer, null),
      onError: (error) => this.log.error({ err: error }, 'device UDP socket error'),
    });
    const clientKeys = config.clientKeys;
    const peerDirectory = new PeerDirectory(config.peers, { mgmtPort: config.mgmt.port, mgmtHost: config.mgmt.host }, config.peersFile);
    this.adapter = new DtlsAdapter({
      serverKey: config.dtls.key,
      limits: config.limits,
      authorize: clientKeys === null ? undefined : (key) => clientKeys.has(key.toString('hex')),
      events: {
        transmit: (datagram, peer, via) => this.transmit(datagram, peer, via),
        established: (session) => {
          metrics.handshakesOk.inc();
          this.log.debug({ peer: session.key, device: session.deviceId }, 'session established');
        },
        data: (session, payload) => this.forwarder.forward(session, payload),
        closed: (session, reason) => {
          this.forwarder.forget(session);
          metrics.sessionsClosed.inc({ reason });
          this.log.debug({ peer: session.key, device: session.deviceId, reason }, 'session closed');
        },
        handshakeFailed: (peer, reason, detail) => {
          metrics.handshakeFailed(reason);
          this.log.debug({ peer: `${peer.address}:${peer.port}`, reason, detail }, 'handshake failed');
        },
        dropped: (reason) => metrics.drop(reason),
        nativeGarbage: () => this.collectNativeGarbage(),
        ...(peerDirectory.configured ? { unknownSession: (datagram: Buffer, peer: PeerAddress, via: Via) => this.onUnknownSession(datagram, peer, via) } : {}),
      },
    });
    this.mgmt = new ManagementServer(config.mgmt.tls, (error) => this.log.error({ err: error }, 'management server error'));
    this.health = config.health === null ? null : new HealthServer(this.probeSource(), (error) => this.log.error({ err: error }, 'health server error'));
    this.tunnel = new TunnelEnd(config.tunnel.host, (error) => this.log.error({ err: error }, 'tunnel socket error'), () => metrics.drop('tunnel-forged'));
    this.peers = new ManagementClient({ ...config.mgmt.tls, servername: config.mgmt.peerServername });
    this.source = new HandoverSource(this);
    this.successor = new HandoverSuccessor(this);
    this.claims = new SessionClaims(this, peerDirectory);
    this.addRoutes();
  }

  get podName(): string {
    return this.config.podName;
  }

  get tunnelPort(): number {
    return this.tunnelPortValue;
  }

  get tunnelHost(): string | null {
    const host = this.config.tunnel.host;
    return host === '0.0.0.0' || host === '::' ? null : host;
  }

  get state(): RelayState {
    return this.stateValue;
  }

  get ready(): boolean {
    return this.stateValue === 'serving';
  }

  get addresses(): { dtls: PeerAddress; mgmt: PeerAddress; health: PeerAddress | null } {
    return { dtls: this.dtlsAddress, mgmt: this.mgmtAddress, health: this.healthAddress };
  }

  /** When the last restore began (performance.now()), driven or not; null before any. */
  get restoreStartedAt(): number | null {
    return this.restoreStartedAtValue;
  }

  /** The restore path of POST /v1/restore, for the relay's own start-up decision. */
  restore(request: RestoreRequest): Promise<RestoreResponse> {
    return this.successor.run(request);
  }

  async start(): Promise<void> {
    const upstreamAddress = isIP(this.config.upstream.host) !== 0 ? this.config.upstream.host : (await lookup(this.config.upstream.host)).address;
    const metrics = this.metrics;
    this.forwarder = new UpstreamForwarder({
      target: { host: upstreamAddress, port: this.config.upstream.port },
      mode: this.config.upstream.mode,
      events: {
        reply: (session, payload) => this.onUpstreamReply(session, payload),
        sent: (bytes) => {
          metrics.traffic.upstreamDatagramsOut++;
          metrics.traffic.upstreamBytesOut += bytes;
        },
        received: (bytes) => {
          metrics.traffic.upstreamDatagramsIn++;
          metrics.traffic.upstreamBytesIn += bytes;
        },
        error: (error) => {
          metrics.upstreamErrors.inc();
          this.log.debug({ err: error }, 'upstream error');
        },
      },
    });
    this.dtlsAddress = await this.endpoint.listen(this.config.dtls.port);
    this.tunnelPortValue = await this.tunnel.listen(this.config.tunnel.port);
    this.mgmtAddress = await this.mgmt.listen(this.config.mgmt.port, this.config.mgmt.host);
    if (this.health !== null && this.config.health !== null) this.healthAddress = await this.health.listen(this.config.health.port, this.config.health.host);
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS).unref();
    if (this.config.awaitRestore) this.setState('awaiting-restore', 'waiting for POST /v1/restore from the orchestrator');
    else this.setState('serving', null);
    this.log.info({
      dtls: `${this.dtlsAddress.address}:${this.dtlsAddress.port}`,
      mgmt: `${this.mgmtAddress.address}:${this.mgmtAddress.port}`,
      health: this.healthAddress === null ? 'off' : `${this.healthAddress.address}:${this.healthAddress.port}`,
      upstream: `${this.config.upstream.host}:${this.config.upstream.port}`,
      upstreamMode: this.config.upstream.mode,
      serverKeySha256: this.publicKeySha256,
      tunnelPort: this.tunnelPortValue,
      clientKeys: this.config.clientKeys?.size ?? 'any',
      version: VERSION,
    }, 'relay serving');
    if (this.config.awaitRestore) this.decideRestoreAtStart();
  }

  /** --await-restore: never stay not-ready for ever (relay/startup/restore-decision.ts). */
  private decideRestoreAtStart(): void {
    const api = this.config.kubernetesApi;
    const reader = api.kind === 'api' ? new KubernetesPodReader(api) : null;
    const startup = new StartupRestore({
      host: this,
      reader,
      offReason: api.kind === 'off' ? api.reason : '',
      podName: this.config.podName,
      ownMgmtPort: this.mgmtAddress.port,
      waitMs: this.config.restoreWaitMs,
      log: this.log,
    });
    this.startupRestore = startup;
    void startup.settled.then(() => reader?.close());
    startup.begin().catch((error: unknown) => this.log.error({ err: { message: (error as Error).message } }, 'start-up restore decision failed'));
  }

  /** Stops without close_notify: devices keep their sessions for whoever serves them next. */
  async stop(): Promise<void> {
    if (this.stateValue === 'stopping') return;
    this.setState('stopping', 'shutting down');
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.startupRestore?.cancel();
    this.source.cancel();
    this.claims.close();
    this.adapter.close();
    this.forwarder?.close();
    await Promise.all([this.endpoint.close(), this.mgmt.close(), this.health?.close(), this.tunnel.close(), this.peers.close()]);
    this.log.info('relay stopped');
  }

  status(): StatusResponse {
    const live = this.adapter.liveCount;
    return {
      pod: this.config.podName,
      state: this.stateValue,
      ready: this.ready,
      reason: this.notReadyReason,
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      sessions: { total: this.adapter.sessionCount, live, parked: this.adapter.sessionCount - live, handshaking: this.adapter.handshakeCount },
      dtls: { address: this.dtlsAddress.address, port: this.dtlsAddress.port, publicKeySha256: this.publicKeySha256 },
      forwarding: { datagrams: this.forwardedDatagrams, lastForwardAt: this.lastForwardAt, successor: this.successorName },
    };
  }

  /** A page of the session table, in table order; limit at most 1,000. */
  private sessionsPage(query: URLSearchParams): SessionsResponse {
    const number = (name: string, fallback: number, max: number): number => {
      const text = query.get(name);
      const value = text === null ? fallback : Number(text);
      if (!Number.isInteger(value) || value < 0 || value > max) throw new HttpError(400, 'ERR_BAD_REQUEST', `${name} must be a whole number from 0 to ${max}, got "${text}"`);
      return value;
    };
    const limit = number('limit', 100, 1_000);
    const offset = number('offset', 0, Number.MAX_SAFE_INTEGER);
    const sessions: SessionView[] = [];
    let index = 0;
    for (const session of this.adapter.allSessions()) {
      if (index++ < offset) continue;
      if (sessions.length >= limit) break;
      sessions.push({
        peer: session.key,
        deviceId: session.deviceId,
        createdAt: session.createdAt,
        lastSeenAt: session.lastSeenAt,
        recordsIn: session.recordsIn,
        recordsOut: session.recordsOut,
        bytesIn: session.bytesIn,
        bytesOut: session.bytesOut,
        inbound: { epoch: session.replay.epoch, sequence: session.replay.top },
        outbound: { epoch: session.outEpoch, sequence: session.outSequence },
        parked: session.parked,
        viaPredecessor: session.via !== null,
      });
    }
    return { total: this.adapter.sessionCount, offset, sessions };
  }

  private lastNativeCollection = 0;

  /** At most every 2 s, a concurrent (not stop-the-world) major collection frees released mbedtls contexts. */
  private collectNativeGarbage(): void {
    const now = Date.now();
    if (now - this.lastNativeCollection < 2_000) return;
    this.lastNativeCollection = now;
    collectGarbageNow('concurrent');
  }

  // --- claim host -------------------------------------------------------------------------------

  released(session: Session): void {
    this.forwarder.forget(session);
  }

  counted(event: ClaimEvent, count = 1): void {
    this.metrics.claims.inc({ result: event }, count);
  }

  dropped(reason: 'held-overflow' | 'claimed-away', count = 1): void {
    this.metrics.drop(reason, count);
  }

  /** Sessions offered to a sibling's claim: a handover snapshots only once none is (source.ts). */
  get offering(): boolean {
    return this.claims.offering;
  }

  offersClosed(): Promise<void> {
    return this.claims.offersClosed();
  }

  /**
   * A device datagram, as the relay's state says: queued while paused, forwarded once handed over, held
   * while restoring, processed otherwise.
   */
  deliver(datagram: Buffer, peer: PeerAddress, via: Via): void {
    switch (this.stateValue) {
      case 'handing-over':
        if (!this.queue.push({ kind: 'device', datagram, peer })) this.metrics.drop('paused-overflow');
        return;
      case 'forwarding':
        this.forwardToSuccessor(FrameKind.deviceDatagram, datagram, peer);
        return;
      case 'restoring':
        this.holdWhileRestoring(datagram, peer);
        return;
      default:
        this.receive(datagram, peer, via);
    }
  }

  /** Into the DTLS layer, unless its session is on offer to a sibling's claim (then it waits for the claim). */
  private receive(datagram: Buffer, peer: PeerAddress, via: Via): void {
    if (!this.claims.holdIfOffered(datagram, peer, via)) this.adapter.receive(datagram, peer, via);
  }

  /**
   * A datagram for a session this relay does not hold. A restoring relay does not claim: the session
   * may be in the state it is pulling, and a claim would take it from the relay it restores from while
   * this relay cannot take it. It holds the datagram until the restore ends.
   */
  private onUnknownSession(datagram: Buffer, peer: PeerAddress, via: Via): void {
    if (this.stateValue === 'restoring') this.holdWhileRestoring(datagram, peer);
    else this.claims.onUnknownSession(datagram, peer, via);
  }

  private holdWhileRestoring(datagram: Buffer, peer: PeerAddress): void {
    if (!this.restoreHold.push({ kind: 'device', datagram, peer })) this.metrics.drop('held-overflow');
  }

  // --- handover host ----------------------------------------------------------------------------

  pause(reason: string): void {
    this.setState('handing-over', reason);
  }

  resume(reason: string): number {
    this.setState('serving', null);
    this.log.info({ reason }, 'resumed');
    const items = this.queue.drain();
    for (const item of items) {
      if (item.kind === 'device') this.receive(item.datagram, item.peer, null);
      else {
        const session = this.adapter.getSession(item.peer);
        if (session !== undefined) this.adapter.send(session, item.payload);
      }
    }
    return items.length;
  }

  commitHandover(successor: string): number {
    this.successorName = successor;
    this.setState('forwarding', `handed over to ${successor}; forwarding stragglers`);
    // The successor owns the sessions now; wipe their secrets here. Upstream sockets stay open so
    // that late replies can still be forwarded.
    this.adapter.discard([...this.adapter.allSessions()]);
    const items = this.queue.drain();
    for (const item of items) {
      if (item.kind === 'device') this.forwardToSuccessor(FrameKind.deviceDatagram, item.datagram, item.peer);
      else this.forwardToSuccessor(FrameKind.upstreamReply, item.payload, item.peer);
    }
    return items.length;
  }

  sendToDevice(datagram: Buffer, peer: PeerAddress): void {
    this.metrics.traffic.deviceDatagramsOut++;
    this.metrics.traffic.deviceBytesOut += datagram.length;
    this.endpoint.send(datagram, peer);
  }

  setRestoring(reason: string): void {
    this.restoreStartedAtValue = performance.now();
    this.successorName = null;
    this.setState('restoring', reason);
  }

  finishRestore(outcome: { ok: true } | { ok: false; previous: RelayState; reason: string; staged: number }): void {
    if (outcome.ok) {
      this.forwardedDatagrams = 0;
      this.lastForwardAt = null;
      this.setState('serving', null);
      if (this.adapter.sessionCount >= LARGE_RESTORE) this.giveImportMemoryBack();
    } else {
      this.setState(outcome.previous, outcome.previous === 'serving' ? null : outcome.reason);
      // What a failed import staged is garbage now: give it back instead of holding it at its peak.
      if (outcome.staged >= LARGE_RESTORE) this.giveImportMemoryBack();
    }
    // What waited for the restore: served from the restored sessions (or claimed, now that the relay can
    // take sessions), or, after a failed restore, handled as before it (forwarded, say).
    for (const item of this.restoreHold.drain()) if (item.kind === 'device') this.deliver(item.datagram, item.peer, null);
  }

  private giveImportMemoryBack(): void {
    // The first collection frees the import's garbage; V8 gives the emptied heap back only on a
    // later one, once it sees the heap stay small (measured: 214 -> 87 MB of heap at 100k sessions).
    setTimeout(() => collectGarbageNow(), 100).unref();
    setTimeout(() => collectGarbageNow('compact'), 5_000).unref();
  }

  onPredecessorFrame(frame: Frame, via: Via): void {
    if (frame.kind === FrameKind.deviceDatagram) {
      this.metrics.traffic.tunnelIn++;
      this.receive(frame.payload, frame.peer, via);
    } else if (frame.kind === FrameKind.upstreamReply) {
      const session = this.adapter.getSession(frame.peer);
      if (session !== undefined) this.adapter.send(session, frame.payload);
    }
  }

  private forwardToSuccessor(kind: FrameKind, payload: Buffer, peer: PeerAddress): void {
    if (this.tunnel.send({ kind, peer, payload })) {
      this.forwardedDatagrams++;
      this.lastForwardAt = Date.now();
      this.metrics.forwarded.inc();
    } else {
      this.metrics.drop('closed-session');
    }
  }

  private setState(state: RelayState, reason: string | null): void {
    if (state !== this.stateValue) this.log.info({ from: this.stateValue, to: state, reason }, 'relay state');
    this.stateValue = state;
    this.notReadyReason = state === 'serving' ? null : reason;
  }

  private onDeviceDatagram(datagram: Buffer, peer: PeerAddress, via: Via): void {
    this.metrics.traffic.deviceDatagramsIn++;
    this.metrics.traffic.deviceBytesIn += datagram.length;
    this.deliver(datagram, peer, via);
  }

  private onUpstreamReply(session: Session, payload: Buffer): void {
    switch (this.stateValue) {
      case 'handing-over':
        if (!this.queue.push({ kind: 'upstream', payload, peer: session.peer })) this.metrics.drop('paused-overflow');
        return;
      case 'forwarding':
        this.forwardToSuccessor(FrameKind.upstreamReply, payload, session.peer);
        return;
      default:
        this.adapter.send(session, payload);
    }
  }

  private transmit(datagram: Buffer, peer: PeerAddress, via: Via): void {
    // A device still routed to the predecessor must hear from the predecessor's address.
    if (via !== null && this.tunnel.send({ kind: FrameKind.toDevice, peer, payload: datagram })) {
      this.metrics.traffic.tunnelOut++;
      return;
    }
    this.metrics.traffic.deviceDatagramsOut++;
    this.metrics.traffic.deviceBytesOut += datagram.length;
    this.endpoint.send(datagram, peer);
  }

  private sweep(): void {
    this.adapter.sweep();
    this.forwarder.sweep(this.adapter.limits.parkAfterIdleMs);
  }

  /** What /livez, /readyz and /metrics read, on the management and the health port alike. */
  private probeSource(): ProbeSource {
    const relay = this;
    return {
      get ready() { return relay.ready; },
      get state() { return relay.stateValue; },
      get notReadyReason() { return relay.notReadyReason; },
      renderMetrics: async () => ({ contentType: this.metrics.contentType, text: await this.metrics.render() }),
    };
  }

  private addRoutes(): void {
    for (const probe of probeRoutes(this.probeSource())) this.mgmt.add({ method: probe.method, path: probe.path, handle: (_req, res) => probe.handle(res) });
    this.mgmt
      .add({ method: 'GET', path: MANAGEMENT_PATHS.status, handle: (_req, res) => sendJson(res, 200, this.status()) })
      .add({ method: 'GET', path: MANAGEMENT_PATHS.sessions, handle: (req, res) => sendJson(res, 200, this.sessionsPage(new URL(req.url ?? '/', 'https://relay').searchParams)) })
      .add({ method: 'POST', path: MANAGEMENT_PATHS.claim, handle: (req, res) => this.claims.handle(req, res) })
      .add({ method: 'POST', path: MANAGEMENT_PATHS.claimSettle, handle: (req, res) => this.claims.settleRequest(req, res) })
      .add({ method: 'POST', path: MANAGEMENT_PATHS.restore, handle: (req, res) => this.successor.handle(req, res) })
      .add({ method: 'POST', path: MANAGEMENT_PATHS.precopy, handle: (req, res) => this.source.precopy(req, res) })
      .add({ method: 'POST', path: MANAGEMENT_PATHS.handover, handle: (req, res) => this.source.handle(req, res) })
      .add({ method: 'POST', path: MANAGEMENT_PATHS.handoverCommit, handle: (req, res) => this.source.commit(req, res) })
      .add({ method: 'POST', path: MANAGEMENT_PATHS.handoverAbort, handle: (req, res) => this.source.abort(req, res) });
  }
}
