/**
 * Every Kubernetes API call the platform makes, and nothing else: each one names its RBAC verb and resource (so a
 * 403 says which rule is missing), maps failures through kube-errors.ts, sends patches as JSON merge patches, and
 * honours the dry-run mode:
 *   client  writes are recorded and not sent; reads still go to the API server;
 *   server  writes are sent with dryRun=All (validated, admitted, never persisted) and recorded.
 * Every request ends after `requestTimeoutMs` or when the API is closed.
 */
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  PatchStrategy,
  ServerConfiguration,
  Watch,
  createConfiguration,
  setHeaderOptions,
  type KubeConfig,
  type Middleware,
  type V1Lease,
  type V1Pod,
  type V1Secret,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { ErrorCode, conflictError, isOrchestratorError } from '../../errors.ts';
import { qualifiedResource, toPlatformError, type ApiCall, type CallContext, type Verb } from './kube-errors.ts';
import type { DryRunMode, WriteLog, WriteRecord } from './dry-run.ts';
import { jsonMergePatch } from './labels.ts';

export interface KubeApiOptions {
  kubeConfig: KubeConfig;
  server: string;
  namespace: string;
  /** For messages: "user ci (context prod)". */
  identity: string;
  /** The dry-run mode, and where writes are recorded in a dry run. */
  writes: WriteLog;
  /** One API request, from sending to the end of its answer. Default 30 s. */
  requestTimeoutMs?: number;
  userAgent?: string;
}

export interface ObjectList<T> {
  items: T[];
  resourceVersion: string;
}

export type WatchedResource = 'pods' | 'statefulsets';

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR' | (string & {});
  /** The object as the API server sent it (raw JSON: timestamps are strings), or a Status for ERROR. */
  object: unknown;
}

export interface WatchHandle {
  /** Settles when the watch ends: null when the server ended it, else the error (raw, as client-node gave it). */
  done: Promise<unknown>;
  abort(): void;
}

export interface WatchParams {
  resourceVersion: string;
  labelSelector?: string;
  /** The server ends the watch after this long; below client-node's 30 s inactivity limit. */
  timeoutSeconds: number;
}

const PATCH_OPTIONS = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class KubeApi {
  readonly namespace: string;
  readonly dryRun: DryRunMode;
  readonly #context: CallContext;
  readonly #apps: AppsV1Api;
  readonly #core: CoreV1Api;
  readonly #coordination: CoordinationV1Api;
  readonly #watch: Watch;
  readonly #closing = new AbortController();
  readonly #writes: WriteLog;

  constructor(options: KubeApiOptions) {
    this.namespace = options.namespace;
    this.dryRun = options.writes.mode;
    this.#writes = options.writes;
    this.#context = { identity: options.identity, server: options.server };
    const timeoutMs = options.requestTimeoutMs ?? 30_000;
    const closing = this.#closing.signal;
    const userAgent = options.userAgent ?? 'relayctl';
    const perRequest: Middleware = {
      pre: async (request) => {
        request.setHeaderParam('User-Agent', userAgent);
        request.setSignal(AbortSignal.any([closing, AbortSignal.timeout(timeoutMs)]));
        return request;
      },
      post: async (response) => response,
    };
    const configuration = createConfiguration({
      baseServer: new ServerConfiguration(options.server, {}),
      authMethods: { default: options.kubeConfig },
      promiseMiddleware: [perRequest],
    });
    this.#apps = new AppsV1Api(configuration);
    this.#core = new CoreV1Api(configuration);
    this.#coordination = new CoordinationV1Api(configuration);
    this.#watch = new Watch(options.kubeConfig);
  }

  /** Aborts every request in flight; later calls fail at once. */
  close(): void {
    this.#closing.abort(new Error('the Kubernetes platform was closed'));
  }

  // ---- StatefulSets ---------------------------------------------------------------------------------------------

  getStatefulSet(name: string): Promise<V1StatefulSet | null> {
    return this.#read(this.#sets('get', name), () => this.#apps.readNamespacedStatefulSet({ name, namespace: this.namespace }));
  }

  async listStatefulSets(): Promise<ObjectList<V1StatefulSet>> {
    const list = await this.#call(this.#sets('list'), () => this.#apps.listNamespacedStatefulSet({ namespace: this.namespace }));
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  createStatefulSet(body: V1StatefulSet): Promise<V1StatefulSet> {
    return this.#write(this.#sets('create', body.metadata?.name), body, () =>
      this.#apps.createNamespacedStatefulSet({ namespace: this.namespace, body, dryRun: this.#dryRunParam }),
    );
  }

  /** Background propagation: the set goes now, the garbage collector deletes its pods. False when it was gone. */
  async deleteStatefulSet(name: string): Promise<boolean> {
    const options = { propagationPolicy: 'Background' };
    const call = this.#sets('delete', name);
    if (this.#kept(call, options)) return true;
    try {
      await this.#call(call, () =>
        this.#apps.deleteNamespacedStatefulSet({ name, namespace: this.namespace, ...options, dryRun: this.#dryRunParam }),
      );
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** A JSON merge patch; a metadata.resourceVersion in it is a precondition (409 when stale). */
  patchStatefulSet(name: string, patch: object): Promise<V1StatefulSet> {
    return this.#patch(this.#sets('patch', name), patch, () => this.getStatefulSet(name), () =>
      this.#apps.patchNamespacedStatefulSet({ name, namespace: this.namespace, body: patch, dryRun: this.#dryRunParam }, PATCH_OPTIONS),
    );
  }

  // ---- pods -----------------------------------------------------------------------------------------------------

  getPod(name: string): Promise<V1Pod | null> {
    return this.#read(this.#pods('get', name), () => this.#core.readNamespacedPod({ name, namespace: this.namespace }));
  }

  async listPods(labelSelector: string): Promise<ObjectList<V1Pod>> {
    const list = await this.#call(this.#pods('list'), () => this.#core.listNamespacedPod({ namespace: this.namespace, labelSelector }));
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  patchPod(name: string, patch: object): Promise<V1Pod> {
    return this.#patch(this.#pods('patch', name), patch, () => this.getPod(name), () =>
      this.#core.patchNamespacedPod({ name, namespace: this.namespace, body: patch, dryRun: this.#dryRunParam }, PATCH_OPTIONS),
    );
  }

  // ---- Leases and Secrets ---------------------------------------------------------------------------------------

  getLease(name: string): Promise<V1Lease | null> {
    return this.#read(this.#leases('get', name), () => this.#coordination.readNamespacedLease({ name, namespace: this.namespace }));
  }

  createLease(body: V1Lease): Promise<V1Lease> {
    return this.#write(this.#leases('create', body.metadata?.name ?? ''), body, () =>
      this.#coordination.createNamespacedLease({ namespace: this.namespace, body, dryRun: this.#dryRunParam }),
    );
  }

  /** A full update guarded by body.metadata.resourceVersion (409 when somebody wrote the Lease since). */
  replaceLease(body: V1Lease): Promise<V1Lease> {
    const name = body.metadata?.name ?? '';
    return this.#write(this.#leases('update', name), body, () =>
      this.#coordination.replaceNamespacedLease({ name, namespace: this.namespace, body, dryRun: this.#dryRunParam }),
    );
  }

  getSecret(name: string): Promise<V1Secret | null> {
    return this.#read({ verb: 'get', group: '', resource: 'secrets', namespace: this.namespace, name }, () =>
      this.#core.readNamespacedSecret({ name, namespace: this.namespace }),
    );
  }

  // ---- watches --------------------------------------------------------------------------------------------------

  /**
   * Starts a watch; resolves once the API server accepted it (its answer's headers arrived). Rejects with the raw
   * client-node error when it refused (a 410 Gone for a resourceVersion too old among them): the caller decides.
   */
  async watch(resource: WatchedResource, params: WatchParams, onEvent: (event: WatchEvent) => void): Promise<WatchHandle> {
    const path = resource === 'pods' ? `/api/v1/namespaces/${this.namespace}/pods` : `/apis/apps/v1/namespaces/${this.namespace}/statefulsets`;
    // The first end wins: the server's, a failure, or our abort.
    const state: { ended: boolean; error: unknown } = { ended: false, error: null };
    let settle: (error: unknown) => void = () => undefined;
    const done = new Promise<unknown>((resolve) => (settle = resolve));
    const end = (error: unknown): void => {
      if (state.ended) return;
      state.ended = true;
      state.error = error ?? null;
      settle(state.error);
    };
    const query: Record<string, string | number | boolean> = {
      resourceVersion: params.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: params.timeoutSeconds,
    };
    if (params.labelSelector !== undefined) query.labelSelector = params.labelSelector;
    const controller = await this.#watch.watch(
      path,
      query,
      (type: string, object: unknown) => {
        if (!state.ended) onEvent({ type, object });
      },
      end,
    );
    if (state.ended && state.error !== null) throw state.error;
    const onClose = (): void => controller.abort();
    this.#closing.signal.addEventListener('abort', onClose, { once: true });
    void done.then(() => this.#closing.signal.removeEventListener('abort', onClose));
    return {
      done,
      abort: () => {
        end(null);
        controller.abort();
      },
    };
  }

  /** What an API failure means to a user, for errors raised outside a call (a watch that failed). */
  describeFailure(error: unknown, call: ApiCall): Error {
    return toPlatformError(error, call, this.#context);
  }

  // ---- helpers --------------------------------------------------------------------------------------------------

  get #dryRunParam(): string | undefined {
    return this.dryRun === 'server' ? 'All' : undefined;
  }

  /** Records a write in a dry run; true when client dry-run keeps it back. */
  #kept(call: ApiCall, body: unknown, contentType?: string): boolean {
    return this.#writes.keepsBack({
      verb: call.verb as WriteRecord['verb'],
      resource: qualifiedResource(call),
      namespace: this.namespace,
      name: call.name ?? '',
      ...(contentType === undefined ? {} : { contentType }),
      body,
    });
  }

  /** A create or a full update; client dry-run answers with the object it would have sent. */
  async #write<T>(call: ApiCall, body: T, send: () => Promise<T>): Promise<T> {
    if (this.#kept(call, body)) return structuredClone(body);
    return this.#call(call, send);
  }

  async #patch<T extends { metadata?: { resourceVersion?: string } }>(
    call: ApiCall,
    patch: object,
    current: () => Promise<T | null>,
    send: () => Promise<T>,
  ): Promise<T> {
    if (!this.#kept(call, patch, PatchStrategy.MergePatch)) return this.#call(call, send);
    // Client dry-run answers as the server would: not found, a stale precondition, else the patched object.
    const object = await current();
    if (object === null) throw this.describeFailure({ code: 404, body: '' }, call);
    const expected = (patch as { metadata?: { resourceVersion?: unknown } }).metadata?.resourceVersion;
    const actual = object.metadata?.resourceVersion ?? '';
    if (typeof expected === 'string' && expected !== actual) throw conflictError(`${qualifiedResource(call)} ${call.name}`, expected, actual);
    return jsonMergePatch(object, patch) as T;
  }

  async #read<T>(call: ApiCall, fn: () => Promise<T>): Promise<T | null> {
    try {
      return await this.#call(call, fn);
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async #call<T>(call: ApiCall, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw toPlatformError(error, call, this.#context);
    }
  }

  #sets(verb: Verb, name?: string): ApiCall {
    return { verb, group: 'apps', resource: 'statefulsets', namespace: this.namespace, ...(name === undefined ? {} : { name }) };
  }

  #pods(verb: Verb, name?: string): ApiCall {
    return { verb, group: '', resource: 'pods', namespace: this.namespace, ...(name === undefined ? {} : { name }) };
  }

  #leases(verb: Verb, name: string): ApiCall {
    return { verb, group: 'coordination.k8s.io', resource: 'leases', namespace: this.namespace, name };
  }
}

/** The mapped 404 (the orchestrator's not-found error). */
function isNotFound(error: unknown): boolean {
  return isOrchestratorError(error) && error.code === ErrorCode.NotFound;
}
