import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ReadyzResponse, RelayState, StatusResponse } from '../api/management.ts';
import { MANAGEMENT_PATHS } from '../api/management.ts';
import type { RelayConfig } from './config.ts';
import { DtlsAdapter } from './dtls/adapter.ts';
import { loadServerKey } from './dtls/server-key.ts';
import { RelayMetrics } from './metrics.ts';
import { ManagementServer, sendJson } from './mgmt/server.ts';
import type { PeerAddress, Session, Via } from './session/session.ts';
import { UdpEndpoint } from './transport/udp-endpoint.ts';
import { UpstreamForwarder } from './upstream/forwarder.ts';
import { VERSION } from './version.ts';

const SWEEP_INTERVAL_MS = 1_000;

/**
 * One relay: device UDP endpoint -> DTLS adapter -> upstream forwarder, plus the management server.
 * This file wires the parts; each part owns its own I/O.
 */
export class Relay {
  readonly config: RelayConfig;
  readonly metrics: RelayMetrics;
  readonly adapter: DtlsAdapter;
  private readonly log: Logger;
  private readonly endpoint: UdpEndpoint;
  private readonly forwarder: UpstreamForwarder;
  private readonly mgmt: ManagementServer;
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
    this.forwarder = new UpstreamForwarder({
      target: config.upstream,
      mode: config.upstream.mode,
      events: {
        reply: (session, payload) => this.adapter.send(session, payload),
        sent: (bytes) => {
          metrics.upstreamDatagramsOut.inc();
          metrics.upstreamBytesOut.inc(bytes);
        },
        received: (bytes) => {
          metrics.upstreamDatagramsIn.inc();
          metrics.upstreamBytesIn.inc(bytes);
        },
        error: (error) => {
          metrics.upstreamErrors.inc();
          this.log.debug({ err: error }, 'upstream error');
        },
      },
    });
    const clientKeys = config.clientKeys;
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
      },
    });
    this.mgmt = new ManagementServer(config.mgmt.tls, (error) => this.log.error({ err: error }, 'management server error'));
    this.addRoutes();
  }

  get state(): RelayState {
    return this.stateValue;
  }

  get ready(): boolean {
    return this.stateValue === 'serving';
  }

  get addresses(): { dtls: PeerAddress; mgmt: PeerAddress } {
    return { dtls: this.dtlsAddress, mgmt: this.mgmtAddress };
  }

  async start(): Promise<void> {
    this.dtlsAddress = await this.endpoint.listen(this.config.dtls.port);
    this.mgmtAddress = await this.mgmt.listen(this.config.mgmt.port, this.config.mgmt.host);
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS).unref();
    this.setState('serving', null);
    this.log.info({
      dtls: `${this.dtlsAddress.address}:${this.dtlsAddress.port}`,
      mgmt: `${this.mgmtAddress.address}:${this.mgmtAddress.port}`,
      upstream: `${this.config.upstream.host}:${this.config.upstream.port}`,
      upstreamMode: this.config.upstream.mode,
      serverKeySha256: this.publicKeySha256,
      clientKeys: this.config.clientKeys?.size ?? 'any',
      version: VERSION,
    }, 'relay serving');
  }

  /** Stops without close_notify: devices keep their sessions for whoever serves them next. */
  async stop(): Promise<void> {
    if (this.stateValue === 'stopping') return;
    this.setState('stopping', 'shutting down');
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.adapter.close();
    this.forwarder.close();
    await Promise.all([this.endpoint.close(), this.mgmt.close()]);
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
      forwarding: { datagrams: 0, lastForwardAt: null, successor: null },
    };
  }

  private setState(state: RelayState, reason: string | null): void {
    if (state !== this.stateValue) this.log.info({ from: this.stateValue, to: state, reason }, 'relay state');
    this.stateValue = state;
    this.notReadyReason = state === 'serving' ? null : reason;
  }

  private onDeviceDatagram(datagram: Buffer, peer: PeerAddress, via: Via): void {
    this.metrics.deviceDatagramsIn.inc();
    this.metrics.deviceBytesIn.inc(datagram.length);
    this.adapter.receive(datagram, peer, via);
  }

  private transmit(datagram: Buffer, peer: PeerAddress, _via: Via): void {
    this.metrics.deviceDatagramsOut.inc();
    this.metrics.deviceBytesOut.inc(datagram.length);
    this.endpoint.send(datagram, peer);
  }

  private sweep(): void {
    this.adapter.sweep();
    this.forwarder.sweep(this.adapter.limits.parkAfterIdleMs);
  }

  private addRoutes(): void {
    this.mgmt
      .add({ method: 'GET', path: MANAGEMENT_PATHS.livez, handle: (_req, res) => sendJson(res, 200, { live: true }) })
      .add({
        method: 'GET',
        path: MANAGEMENT_PATHS.readyz,
        handle: (_req, res) => {
          const body: ReadyzResponse = { ready: this.ready, state: this.stateValue, reason: this.notReadyReason };
          sendJson(res, this.ready ? 200 : 503, body);
        },
      })
      .add({
        method: 'GET',
        path: MANAGEMENT_PATHS.metrics,
        handle: async (_req, res) => {
          const text = await this.metrics.render();
          res.writeHead(200, { 'content-type': this.metrics.contentType });
          res.end(text);
        },
      })
      .add({ method: 'GET', path: MANAGEMENT_PATHS.status, handle: (_req, res) => sendJson(res, 200, this.status()) });
  }
}
