import dgram from 'node:dgram';

/**
 * The local stand-in for a Kubernetes Service in front of relay pods, faithful where it matters for
 * a handover:
 *
 * - A new device flow goes to a ready backend (fewest flows first), like kube-proxy picking an
 *   endpoint. Not-ready backends get no new flows.
 * - An active flow stays on its backend until it has been idle for `affinityMs` (kube-proxy's UDP
 *   conntrack timeout, 30 s by default), even when that backend turned not-ready: this is what makes
 *   stragglers happen. Removing a backend ends its flows at once (kube-proxy flushes their conntrack).
 * - A relay sees the same source address for a device whichever backend serves it (the flow's own
 *   socket here; the preserved client IP with externalTrafficPolicy: Local there).
 * - Only the flow's current backend can answer through it: a reply from any other backend is dropped,
 *   as a reply that matches no conntrack entry would never reach the device with the Service address.
 */
export interface FrontBackend {
  id: string;
  address: string;
  port: number;
  ready: boolean;
}

interface Flow {
  device: { address: string; port: number };
  socket: dgram.Socket;
  backend: FrontBackend | null;
  lastSeenAt: number;
}

export interface FrontStats {
  flows: number;
  datagramsIn: number;
  datagramsOut: number;
  /** Replies from a backend that does not own the flow (dropped). */
  misrouted: number;
  /** Device datagrams that found no ready backend (dropped). */
  noBackend: number;
  /** Flows re-assigned after their affinity expired or their backend went away. */
  reassigned: number;
  perBackend: Record<string, { flows: number; datagrams: number }>;
}

export class UdpFront {
  private readonly socket: dgram.Socket;
  private readonly flows = new Map<string, Flow>();
  private backends: FrontBackend[] = [];
  private readonly affinityMs: number;
  private readonly forgetAfterMs: number;
  private readonly host: string;
  private sweeper: NodeJS.Timeout | null = null;
  private readonly counters = { datagramsIn: 0, datagramsOut: 0, misrouted: 0, noBackend: 0, reassigned: 0 };
  private readonly perBackend = new Map<string, { datagrams: number }>();
  /** Flows per backend id, kept up to date so that picking is not a scan of every flow. */
  private readonly flowCounts = new Map<string, number>();

  constructor(options: { host?: string; affinityMs?: number; forgetAfterMs?: number } = {}) {
    this.host = options.host ?? '127.0.0.1';
    this.affinityMs = options.affinityMs ?? 30_000;
    this.forgetAfterMs = Math.max(options.forgetAfterMs ?? 600_000, this.affinityMs);
    this.socket = dgram.createSocket('udp4');
    this.socket.on('message', (datagram, rinfo) => this.fromDevice(datagram, rinfo));
  }

  async listen(port = 0): Promise<{ address: string; port: number }> {
    await bind(this.socket, port, this.host);
    raiseBuffers(this.socket);
    this.sweeper = setInterval(() => this.sweep(), 1_000).unref();
    return { address: this.host, port: this.socket.address().port };
  }

  /** Replaces the endpoint list (what the local platform learns from /readyz). */
  setBackends(backends: readonly FrontBackend[]): void {
    this.backends = backends.map((b) => ({ ...b }));
    const byId = new Map(this.backends.map((b) => [b.id, b]));
    // A flow whose backend is gone loses its affinity at once; the others see the new readiness.
    for (const flow of this.flows.values()) {
      if (flow.backend !== null) this.assign(flow, byId.get(flow.backend.id) ?? null);
    }
  }

  /** Forgets every flow's affinity now, as if every conntrack entry had timed out. */
  expireAffinity(): void {
    for (const flow of this.flows.values()) this.assign(flow, null);
  }

  stats(): FrontStats {
    const perBackend: FrontStats['perBackend'] = {};
    for (const backend of this.backends) perBackend[backend.id] = { flows: 0, datagrams: this.perBackend.get(backend.id)?.datagrams ?? 0 };
    for (const flow of this.flows.values()) {
      if (flow.backend !== null) (perBackend[flow.backend.id] ??= { flows: 0, datagrams: 0 }).flows++;
    }
    return { flows: this.flows.size, ...this.counters, perBackend };
  }

  async close(): Promise<void> {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    for (const flow of this.flows.values()) flow.socket.close();
    this.flows.clear();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private fromDevice(datagram: Buffer, rinfo: dgram.RemoteInfo): void {
    this.counters.datagramsIn++;
    const key = `${rinfo.address}:${rinfo.port}`;
    let flow = this.flows.get(key);
    const now = Date.now();
    if (flow === undefined) {
      flow = this.newFlow({ address: rinfo.address, port: rinfo.port });
      this.flows.set(key, flow);
    } else if (flow.backend !== null && now - flow.lastSeenAt >= this.affinityMs) {
      this.assign(flow, null);
    }
    flow.lastSeenAt = now;
    if (flow.backend === null) {
      this.assign(flow, this.pick());
      if (flow.backend === null) {
        this.counters.noBackend++;
        return;
      }
      this.counters.reassigned++;
    }
    const counter = this.perBackend.get(flow.backend.id) ?? { datagrams: 0 };
    counter.datagrams++;
    this.perBackend.set(flow.backend.id, counter);
    flow.socket.send(datagram, flow.backend.port, flow.backend.address);
  }

  private newFlow(device: { address: string; port: number }): Flow {
    const socket = dgram.createSocket('udp4');
    const flow: Flow = { device, socket, backend: null, lastSeenAt: Date.now() };
    socket.on('message', (datagram, rinfo) => {
      const owner = flow.backend;
      if (owner === null || owner.port !== rinfo.port || owner.address !== rinfo.address) {
        this.counters.misrouted++;
        return;
      }
      this.counters.datagramsOut++;
      this.socket.send(datagram, flow.device.port, flow.device.address);
    });
    socket.on('error', () => undefined);
    socket.bind(0, this.host);
    return flow;
  }

  /** A ready backend with the fewest flows; ties go to the earliest listed. */
  private pick(): FrontBackend | null {
    let best: FrontBackend | null = null;
    for (const backend of this.backends) {
      if (!backend.ready) continue;
      if (best === null || (this.flowCounts.get(backend.id) ?? 0) < (this.flowCounts.get(best.id) ?? 0)) best = backend;
    }
    return best;
  }

  private assign(flow: Flow, backend: FrontBackend | null): void {
    if (flow.backend !== null) this.flowCounts.set(flow.backend.id, (this.flowCounts.get(flow.backend.id) ?? 1) - 1);
    flow.backend = backend;
    if (backend !== null) this.flowCounts.set(backend.id, (this.flowCounts.get(backend.id) ?? 0) + 1);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, flow] of this.flows) {
      if (now - flow.lastSeenAt >= this.forgetAfterMs) {
        this.assign(flow, null);
        flow.socket.close();
        this.flows.delete(key);
      }
    }
  }
}

function bind(socket: dgram.Socket, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

function raiseBuffers(socket: dgram.Socket): void {
  try {
    socket.setRecvBufferSize(4 * 1024 * 1024);
    socket.setSendBufferSize(4 * 1024 * 1024);
  } catch {
    // capped by the kernel
  }
}
