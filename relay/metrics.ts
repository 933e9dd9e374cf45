import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { DropReason, HandshakeFailure } from './dtls/adapter.ts';

/**
 * Prometheus metrics of one relay. Hot-path counters are pre-bound label children, so counting a
 * datagram costs one property increment, not a label lookup.
 */
export class RelayMetrics {
  readonly registry = new Registry();
  private readonly drops: Counter<'reason'>;
  private readonly handshakeFailures: Counter<'reason'>;
  readonly handshakesOk: Counter;
  readonly deviceDatagramsIn: Counter.Internal;
  readonly deviceDatagramsOut: Counter.Internal;
  readonly deviceBytesIn: Counter.Internal;
  readonly deviceBytesOut: Counter.Internal;
  readonly upstreamDatagramsOut: Counter.Internal;
  readonly upstreamDatagramsIn: Counter.Internal;
  readonly upstreamBytesOut: Counter.Internal;
  readonly upstreamBytesIn: Counter.Internal;
  readonly upstreamErrors: Counter;
  readonly sessionsClosed: Counter<'reason'>;
  /** Old relay after a handover: datagrams tunnelled to the successor. */
  readonly forwarded: Counter;
  /** New relay: datagrams that came through / went out through the predecessor's tunnel. */
  readonly tunnelIn: Counter.Internal;
  readonly tunnelOut: Counter.Internal;
  /** Sessions moved between sibling relays because a device's flow moved. */
  readonly claims: Counter<'result'>;

  constructor(sources: { sessions: () => { live: number; parked: number; handshaking: number } }) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
    new Gauge({
      name: 'relay_sessions',
      help: 'DTLS sessions by state: live (native socket), parked (compact state only), handshaking',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const counts = sources.sessions();
        this.set({ state: 'live' }, counts.live);
        this.set({ state: 'parked' }, counts.parked);
        this.set({ state: 'handshaking' }, counts.handshaking);
      },
    });
    this.handshakesOk = new Counter({ name: 'relay_handshakes_total', help: 'Completed DTLS handshakes', registers: [registry] });
    this.handshakeFailures = new Counter({ name: 'relay_handshake_failures_total', help: 'Failed or refused DTLS handshakes by reason', labelNames: ['reason'], registers: [registry] });
    const datagrams = new Counter({ name: 'relay_datagrams_total', help: 'Datagrams by direction', labelNames: ['direction'], registers: [registry] });
    const bytes = new Counter({ name: 'relay_bytes_total', help: 'Bytes by direction (device side: DTLS records; upstream side: payload)', labelNames: ['direction'], registers: [registry] });
    this.deviceDatagramsIn = datagrams.labels('device_in');
    this.deviceDatagramsOut = datagrams.labels('device_out');
    this.upstreamDatagramsOut = datagrams.labels('upstream_out');
    this.upstreamDatagramsIn = datagrams.labels('upstream_in');
    this.deviceBytesIn = bytes.labels('device_in');
    this.deviceBytesOut = bytes.labels('device_out');
    this.upstreamBytesOut = bytes.labels('upstream_out');
    this.upstreamBytesIn = bytes.labels('upstream_in');
    this.drops = new Counter({ name: 'relay_drops_total', help: 'Datagrams or payloads dropped, by reason', labelNames: ['reason'], registers: [registry] });
    this.upstreamErrors = new Counter({ name: 'relay_upstream_errors_total', help: 'Errors sending to or receiving from the upstream service', registers: [registry] });
    this.forwarded = new Counter({ name: 'relay_forwarded_datagrams_total', help: 'Datagrams forwarded to the successor after a handover (stragglers and queued)', registers: [registry] });
    const tunnel = new Counter({ name: 'relay_tunnel_datagrams_total', help: 'Datagrams through the predecessor tunnel, by direction', labelNames: ['direction'], registers: [registry] });
    this.tunnelIn = tunnel.labels('in');
    this.tunnelOut = tunnel.labels('out');
    this.claims = new Counter({ name: 'relay_session_claims_total', help: 'Session claims between sibling relays: claimed (taken over), unowned (nobody had it), gave (handed to a sibling), refused (bad proof), dropped (claim queue full)', labelNames: ['result'], registers: [registry] });
    this.sessionsClosed = new Counter({ name: 'relay_sessions_closed_total', help: 'Sessions closed, by reason', labelNames: ['reason'], registers: [registry] });
  }

  drop(reason: DropReason | 'paused-overflow' | 'tunnel-forged', count = 1): void {
    this.drops.inc({ reason }, count);
  }

  handshakeFailed(reason: HandshakeFailure): void {
    this.handshakeFailures.inc({ reason });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
