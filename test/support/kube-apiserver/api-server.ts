/**
 * The HTTPS front: every request is authenticated (401), described (request-info.ts), recorded (request-log.ts),
 * authorized (403 with the real message), then routed to discovery or to the registry, and answered with JSON (a
 * Status object on failure). WebSocket upgrades (port-forward) take the same path up to authorization and are
 * then handed to the upgrade handler.
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import type { Authenticator, UserInfo } from './authentication.ts';
import { discoveryDocument } from './discovery.ts';
import {
  badRequest,
  forbidden,
  forbiddenPath,
  internalError,
  invalid,
  methodNotAllowed,
  notFoundPath,
  requestEntityTooLarge,
  StatusError,
  unauthorized,
  unsupportedMediaType,
} from './errors.ts';
import { APPLY_PATCH, PATCH_TYPES, type PatchType } from './patch.ts';
import { forbiddenReason, type RbacAuthorizer } from './rbac.ts';
import type { DeleteOptions, ListOptions, PatchOptions, Registry, Subresource } from './registry.ts';
import { requestInfo, type RequestInfo } from './request-info.ts';
import type { RecordedRequest, RequestLog } from './request-log.ts';
import { groupVersion, type KubeObject, type ResourceType } from './resources.ts';
import { parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { invalidField, requiredField } from './validation.ts';
import { startWatch, type WatchEvent } from './watch.ts';

/** The real server refuses bodies over 3 MiB. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
/** A watcher that lets this much pile up unread is cut off, as the real server drops unresponsive watchers. */
const MAX_WATCH_BACKLOG_BYTES = 16 * 1024 * 1024;
const BODY_TYPES = ['application/json', 'application/yaml'];

export interface UpgradeContext {
  request: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  user: UserInfo;
  info: RequestInfo;
  url: URL;
  entry: RecordedRequest;
}

export interface ApiServerOptions {
  registry: Registry;
  authenticator: Authenticator;
  authorizer: RbacAuthorizer;
  log: RequestLog;
  tls: { key: string; cert: string; ca: string };
  watchTimeoutMs: number;
  bookmarkIntervalMs: number;
  /** A pod's container log (the pods/log subresource), or undefined when the kubelet has none. */
  podLog?: (namespace: string, pod: string, container: string | undefined) => string | undefined;
}

type UpgradeHandler = (context: UpgradeContext) => void;

function json(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function mediaType(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  return header.split(';')[0]!.trim().toLowerCase();
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(requestEntityTooLarge('the request is too large'));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

/** The field manager a write without ?fieldManager= gets: the User-Agent up to its first '/'. */
function defaultManager(request: IncomingMessage): string {
  const agent = request.headers['user-agent'];
  if (agent === undefined || agent === '') return 'unknown';
  return agent.split('/')[0]!.slice(0, 128);
}

function boolParam(url: URL, name: string): boolean | undefined {
  const value = url.searchParams.get(name);
  if (value === null) return undefined;
  return value === '' || value === 'true' || value === '1';
}

export class ApiServer {
  readonly server: https.Server;
  private readonly options: ApiServerOptions;
  private upgradeHandler: UpgradeHandler | undefined;
  private readonly watches = new Set<{ stop(): void }>();
  private readonly sockets = new Set<Socket>();
  private address = '127.0.0.1:0';

  constructor(options: ApiServerOptions) {
    this.options = options;
    this.server = https.createServer(
      { key: options.tls.key, cert: options.tls.cert, ca: options.tls.ca, requestCert: true, rejectUnauthorized: false },
      (req, res) => void this.handle(req, res),
    );
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.server.on('tlsClientError', () => undefined);
  }

  onUpgrade(handler: UpgradeHandler): void {
    this.upgradeHandler = handler;
  }

  async listen(host: string, port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const bound = (this.server.address() as AddressInfo).port;
    this.address = `${host}:${bound}`;
    return bound;
  }

  async close(): Promise<void> {
    for (const watch of [...this.watches]) watch.stop();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Authentication, authorization, recording
  // -------------------------------------------------------------------------------------------------------------

  private admit(req: IncomingMessage): { url: URL; user: UserInfo | null; info: RequestInfo; entry: RecordedRequest } {
    const url = new URL(req.url ?? '/', 'https://kubernetes.default.svc');
    const user = this.options.authenticator.authenticate(req);
    const info = requestInfo(req.method ?? 'GET', url);
    const entry = this.options.log.record({
      user: user?.name ?? '',
      groups: user?.groups ?? [],
      method: req.method ?? 'GET',
      path: info.path,
      verb: info.verb,
      apiGroup: info.apiGroup,
      resource: info.resource,
      subresource: info.subresource,
      name: info.name,
      namespace: info.namespace,
      isResourceRequest: info.isResourceRequest,
      dryRun: url.searchParams.getAll('dryRun').includes('All'),
      contentType: mediaType(req.headers['content-type']),
      fieldManager: url.searchParams.get('fieldManager') ?? undefined,
      labelSelector: url.searchParams.get('labelSelector') ?? undefined,
      fieldSelector: url.searchParams.get('fieldSelector') ?? undefined,
      resourceVersion: url.searchParams.get('resourceVersion') ?? undefined,
      authorizedVerbs: [],
    });
    return { url, user, info, entry };
  }

  /** Throws the 403 the real server answers when any of `verbs` is not granted. */
  private authorize(user: UserInfo, info: RequestInfo, verbs: readonly string[], entry: RecordedRequest): void {
    entry.authorizedVerbs = [...verbs];
    for (const verb of verbs) {
      const asked = { ...info, verb };
      const decision = this.options.authorizer.authorize(user, asked);
      if (decision.allowed) continue;
      const why = forbiddenReason(user, asked) + (decision.reason === '' ? '' : `: ${decision.reason}`);
      if (!info.isResourceRequest) throw forbiddenPath(why);
      throw forbidden({ group: info.apiGroup, resource: info.resource }, info.name, why);
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { url, user, info, entry } = this.admit(req);
    res.on('finish', () => {
      entry.code = res.statusCode;
    });
    try {
      if (user === null) throw unauthorized();
      this.authorize(user, info, [info.verb], entry);
      if (!info.isResourceRequest) this.nonResource(req, res, info);
      else await this.resource(req, res, url, info, user);
      // A watch is answered (200) before it ends.
      if (res.headersSent) entry.code = res.statusCode;
    } catch (error) {
      const status = error instanceof StatusError ? error : internalError((error as Error).message);
      entry.reason = status.reason;
      if (res.headersSent) res.destroy();
      else json(res, status.code, status.status);
    }
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { url, user, info, entry } = this.admit(req);
    const refuse = (error: unknown): void => {
      const status = error instanceof StatusError ? error : internalError((error as Error).message);
      entry.code = status.code;
      entry.reason = status.reason;
      const text = JSON.stringify(status.status);
      socket.end(
        `HTTP/1.1 ${status.code} ${status.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
    };
    try {
      if (user === null) throw unauthorized();
      // A WebSocket upgrade is a GET (verb get); since 1.35 the real server also checks create on these subresources.
      const streaming = info.isResourceRequest && info.resource === 'pods' && ['portforward', 'exec', 'attach'].includes(info.subresource);
      this.authorize(user, info, streaming ? ['get', 'create'] : [info.verb], entry);
      if (!streaming || this.upgradeHandler === undefined || info.subresource !== 'portforward') throw badRequest(`upgrade is not supported on ${info.path}`);
      this.upgradeHandler({ request: req, socket, head, user, info, url, entry });
    } catch (error) {
      refuse(error);
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Routing
  // -------------------------------------------------------------------------------------------------------------

  private nonResource(req: IncomingMessage, res: ServerResponse, info: RequestInfo): void {
    if (req.method !== 'GET') throw methodNotAllowed();
    if (['/healthz', '/livez', '/readyz'].includes(info.path)) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return;
    }
    const document = discoveryDocument(this.options.registry.catalogue, info.path, this.address);
    if (document === undefined) throw notFoundPath();
    json(res, 200, document);
  }

  private resourceType(info: RequestInfo): ResourceType {
    const type = this.options.registry.catalogue.find(info.apiGroup, info.resource);
    if (type === undefined || type.version !== info.apiVersion) throw notFoundPath();
    if (!type.namespaced && info.namespace !== '' && info.resource !== 'namespaces') throw notFoundPath();
    if (info.subresource !== '' && !type.subresources.includes(info.subresource as never)) throw notFoundPath();
    return type;
  }

  private listOptions(url: URL, type: ResourceType): ListOptions {
    const out: ListOptions = {};
    const labels = url.searchParams.get('labelSelector');
    if (labels !== null) out.labelSelector = parseLabelSelector(labels);
    const fields = url.searchParams.get('fieldSelector');
    if (fields !== null) out.fieldSelector = parseFieldSelector(fields, ['metadata.name', 'metadata.namespace', ...type.fieldSelectors]);
    return out;
  }

  private writeOptions(req: IncomingMessage, url: URL): { dryRun: boolean; fieldManager: string } {
    const dryRun = url.searchParams.getAll('dryRun');
    for (const value of dryRun) if (value !== 'All') throw badRequest(`Invalid dryRun value: ${JSON.stringify(value)}; the only supported value is "All"`);
    const manager = url.searchParams.get('fieldManager');
    if (manager !== null && manager.length > 128) {
      throw invalid({ group: 'meta.k8s.io', kind: 'PatchOptions' }, '', [invalidField('fieldManager', manager, 'must be no more than 128 characters')]);
    }
    return { dryRun: dryRun.length > 0, fieldManager: manager ?? defaultManager(req) };
  }

  private async objectBody(req: IncomingMessage): Promise<KubeObject> {
    const type = mediaType(req.headers['content-type']) ?? 'application/json';
    if (!BODY_TYPES.includes(type)) throw unsupportedMediaType(BODY_TYPES);
    const text = await readBody(req);
    try {
      return (type === 'application/yaml' ? parseYaml(text) : JSON.parse(text)) as KubeObject;
    } catch (error) {
      throw badRequest(`the object provided is unrecognized: ${(error as Error).message}`);
    }
  }

  private async resource(req: IncomingMessage, res: ServerResponse, url: URL, info: RequestInfo, user: UserInfo): Promise<void> {
    if (info.apiGroup === 'authorization.k8s.io' && info.apiVersion === 'v1' && info.resource === 'selfsubjectaccessreviews') {
      if (info.verb !== 'create') throw methodNotAllowed();
      json(res, 201, this.selfSubjectAccessReview(await this.objectBody(req), user));
      return;
    }
    const { registry } = this.options;
    const type = this.resourceType(info);
    const namespace = type.namespaced ? info.namespace : '';
    const name = info.name;
    if (type.namespaced && namespace === '' && !['list', 'watch'].includes(info.verb)) throw methodNotAllowed();
    const subresource = info.subresource as Subresource | 'portforward' | 'log';

    if (subresource === 'portforward') throw badRequest('Upgrade request required');
    if (subresource === 'log') {
      if (info.verb !== 'get') throw methodNotAllowed();
      registry.get(type, namespace, name);
      const container = url.searchParams.get('container') ?? undefined;
      const text = this.options.podLog?.(namespace, name, container);
      if (text === undefined) throw badRequest(`container ${JSON.stringify(container ?? '')} in pod "${name}" is waiting to start or is not valid`);
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(text);
      return;
    }

    switch (info.verb) {
      case 'get': {
        const object = registry.get(type, namespace, name);
        json(res, 200, subresource === 'scale' ? registry.scaleOf(object) : object);
        return;
      }
      case 'list': {
        if (subresource !== '') throw methodNotAllowed();
        const { items, revision } = registry.list(type, namespace === '' ? undefined : namespace, this.listOptions(url, type));
        json(res, 200, {
          kind: type.listKind,
          apiVersion: groupVersion(type),
          metadata: { resourceVersion: String(revision) },
          // Items of a typed list carry no kind and apiVersion, as the real server sends them.
          items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest),
        });
        return;
      }
      case 'watch':
        this.watch(req, res, url, type, namespace, name);
        return;
      case 'create': {
        if (name !== '') throw methodNotAllowed();
        const body = await this.objectBody(req);
        json(res, 201, registry.create(type, namespace, body, this.writeOptions(req, url)));
        return;
      }
      case 'update': {
        const body = await this.objectBody(req);
        json(res, 200, registry.update(type, namespace, name, body, subresource, this.writeOptions(req, url)));
        return;
      }
      case 'patch': {
        const contentType = mediaType(req.headers['content-type']);
        if (contentType === undefined || !(PATCH_TYPES as readonly string[]).includes(contentType)) throw unsupportedMediaType(PATCH_TYPES);
        const raw = await readBody(req);
        const write = this.writeOptions(req, url);
        // Apply takes no default manager: the real server refuses an apply without ?fieldManager=.
        const options: PatchOptions = { dryRun: write.dryRun, fieldManager: contentType === APPLY_PATCH ? url.searchParams.get('fieldManager') ?? undefined : write.fieldManager };
        const force = boolParam(url, 'force');
        if (force !== undefined) options.force = force;
        const result = registry.patch(type, namespace, name, contentType as PatchType, raw, subresource, options);
        json(res, result.created ? 201 : 200, result.object);
        return;
      }
      case 'delete': {
        if (subresource !== '') throw methodNotAllowed();
        const options = await this.deleteOptions(req, url);
        const result = registry.delete(type, namespace, name, options, this.writeOptions(req, url));
        json(res, !result.removed && options.orphanDependents === false ? 202 : 200, result.body);
        return;
      }
      case 'deletecollection': {
        if (subresource !== '') throw methodNotAllowed();
        const options = await this.deleteOptions(req, url);
        const items = registry.deleteCollection(type, namespace, this.listOptions(url, type), options, this.writeOptions(req, url));
        json(res, 200, { kind: type.listKind, apiVersion: groupVersion(type), metadata: { resourceVersion: String(registry.store.currentRevision()) }, items });
        return;
      }
      default:
        throw methodNotAllowed();
    }
  }

  private async deleteOptions(req: IncomingMessage, url: URL): Promise<DeleteOptions> {
    const out: DeleteOptions = {};
    const grace = url.searchParams.get('gracePeriodSeconds');
    if (grace !== null) out.gracePeriodSeconds = Number(grace);
    const policy = url.searchParams.get('propagationPolicy');
    if (policy !== null) out.propagationPolicy = policy as DeleteOptions['propagationPolicy'];
    const orphan = boolParam(url, 'orphanDependents');
    if (orphan !== undefined) out.orphanDependents = orphan;
    const text = await readBody(req);
    if (text.trim() !== '') {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch (error) {
        throw badRequest(`the DeleteOptions provided are unrecognized: ${(error as Error).message}`);
      }
      if (typeof body.gracePeriodSeconds === 'number') out.gracePeriodSeconds = body.gracePeriodSeconds;
      if (typeof body.propagationPolicy === 'string') out.propagationPolicy = body.propagationPolicy as DeleteOptions['propagationPolicy'];
      if (typeof body.orphanDependents === 'boolean') out.orphanDependents = body.orphanDependents;
      if (body.preconditions !== null && typeof body.preconditions === 'object') out.preconditions = body.preconditions as DeleteOptions['preconditions'];
      if (Array.isArray(body.dryRun) && body.dryRun.includes('All')) url.searchParams.append('dryRun', 'All');
    }
    if (out.propagationPolicy !== undefined && !['Background', 'Foreground', 'Orphan'].includes(out.propagationPolicy)) {
      throw invalid({ group: 'meta.k8s.io', kind: 'DeleteOptions' }, '', [
        { type: 'FieldValueNotSupported', field: 'propagationPolicy', value: out.propagationPolicy, detail: 'supported values: "Foreground", "Background", "Orphan", nil' },
      ]);
    }
    if (out.gracePeriodSeconds !== undefined && (!Number.isInteger(out.gracePeriodSeconds) || out.gracePeriodSeconds < 0)) {
      throw invalid({ group: 'meta.k8s.io', kind: 'DeleteOptions' }, '', [invalidField('gracePeriodSeconds', out.gracePeriodSeconds, 'must be greater than or equal to 0')]);
    }
    return out;
  }

  private watch(req: IncomingMessage, res: ServerResponse, url: URL, type: ResourceType, namespace: string, name: string): void {
    const selectors = this.listOptions(url, type);
    if (name !== '') selectors.fieldSelector = [...(selectors.fieldSelector ?? []), { field: 'metadata.name', operator: '=', value: name }];
    const timeoutParam = url.searchParams.get('timeoutSeconds');
    const timeoutMs = timeoutParam === null ? this.options.watchTimeoutMs : Math.max(0, Number(timeoutParam)) * 1000;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    // The watch may end before startWatch returns (an ERROR event), so the handle is reached through a holder.
    const holder: { handle?: { stop(): void } } = {};
    const handle = startWatch(
      this.options.registry,
      {
        type,
        namespace: namespace === '' ? undefined : namespace,
        selectors,
        resourceVersion: url.searchParams.get('resourceVersion') ?? undefined,
        allowBookmarks: boolParam(url, 'allowWatchBookmarks') === true,
        timeoutMs,
        bookmarkIntervalMs: this.options.bookmarkIntervalMs,
      },
      {
        send: (event: WatchEvent) => {
          if (res.writableEnded) return;
          res.write(`${JSON.stringify(event)}\n`);
          if (res.writableLength > MAX_WATCH_BACKLOG_BYTES) setImmediate(() => holder.handle?.stop());
        },
        end: () => {
          if (holder.handle !== undefined) this.watches.delete(holder.handle);
          holder.handle = undefined;
          if (!res.writableEnded) res.end();
        },
      },
    );
    if (res.writableEnded) return;
    holder.handle = handle;
    this.watches.add(handle);
    req.on('close', () => handle.stop());
  }

  private selfSubjectAccessReview(body: KubeObject, user: UserInfo): Record<string, unknown> {
    const spec = (body.spec ?? {}) as { resourceAttributes?: Record<string, string>; nonResourceAttributes?: { path?: string; verb?: string } };
    let info: RequestInfo;
    if (spec.resourceAttributes !== undefined) {
      const a = spec.resourceAttributes;
      info = {
        isResourceRequest: true,
        path: '',
        verb: a.verb ?? '',
        apiGroup: a.group ?? '',
        apiVersion: a.version ?? '',
        namespace: a.namespace ?? '',
        resource: a.resource ?? '',
        subresource: a.subresource ?? '',
        name: a.name ?? '',
      };
    } else if (spec.nonResourceAttributes !== undefined) {
      const a = spec.nonResourceAttributes;
      info = { isResourceRequest: false, path: a.path ?? '', verb: a.verb ?? '', apiGroup: '', apiVersion: '', namespace: '', resource: '', subresource: '', name: '' };
    } else {
      throw invalid({ group: 'authorization.k8s.io', kind: 'SelfSubjectAccessReview' }, '', [requiredField('spec.resourceAttributes', 'exactly one of nonResourceAttributes or resourceAttributes must be specified')]);
    }
    const decision = this.options.authorizer.authorize(user, info);
    const status: Record<string, unknown> = { allowed: decision.allowed };
    if (decision.reason !== '') status.reason = decision.reason;
    return { kind: 'SelfSubjectAccessReview', apiVersion: 'authorization.k8s.io/v1', metadata: { creationTimestamp: null }, spec, status };
  }
}
