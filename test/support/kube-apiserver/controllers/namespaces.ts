/**
 * What kube-controller-manager does for namespaces: every active namespace has the `default` ServiceAccount (the
 * ServiceAccount controller) and the `kube-root-ca.crt` ConfigMap with the cluster CA (the root CA publisher);
 * a namespace being deleted has its content deleted (pods gracefully, through the kubelet) and goes once empty.
 */
import { ROOT_CA_CONFIGMAP } from '../kinds/core.ts';
import { tableOf, type Registry } from '../registry.ts';
import type { KubeObject, ResourceType } from '../resources.ts';
import type { StoreEvent } from '../store.ts';
import { Controller } from './controller.ts';

const MANAGER = 'kube-controller-manager';

export class NamespaceController extends Controller {
  private readonly registry: Registry;
  private readonly caPem: string;
  private readonly namespaces: ResourceType;

  constructor(registry: Registry, caPem: string) {
    super('namespaces', registry.store);
    this.registry = registry;
    this.caPem = caPem;
    this.namespaces = registry.catalogue.resolve('namespaces');
    for (const ns of registry.store.list('/namespaces')) this.queue.add(ns.metadata.name!);
  }

  protected observe(event: StoreEvent): void {
    if (event.table === '/namespaces') this.queue.add(event.name);
    else if (event.namespace !== '') {
      // A change inside a namespace matters while it terminates, and for the two objects kept in each one.
      const ns = this.registry.store.get('/namespaces', '', event.namespace);
      if (ns?.metadata.deletionTimestamp !== undefined || event.type === 'DELETED' || event.table === '/configmaps') this.queue.add(event.namespace);
    }
  }

  protected reconcile(name: string): void {
    const namespace = this.registry.store.get('/namespaces', '', name);
    if (namespace === undefined) return;
    if (namespace.metadata.deletionTimestamp !== undefined) this.finalize(namespace);
    else this.ensureDefaults(name);
  }

  private ensureDefaults(namespace: string): void {
    const accounts = this.registry.catalogue.resolve('serviceaccounts');
    if (this.registry.find(accounts, namespace, 'default') === undefined) {
      this.registry.create(accounts, namespace, { metadata: { name: 'default' } }, { fieldManager: MANAGER });
    }
    const configmaps = this.registry.catalogue.resolve('configmaps');
    const data = { 'ca.crt': this.caPem };
    const current = this.registry.find(configmaps, namespace, ROOT_CA_CONFIGMAP);
    const wanted: KubeObject = {
      metadata: { name: ROOT_CA_CONFIGMAP, annotations: { 'kubernetes.io/description': 'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.' } },
      data,
    };
    if (current === undefined) this.registry.create(configmaps, namespace, wanted, { fieldManager: MANAGER });
    else if (JSON.stringify(current.data) !== JSON.stringify(data)) {
      this.registry.commitUpdate(configmaps, current, { ...structuredClone(current), data }, '', { fieldManager: MANAGER }, undefined);
    }
  }

  private finalize(namespace: KubeObject): void {
    const name = namespace.metadata.name!;
    let remaining = 0;
    for (const type of this.registry.catalogue.types) {
      if (!type.namespaced) continue;
      for (const object of this.registry.store.list(tableOf(type), name)) {
        remaining++;
        if (object.metadata.deletionTimestamp === undefined) this.registry.delete(type, name, object.metadata.name!, {}, { fieldManager: MANAGER });
      }
    }
    if (remaining === 0) this.registry.remove(this.namespaces, namespace);
  }
}
