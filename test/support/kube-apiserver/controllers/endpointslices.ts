/**
 * The EndpointSlice controller (pkg/controller/endpointslice), for Services with a selector:
 *
 * - Every pod of the namespace that matches the selector, has an IP and has not finished is an endpoint, also while
 *   it terminates: conditions `serving` = the pod is Ready, `terminating` = it has a deletionTimestamp, `ready` =
 *   serving and not terminating, or always true with `publishNotReadyAddresses` (as the real controller).
 * - Each Service port is resolved per pod (a named targetPort through the pod's container ports); pods with the
 *   same resolved ports share a slice, so there is one slice per distinct port mapping, and one placeholder slice
 *   without endpoints when no pod matches.
 * - Slices are named `<service>-<random>`, labelled `kubernetes.io/service-name` and
 *   `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, owned by the Service (so the garbage
 *   collector removes them with it), addressType IPv4, endpoints ordered by address; a slice is written only when
 *   it changes.
 */
import type { IServiceSpec } from 'kubernetes-models/v1/ServiceSpec';
import type { PodSpec } from '../kinds/pod-spec.ts';
import { deepEqual } from '../patch.ts';
import type { Registry } from '../registry.ts';
import type { KubeObject, ResourceType } from '../resources.ts';
import { matchesAll, type Requirement } from '../selectors.ts';
import type { StoreEvent } from '../store.ts';
import { isPodReady, isTerminal, isTerminating, podStatus } from './pod-conditions.ts';
import { Controller } from './controller.ts';

const MANAGER = 'endpointslice-controller';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'endpointslice-controller.k8s.io';

export interface SlicePort {
  name: string;
  port: number;
  protocol: string;
  appProtocol?: string;
}

export interface SliceEndpoint {
  addresses: string[];
  conditions: { ready: boolean; serving: boolean; terminating: boolean };
  targetRef: { kind: 'Pod'; namespace: string; name: string; uid: string };
  nodeName?: string;
  hostname?: string;
}

function servicePorts(service: KubeObject, pod: KubeObject): SlicePort[] {
  const spec = service.spec as IServiceSpec;
  const containers = (pod.spec as PodSpec).containers ?? [];
  const out: SlicePort[] = [];
  for (const port of spec.ports ?? []) {
    const target = port.targetPort ?? port.port;
    let number: number | undefined;
    if (typeof target === 'number') number = target;
    else {
      for (const container of containers) {
        const found = (container.ports ?? []).find((p) => p.name === target && (p.protocol ?? 'TCP') === (port.protocol ?? 'TCP'));
        if (found !== undefined) {
          number = found.containerPort;
          break;
        }
      }
    }
    // A pod without the named port is left out of that port, as the real controller does.
    if (number === undefined) continue;
    const entry: SlicePort = { name: port.name ?? '', port: number, protocol: port.protocol ?? 'TCP' };
    if (port.appProtocol !== undefined) entry.appProtocol = port.appProtocol;
    out.push(entry);
  }
  return out;
}

export class EndpointSliceController extends Controller {
  private readonly registry: Registry;
  private readonly services: ResourceType;
  private readonly slices: ResourceType;

  constructor(registry: Registry) {
    super('endpointslices', registry.store);
    this.registry = registry;
    this.services = registry.catalogue.resolve('services');
    this.slices = registry.catalogue.resolve('endpointslices');
    for (const service of registry.store.list('/services')) this.queue.add(`${service.metadata.namespace}/${service.metadata.name}`);
  }

  protected observe(event: StoreEvent): void {
    if (event.table === '/services') this.queue.add(`${event.namespace}/${event.name}`);
    else if (event.table === '/pods') {
      for (const service of this.registry.store.list('/services', event.namespace)) this.queue.add(`${event.namespace}/${service.metadata.name}`);
    } else if (event.table === 'discovery.k8s.io/endpointslices' && event.object.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY) {
      const service = event.object.metadata.labels?.[SERVICE_NAME_LABEL];
      if (service !== undefined) this.queue.add(`${event.namespace}/${service}`);
    }
  }

  protected reconcile(key: string): void {
    const [namespace, name] = key.split('/') as [string, string];
    const service = this.registry.find(this.services, namespace, name);
    const existing = this.registry.store
      .list('discovery.k8s.io/endpointslices', namespace)
      .filter((s) => s.metadata.labels?.[SERVICE_NAME_LABEL] === name && s.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY);
    if (service === undefined || isTerminating(service)) return;
    const spec = service.spec as IServiceSpec;
    if (spec.selector === undefined || spec.type === 'ExternalName') return;
    const requirements: Requirement[] = Object.entries(spec.selector).map(([k, v]) => ({ key: k, operator: '=', values: [v] }));

    const groups = new Map<string, { ports: SlicePort[]; endpoints: SliceEndpoint[] }>();
    for (const pod of this.registry.store.list('/pods', namespace)) {
      const ip = podStatus(pod).podIP;
      if (ip === undefined || ip === '' || isTerminal(pod) || !matchesAll(requirements, pod.metadata.labels)) continue;
      const ports = servicePorts(service, pod);
      const serving = isPodReady(pod);
      const terminating = isTerminating(pod);
      const podSpec = pod.spec as PodSpec;
      const endpoint: SliceEndpoint = {
        addresses: [ip],
        conditions: { ready: spec.publishNotReadyAddresses === true || (serving && !terminating), serving, terminating },
        targetRef: { kind: 'Pod', namespace, name: pod.metadata.name!, uid: pod.metadata.uid! },
      };
      if (podSpec.nodeName) endpoint.nodeName = podSpec.nodeName;
      if (podSpec.hostname && podSpec.subdomain === name) endpoint.hostname = podSpec.hostname;
      const groupKey = JSON.stringify(ports);
      const group = groups.get(groupKey) ?? { ports, endpoints: [] };
      group.endpoints.push(endpoint);
      groups.set(groupKey, group);
    }
    const compare = (a: SliceEndpoint, b: SliceEndpoint): number => {
      const [x, y] = [a.addresses[0]!.split('.').map(Number), b.addresses[0]!.split('.').map(Number)];
      for (let i = 0; i < 4; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
      return 0;
    };
    const wanted = [...groups.values()].map((g) => ({ ports: g.ports, endpoints: g.endpoints.sort(compare) }));
    if (wanted.length === 0) wanted.push({ ports: [], endpoints: [] });

    const unused = [...existing];
    for (const slice of wanted) {
      const index = unused.findIndex((s) => deepEqual(s.ports ?? [], slice.ports));
      const current = index >= 0 ? unused.splice(index, 1)[0] : unused.shift();
      const labels = { ...service.metadata.labels, [SERVICE_NAME_LABEL]: name, [MANAGED_BY_LABEL]: MANAGED_BY };
      if (current === undefined) {
        this.registry.create(
          this.slices,
          namespace,
          {
            metadata: {
              generateName: `${name}-`,
              labels,
              ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name, uid: service.metadata.uid!, controller: true, blockOwnerDeletion: true }],
            },
            addressType: 'IPv4',
            endpoints: slice.endpoints,
            ports: slice.ports,
          },
          { fieldManager: MANAGER },
        );
      } else {
        const next = { ...structuredClone(current), endpoints: slice.endpoints, ports: slice.ports } as KubeObject;
        next.metadata.labels = labels;
        this.registry.commitUpdate(this.slices, current, next, '', { fieldManager: MANAGER }, undefined);
      }
    }
    for (const slice of unused) this.registry.delete(this.slices, namespace, slice.metadata.name!, { preconditions: { uid: slice.metadata.uid } }, { fieldManager: MANAGER });
  }
}
