import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { DropReason, HandshakeFailure } from './dtls/adapter.ts';

/**
 * Traffic counted on the hot path: plain integers, read by Prometheus at scrape time. A profile of
 * the relay under load showed prom-client's counter increments as the largest JavaScript item
 * (about 2% of the relay's CPU, eight per round trip); a property increment costs nothing.
 */
export class TrafficCounters {
  deviceDatagramsIn = 0;
  deviceBytesIn = 0;
  deviceDatagramsOut = 0;
  deviceBytesOut = 0;
  upstreamDatagramsOut = 0;
  upstreamBytesOut = 0;
  upstreamDatagramsIn = 0;
  upstreamBytesIn = 0;
  tunnelIn = 0;
  tunnelOut = 0;
}

/** Prometheus metrics of one relay. */
export class RelayMetrics {
  readonly registry = new Registry();
  private readonly drops: Counter<'reason'>;
  private readonly handshakeFailures: Counter<'reason'>;
  readonly handshakesOk: Counter;
  readonly traffic = new TrafficCounters();
  readonly upstreamErrors: Counter;
  readonly sessionsClosed: Counter<'reason'>;
  /** Old relay after a handover: datagrams tunnelled to the successor. */
  readonly forwarded: Counter;
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
    const traffic = this.traffic;
    // Counters whose value is the plain integer at scrape time (reset, then set by one increment).
    const scraped = (name: string, help: string, labelName: string, read: () => Record<string, number>): void => {
      new Counter({
        name, help, labelNames: [labelName], registers: [registry],
        collect() {
          this.reset();
          for (const [label, value] of Object.entries(read())) this.inc({ [labelName]: label }, value);
        },
      });
    };
    scraped('relay_datagrams_total', 'Datagrams by direction', 'direction', () => ({
      device_in: traffic.deviceDatagramsIn, device_out: traffic.deviceDatagramsOut,
      upstream_out: traffic.upstreamDatagramsOut, upstream_in: traffic.upstreamDatagramsIn,
    }));
    scraped('relay_bytes_total', 'Bytes by direction (device side: DTLS records; upstream side: payload)', 'direction', () => ({
      device_in: traffic.deviceBytesIn, device_out: traffic.deviceBytesOut,
      upstream_out: traffic.upstreamBytesOut, upstream_in: traffic.upstreamBytesIn,
    }));
    scraped('relay_tunnel_datagrams_total', 'Datagrams through the predecessor tunnel, by direction', 'direction', () => ({ in: traffic.tunnelIn, out: traffic.tunnelOut }));
    this.drops = new Counter({ name: 'relay_drops_total', help: 'Datagrams or payloads dropped, by reason', labelNames: ['reason'], registers: [registry] });
    this.upstreamErrors = new Counter({ name: 'relay_upstream_errors_total', help: 'Errors sending to or receiving from the upstream service', registers: [registry] });
    this.forwarded = new Counter({ name: 'relay_forwarded_datagrams_total', help: 'Datagrams forwarded to the successor after a handover (stragglers and queued)', registers: [registry] });
    this.claims = new Counter({ name: 'relay_session_claims_total', help: 'Session claims between sibling relays: claimed (taken over), unowned (nobody had it), declined (offered, but this relay could not take it: left with its owner), gave (taken by a sibling), kept (offered to a sibling that did not take it), refused (bad proof), dropped (claim queue full or no room), bad-answer (a sibling\'s answer refused as a whole)', labelNames: ['result'], registers: [registry] });
    this.sessionsClosed = new Counter({ name: 'relay_sessions_closed_total', help: 'Sessions closed, by reason', labelNames: ['reason'], registers: [registry] });
  }

  drop(reason: DropReason | 'paused-overflow' | 'tunnel-forged' | 'held-overflow' | 'claimed-away', count = 1): void {
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
