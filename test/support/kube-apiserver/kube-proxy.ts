/**
 * The kube-proxy stand-in, for UDP Services (ClusterIP, NodePort, LoadBalancer; not headless): one UDP front per
 * Service port, listening on the Service's cluster IP (a loopback address) and the Service port, routing each device
 * flow to an endpoint of the Service's EndpointSlices with conntrack semantics. It reuses the local platform's UDP
 * front (orchestrator/platform/local/udp-front.ts):
 *
 * - The endpoints used are the `ready` ones; when none is ready, the ones `serving` and `terminating` (kube-proxy's
 *   terminating-endpoint fallback).
 * - A flow stays on its endpoint while it is used (and until the UDP conntrack timeout, 30 s by default, after
 *   its last datagram); an endpoint that leaves the list (not ready any more, deleted, relabelled out of the
 *   Service) loses its flows at once, as kube-proxy deletes the UDP conntrack entries of stale endpoints, and their
 *   next datagrams go to another endpoint.
 * - A LoadBalancer Service gets `status.loadBalancer.ingress[0].ip` = its cluster IP (what a cloud controller
 *   would write), so a client finds the front there.
 *
 * Node ports are allocated but not listened on; TCP Services get no front (reach pods by IP or port-forward).
 */
import type { IServiceSpec } from 'kubernetes-models/v1/ServiceSpec';
import { UdpFront, type FrontBackend, type FrontStats } from '../../../orchestrator/platform/local/udp-front.ts';
import { Controller } from './controllers/controller.ts';
import { SERVICE_NAME_LABEL, type SliceEndpoint, type SlicePort } from './controllers/endpointslices.ts';
import type { Registry } from './registry.ts';
import type { KubeObject, ResourceType } from './resources.ts';
import type { StoreEvent } from './store.ts';

export interface KubeProxyOptions {
  /** UDP conntrack timeout: an idle flow keeps its endpoint this long (default 30 s, kube-proxy's default). */
  udpTimeoutMs?: number;
}

interface Front {
  front: UdpFront;
  address: string;
  port: number;
  /** The Service port's name ('' when unnamed), matched against the slices' port names. */
  portName: string;
  backends: FrontBackend[];
}

export interface ServiceFront {
  address: string;
  port: number;
  backends(): readonly FrontBackend[];
  stats(): FrontStats;
}

function frontKey(namespace: string, service: string, port: number): string {
  return `${namespace}/${service}/${port}`;
}

export class KubeProxy extends Controller {
  private readonly registry: Registry;
  private readonly services: ResourceType;
  private readonly fronts = new Map<string, Front>();
  private readonly affinityMs: number;

  constructor(registry: Registry, options: KubeProxyOptions = {}) {
    super('kube-proxy', registry.store);
    this.registry = registry;
    this.services = registry.catalogue.resolve('services');
    this.affinityMs = options.udpTimeoutMs ?? 30_000;
    for (const service of registry.store.list('/services')) this.queue.add(`${service.metadata.namespace}/${service.metadata.name}`);
  }

  protected observe(event: StoreEvent): void {
    if (event.table === '/services') this.queue.add(`${event.namespace}/${event.name}`);
    else if (event.table === 'discovery.k8s.io/endpointslices') {
      const service = event.object.metadata.labels?.[SERVICE_NAME_LABEL];
      if (service !== undefined) this.queue.add(`${event.namespace}/${service}`);
    }
  }

  /** The front of a Service port, once it listens. */
  front(namespace: string, service: string, port: number): ServiceFront | undefined {
    const entry = this.fronts.get(frontKey(namespace, service, port));
    if (entry === undefined) return undefined;
    return { address: entry.address, port: entry.port, backends: () => entry.backends, stats: () => entry.front.stats() };
  }

  async close(): Promise<void> {
    this.stop();
    const fronts = [...this.fronts.values()];
    this.fronts.clear();
    await Promise.all(fronts.map((f) => f.front.close()));
  }

  private wantedPorts(service: KubeObject | undefined): { address: string; port: number; name: string }[] {
    if (service === undefined || service.metadata.deletionTimestamp !== undefined) return [];
    const spec = service.spec as IServiceSpec;
    if (!['ClusterIP', 'NodePort', 'LoadBalancer'].includes(spec.type ?? 'ClusterIP')) return [];
    if (spec.clusterIP === undefined || spec.clusterIP === '' || spec.clusterIP === 'None') return [];
    return (spec.ports ?? []).filter((p) => p.protocol === 'UDP').map((p) => ({ address: spec.clusterIP!, port: p.port, name: p.name ?? '' }));
  }

  protected async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const service = this.registry.find(this.services, namespace, name);
    const wanted = this.wantedPorts(service);
    for (const [k, entry] of this.fronts) {
      if (!k.startsWith(`${namespace}/${name}/`)) continue;
      if (!wanted.some((w) => frontKey(namespace, name, w.port) === k && w.address === entry.address)) {
        this.fronts.delete(k);
        await entry.front.close();
      }
    }
    const slices = this.registry.store.list('discovery.k8s.io/endpointslices', namespace).filter((s) => s.metadata.labels?.[SERVICE_NAME_LABEL] === name);
    for (const port of wanted) {
      const k = frontKey(namespace, name, port.port);
      let entry = this.fronts.get(k);
      if (entry === undefined) {
        const front = new UdpFront({ host: port.address, affinityMs: this.affinityMs });
        await front.listen(port.port);
        entry = { front, address: port.address, port: port.port, portName: port.name, backends: [] };
        this.fronts.set(k, entry);
      }
      entry.backends = this.backends(slices, port.name);
      entry.front.setBackends(entry.backends);
    }
    // Re-read: the Service may have changed while the fronts were starting.
    const latest = this.registry.find(this.services, namespace, name);
    if (latest !== undefined && wanted.length > 0 && (latest.spec as IServiceSpec).type === 'LoadBalancer') this.publishIngress(latest);
  }

  private backends(slices: readonly KubeObject[], portName: string): FrontBackend[] {
    const ready: FrontBackend[] = [];
    const terminating: FrontBackend[] = [];
    for (const slice of slices) {
      const port = ((slice.ports as SlicePort[] | undefined) ?? []).find((p) => p.name === portName && p.protocol === 'UDP');
      if (port === undefined) continue;
      for (const endpoint of (slice.endpoints as SliceEndpoint[] | undefined) ?? []) {
        const address = endpoint.addresses[0]!;
        const backend: FrontBackend = { id: endpoint.targetRef?.name ?? address, address, port: port.port, ready: true };
        if (endpoint.conditions.ready) ready.push(backend);
        else if (endpoint.conditions.serving && endpoint.conditions.terminating) terminating.push(backend);
      }
    }
    return ready.length > 0 ? ready : terminating;
  }

  private publishIngress(service: KubeObject): void {
    const ip = (service.spec as IServiceSpec).clusterIP!;
    const status = { loadBalancer: { ingress: [{ ip, ipMode: 'VIP' }] } };
    this.registry.commitUpdate(this.services, service, { ...service, status }, 'status', { fieldManager: 'cloud-controller-manager' }, undefined);
  }
}
