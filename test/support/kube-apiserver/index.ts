/**
 * An in-process Kubernetes API server stand-in for tests: HTTPS on 127.0.0.1 with its own CA, authentication by
 * bearer token or client certificate, RBAC, the resources relayctl and its manifests use, watches, and the
 * controllers that make objects come alive. See README.md for what it implements and where it differs from a
 * real API server.
 *
 *   const api = await startKubeApiServer({ users: [{ name: 'ci', token: true }] });
 *   const kc = new KubeConfig(); kc.loadFromString(api.kubeconfigFor('ci', 'relays'));
 *   ...
 *   await api.close();
 */
import { writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { LoopbackPool, NodePortPool } from './addresses.ts';
import { ApiServer } from './api-server.ts';
import { Authenticator, GROUP_AUTHENTICATED, GROUP_MASTERS, parseServiceAccountName, serviceAccountUser, type UserInfo } from './authentication.ts';
import type { Controller } from './controllers/controller.ts';
import { EndpointSliceController } from './controllers/endpointslices.ts';
import { Kubelet, type KubeletOptions } from './kubelet/kubelet.ts';
import { KubeProxy, type KubeProxyOptions, type ServiceFront } from './kube-proxy.ts';
import { PortForwarder } from './port-forward.ts';
import { EventRecorder } from './controllers/events.ts';
import { GarbageCollector } from './controllers/garbage-collector.ts';
import { NamespaceController } from './controllers/namespaces.ts';
import { StatefulSetController } from './controllers/statefulsets.ts';
import { catalogue as buildCatalogue } from './kinds/index.ts';
import { kubeconfigYaml, type KubeconfigUser } from './kubeconfig.ts';
import { APPLY_PATCH } from './patch.ts';
import { RbacAuthorizer } from './rbac.ts';
import { Registry, tableOf } from './registry.ts';
import { RequestLog } from './request-log.ts';
import type { KubeObject, ResourceType } from './resources.ts';
import { matchesAll, parseLabelSelector } from './selectors.ts';
import { ObjectStore, type StoreEvent } from './store.ts';
import { createClusterPki, issueClientCertificate } from './tls.ts';

export type { KubeObject } from './resources.ts';
export type { RecordedRequest, RequiredRule } from './request-log.ts';
export type { StoreEvent } from './store.ts';
export { ManualClock, ScaledClock, type KubeletClock } from './kubelet/clock.ts';
export type { ImageSpec, ImageResolver } from './kubelet/runtime.ts';
export type { Kubelet, KubeletOptions } from './kubelet/kubelet.ts';
export type { ProbeOutcome } from './kubelet/pod-worker.ts';
export type { KubeProxyOptions, ServiceFront } from './kube-proxy.ts';

export const ADMIN_USER = 'admin';

export interface UserSpec {
  /** The user name, e.g. `ci` or `system:serviceaccount:relays:relayctl`. */
  name: string;
  /** Extra groups (system:authenticated is always added; service accounts get theirs). */
  groups?: readonly string[];
  /** A bearer token: the given one, or `true` for a random one. Default: a token when no certificate is asked. */
  token?: string | true;
  /** Authenticate with a client certificate (CN = name) instead of / besides a token. */
  certificate?: boolean;
}

export interface KubeApiServerOptions {
  users?: readonly UserSpec[];
  /**
   * Whom RBAC applies to: true (default) everyone outside system:masters, false nobody (all allowed), or a list
   * of user names. `enforceRbac()` changes it per user at run time.
   */
  rbac?: boolean | readonly string[];
  /** Namespaces created at start (default: ['default']). */
  namespaces?: readonly string[];
  /** Store events kept for watches to resume from (default 1,000); older resourceVersions get 410 Gone. */
  watchHistory?: number;
  /** How long a watch without timeoutSeconds lasts (default 1,800 s, the real --min-request-timeout). */
  watchTimeoutSeconds?: number;
  /** Interval of BOOKMARK events for watches that allow them (default 60 s). */
  bookmarkIntervalMs?: number;
  /** kube-controller-manager's controllers (each on by default; the namespace controller always runs). */
  controllers?: { statefulSets?: boolean; endpointSlices?: boolean; garbageCollector?: boolean };
  /**
   * The kubelet stand-in (on by default, with no images: every pod waits in ErrImagePull until `images` says how
   * to run its image). `false`: no node, pods stay unscheduled and are deleted at once.
   */
  kubelet?: false | KubeletOptions;
  /** The kube-proxy stand-in: UDP fronts for UDP Services (on by default). */
  kubeProxy?: false | KubeProxyOptions;
}



export interface StoreView {
  /** `pods`, `statefulsets`, `statefulsets.apps`, `StatefulSet`, ... */
  get(resource: string, namespace: string, name: string): KubeObject | undefined;
  list(resource: string, namespace?: string, labelSelector?: string): KubeObject[];
  /** The current revision (the newest resourceVersion). */
  revision(): number;
  /** Forget the watch history (as etcd compaction does): a watch from any older resourceVersion gets 410. */
  compact(): void;
  /** Calls `listener` for every write from now on; returns the unsubscribe function. */
  subscribe(listener: (event: StoreEvent) => void): () => void;
  /**
   * Resolves with the object (or undefined when it is gone) as soon as `predicate` holds for it, checked now and
   * after every write to it; rejects after `timeoutMs` (default 10 s) with the last state in the message.
   */
  waitFor(
    resource: string,
    namespace: string,
    name: string,
    predicate: (object: KubeObject | undefined) => boolean,
    timeoutMs?: number,
  ): Promise<KubeObject | undefined>;
}

export interface KubeApiServer {
  /** https://127.0.0.1:<port> */
  url: string;
  /** The cluster CA certificate (PEM). */
  ca: string;
  /** A user's bearer token (for raw HTTP requests in tests); undefined for certificate-only users. */
  tokenOf(user: string): string | undefined;
  /** A kubeconfig (YAML) for a user, with a context for `namespace` (default 'default'). */
  kubeconfigFor(user: string, namespace?: string): string;
  writeKubeconfig(file: string, user: string, namespace?: string): Promise<void>;
  /** Adds a user at run time (same fields as the `users` option). */
  addUser(user: UserSpec): Promise<void>;
  /** Turns RBAC on or off for one user. */
  enforceRbac(user: string, on: boolean): void;
  /** Objects as stored, for assertions. */
  store: StoreView;
  /** Every HTTP request, in order. */
  requests: RequestLog;
  /**
   * Creates or updates objects as an admin, in order (server-side apply with force, field manager
   * `standin-apply`); a namespaced object without a namespace goes to 'default'. Returns the stored objects.
   */
  apply(objects: KubeObject | readonly KubeObject[]): KubeObject[];
  /** Resolves when every controller has nothing left to do right now (not waiting on processes or timers). */
  settled(): Promise<void>;
  /** The kubelet stand-in, undefined with `kubelet: false`. */
  kubelet: Kubelet | undefined;
  /** The UDP front of a Service port (kube-proxy stand-in), once it listens: address, port, backends, stats. */
  serviceFront(namespace: string, service: string, port: number): ServiceFront | undefined;
  /** A container's log (the pods/log subresource); undefined when it never ran. */
  podLog(namespace: string, pod: string, container?: string): string | undefined;
  /** Errors controllers hit (they retry); empty in a healthy run. */
  controllerErrors(): { key: string; error: unknown }[];
  close(): Promise<void>;
}

interface KnownUser {
  info: UserInfo;
  credentials: KubeconfigUser;
}

export async function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const pki = await createClusterPki();
  const catalogue = buildCatalogue();
  const store = new ObjectStore(options.watchHistory ?? 1000);
  const podAddresses = new LoopbackPool();
  const serviceAddresses = new LoopbackPool(podAddresses.secondOctet);
  const nodePorts = new NodePortPool();
  const registry = new Registry(catalogue, store, {
    now: () => new Date(),
    allocateClusterIP: () => serviceAddresses.next(),
    allocateNodePort: () => nodePorts.next(),
  });

  const rbacSetting = options.rbac ?? true;
  const rbacOverrides = new Map<string, boolean>();
  const enforced = (user: UserInfo): boolean => {
    const override = rbacOverrides.get(user.name);
    if (override !== undefined) return override;
    return rbacSetting === true || (Array.isArray(rbacSetting) && rbacSetting.includes(user.name));
  };
  const authenticator = new Authenticator((namespace, name) => store.get('/serviceaccounts', namespace, name) !== undefined);
  const authorizer = new RbacAuthorizer(store, enforced);
  const log = new RequestLog();

  const users = new Map<string, KnownUser>();
  const addUser = async (spec: UserSpec): Promise<void> => {
    const account = parseServiceAccountName(spec.name);
    const base = account === null ? [GROUP_AUTHENTICATED] : serviceAccountUser(account.namespace, account.name).groups;
    const info: UserInfo = { name: spec.name, groups: [...new Set([...(spec.groups ?? []), ...base])] };
    const credentials: KubeconfigUser = { name: spec.name };
    if (spec.certificate === true) {
      const issued = await issueClientCertificate(pki, spec.name);
      authenticator.addCertificate(issued.fingerprint256, info);
      credentials.certificate = { certPem: issued.certPem, keyPem: issued.keyPem };
    }
    if (spec.token !== undefined || spec.certificate !== true) {
      const token = typeof spec.token === 'string' ? spec.token : randomBytes(24).toString('base64url');
      authenticator.addToken(token, info);
      credentials.token = token;
    }
    users.set(spec.name, { info, credentials });
  };
  await addUser({ name: ADMIN_USER, groups: [GROUP_MASTERS], certificate: true, token: true });
  for (const spec of options.users ?? []) await addUser(spec);

  const namespaces = catalogue.resolve('namespaces');
  for (const name of options.namespaces ?? ['default']) registry.create(namespaces, '', { metadata: { name } }, { fieldManager: 'standin' });

  const wanted = { statefulSets: true, endpointSlices: true, garbageCollector: true, ...options.controllers };
  const controllers: Controller[] = [new NamespaceController(registry, pki.ca.certPem)];
  if (wanted.statefulSets) controllers.push(new StatefulSetController(registry, new EventRecorder(registry, 'statefulset-controller')));
  if (wanted.endpointSlices) controllers.push(new EndpointSliceController(registry));
  if (wanted.garbageCollector) controllers.push(new GarbageCollector(registry));
  const kubeProxy = options.kubeProxy === false ? undefined : new KubeProxy(registry, options.kubeProxy ?? {});
  const forwarder = new PortForwarder(registry);

  const api = new ApiServer({
    registry,
    authenticator,
    authorizer,
    log,
    tls: { key: pki.server.keyPem, cert: pki.server.certPem, ca: pki.ca.certPem },
    watchTimeoutMs: (options.watchTimeoutSeconds ?? 1800) * 1000,
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
    podLog: (namespace, pod, container) => podLog(namespace, pod, container),
  });
  api.onUpgrade((context) => forwarder.handle(context));
  const port = await api.listen('127.0.0.1');
  const url = `https://127.0.0.1:${port}`;
  const kubelet =
    options.kubelet === false
      ? undefined
      : new Kubelet(registry, options.kubelet ?? {}, {
          allocateIP: () => podAddresses.next(),
          issueToken: (namespace, account) => authenticator.issueServiceAccountToken(namespace, account),
          apiHost: '127.0.0.1',
          apiPort: port,
        });
  const podLog = (namespace: string, pod: string, container?: string): string | undefined => kubelet?.logs(namespace, pod, container);

  const typeOf = (resource: string): ResourceType => catalogue.resolve(resource);
  const storeView: StoreView = {
    get: (resource, namespace, name) => {
      const type = typeOf(resource);
      return store.get(tableOf(type), type.namespaced ? namespace : '', name);
    },
    list: (resource, namespace, labelSelector) => {
      const type = typeOf(resource);
      const items = store.list(tableOf(type), type.namespaced ? namespace : undefined);
      if (labelSelector === undefined) return items;
      const requirements = parseLabelSelector(labelSelector);
      return items.filter((o) => matchesAll(requirements, o.metadata.labels));
    },
    revision: () => store.currentRevision(),
    compact: () => store.compact(),
    subscribe: (listener) => store.subscribe(listener),
    waitFor: (resource, namespace, name, predicate, timeoutMs = 10_000) => {
      const type = typeOf(resource);
      const table = tableOf(type);
      const ns = type.namespaced ? namespace : '';
      const current = store.get(table, ns, name);
      if (predicate(current)) return Promise.resolve(current);
      return new Promise((resolve, reject) => {
        let last = current;
        const unsubscribe = store.subscribe((event) => {
          if (event.table !== table || event.namespace !== ns || event.name !== name) return;
          last = event.type === 'DELETED' ? undefined : event.object;
          if (!predicate(last)) return;
          clearTimeout(timer);
          unsubscribe();
          resolve(last);
        });
        const timer = setTimeout(() => {
          unsubscribe();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${type.resource} ${ns}/${name}; last state: ${JSON.stringify(last)}`));
        }, timeoutMs);
      });
    },
  };

  const kubeconfigFor = (user: string, namespace = 'default'): string => {
    const known = users.get(user);
    if (known === undefined) throw new Error(`unknown user ${JSON.stringify(user)}; known: ${[...users.keys()].join(', ')}`);
    return kubeconfigYaml(url, pki.ca.certPem, known.credentials, namespace);
  };

  const server: KubeApiServer = {
    url,
    ca: pki.ca.certPem,
    kubeconfigFor,
    tokenOf: (user) => users.get(user)?.credentials.token,
    async writeKubeconfig(file, user, namespace) {
      await writeFile(file, kubeconfigFor(user, namespace), { mode: 0o600 });
    },
    addUser,
    enforceRbac(user, on) {
      rbacOverrides.set(user, on);
    },
    store: storeView,
    requests: log,
    apply(objects) {
      const list = Array.isArray(objects) ? objects : [objects as KubeObject];
      return list.map((object) => {
        const type = catalogue.forKind(object.apiVersion ?? '', object.kind ?? '');
        if (type === undefined) throw new Error(`apply: unknown apiVersion/kind ${object.apiVersion}/${object.kind}`);
        const namespace = type.namespaced ? (object.metadata.namespace ?? 'default') : '';
        return registry.patch(type, namespace, object.metadata.name!, APPLY_PATCH, JSON.stringify(object), '', { fieldManager: 'standin-apply', force: true }).object;
      });
    },
    async settled() {
      for (let round = 0; round < 100; round++) {
        const before = store.currentRevision();
        await Promise.all([...controllers.map((c) => c.idle()), kubelet?.idle(), kubeProxy?.idle()]);
        await new Promise((resolve) => setImmediate(resolve));
        if (store.currentRevision() === before) return;
      }
    },
    kubelet,
    podLog,
    serviceFront: (namespace, service, port) => kubeProxy?.front(namespace, service, port),
    controllerErrors: () => [...controllers.flatMap((c) => [...c.errors]), ...(kubelet?.errors ?? []), ...(kubeProxy?.errors ?? [])],
    async close() {
      for (const controller of controllers) controller.stop();
      forwarder.close();
      await kubelet?.close();
      await kubeProxy?.close();
      await api.close();
    },
  };
  // The namespaces given at start are ready (default ServiceAccount, root CA) when the server is handed out.
  await server.settled();
  return server;
}
