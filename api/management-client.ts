import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext } from 'node:tls';
import { Agent, buildConnector, request, type Dispatcher } from 'undici';
import type {
  ClaimRequest, ClaimSettleRequest, ClaimSettleResponse, ErrorResponse, HandoverAbortRequest, PrecopyRequest, HandoverCommitRequest, HandoverCommitResponse, HandoverRequest,
  ReadyzResponse, RestoreRequest, RestoreResponse, SessionsResponse, StatusResponse,
} from './management.ts';
import { MANAGEMENT_PATHS } from './management.ts';

/** Client of the relay management API, used by relays (handover) and the orchestrator. Mutual TLS. */
export interface ManagementTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** Name to verify the relay certificate against when URLs carry IP addresses. */
  servername?: string;
}

export type ManagementErrorCode = 'ERR_MGMT_UNREACHABLE' | 'ERR_MGMT_TIMEOUT' | 'ERR_MGMT_HTTP' | 'ERR_MGMT_PROTOCOL';

export class ManagementError extends Error {
  readonly code: ManagementErrorCode;
  /** HTTP status, when the relay answered. */
  readonly status: number | null;
  /** The relay's own error code, when it sent one. */
  readonly remoteCode: string | null;

  constructor(code: ManagementErrorCode, message: string, details: { status?: number; remoteCode?: string; cause?: unknown } = {}) {
    super(message, { cause: details.cause });
    this.name = 'ManagementError';
    this.code = code;
    this.status = details.status ?? null;
    this.remoteCode = details.remoteCode ?? null;
  }
}

/**
 * Opens a byte stream to `host:port` some other way than TCP (a Kubernetes port-forward): the client runs its mutual
 * TLS inside it. `host` is whatever the URL named (a pod name, say); the tunnel decides what it means.
 */
export type Tunnel = (origin: { host: string; port: number }) => Promise<Duplex>;

export interface ManagementClientOptions {
  /** Connect, headers and body timeouts of every call (restore passes its own). Default 10 s. */
  timeoutMs?: number;
  connectionsPerOrigin?: number;
  /** Reach relays through this instead of TCP; TLS and everything above it stay the same. */
  tunnel?: Tunnel;
}

export interface StreamResponse {
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Buffer> & { destroy(error?: Error): void };
}

export class ManagementClient {
  private readonly agent: Agent;
  private readonly timeoutMs: number;

  constructor(tls: ManagementTls, options: ManagementClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    // One secure context for every connection: parsing the CA, certificate and key again for each new
    // connection showed as 8-14% of a relay's CPU during a burst of session claims.
    const secureContext = createSecureContext({ ca: tls.ca, cert: tls.cert, key: tls.key });
    const connect = { secureContext, servername: tls.servername, timeout: this.timeoutMs };
    this.agent = new Agent({
      connect: options.tunnel === undefined ? connect : tunnelConnector(options.tunnel, connect),
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      // A few warm connections per relay are plenty; a burst must queue, not open hundreds of TLS sessions.
      connections: options.connectionsPerOrigin ?? 8,
    });
  }

  status(base: string): Promise<StatusResponse> {
    return this.json<StatusResponse>(base, 'GET', MANAGEMENT_PATHS.status);
  }

  sessions(base: string, page: { limit?: number; offset?: number } = {}): Promise<SessionsResponse> {
    return this.json<SessionsResponse>(base, 'GET', `${MANAGEMENT_PATHS.sessions}?limit=${page.limit ?? 100}&offset=${page.offset ?? 0}`);
  }

  /** Readiness with its reason; a 503 is an answer here, not an error. */
  async readyz(base: string): Promise<ReadyzResponse> {
    const response = await this.send(base, 'GET', MANAGEMENT_PATHS.readyz);
    if (response.statusCode !== 200 && response.statusCode !== 503) throw await httpError(base, MANAGEMENT_PATHS.readyz, response);
    return await response.body.json() as ReadyzResponse;
  }

  async metrics(base: string): Promise<string> {
    const response = await this.send(base, 'GET', MANAGEMENT_PATHS.metrics);
    if (response.statusCode !== 200) throw await httpError(base, MANAGEMENT_PATHS.metrics, response);
    return response.body.text();
  }

  /** Restores can take long (100k sessions); the caller passes its own deadline. */
  restore(base: string, body: RestoreRequest, timeoutMs = 120_000): Promise<RestoreResponse> {
    return this.json<RestoreResponse>(base, 'POST', MANAGEMENT_PATHS.restore, body, timeoutMs);
  }

  handover(base: string, body: HandoverRequest): Promise<StreamResponse> {
    return this.stream(base, MANAGEMENT_PATHS.handover, body);
  }

  precopy(base: string, body: PrecopyRequest): Promise<StreamResponse> {
    return this.stream(base, MANAGEMENT_PATHS.precopy, body);
  }

  /** A state stream of the claimed sessions that relay held and gave (possibly none). */
  async claim(base: string, body: ClaimRequest, timeoutMs = 5_000): Promise<StreamResponse> {
    const response = await this.send(base, 'POST', MANAGEMENT_PATHS.claim, body, timeoutMs);
    if (response.statusCode !== 200) throw await httpError(base, MANAGEMENT_PATHS.claim, response);
    return { headers: response.headers, body: response.body as unknown as StreamResponse['body'] };
  }

  /** Says which of the sessions a sibling offered for a claim were taken; it keeps the others. */
  settleClaim(base: string, body: ClaimSettleRequest, timeoutMs = 2_000): Promise<ClaimSettleResponse> {
    return this.json<ClaimSettleResponse>(base, 'POST', MANAGEMENT_PATHS.claimSettle, body, timeoutMs);
  }

  private async stream(base: string, path: string, body: unknown): Promise<StreamResponse> {
    const response = await this.send(base, 'POST', path, body);
    if (response.statusCode !== 200) throw await httpError(base, path, response);
    return { headers: response.headers, body: response.body as unknown as StreamResponse['body'] };
  }

  commit(base: string, body: HandoverCommitRequest): Promise<HandoverCommitResponse> {
    return this.json<HandoverCommitResponse>(base, 'POST', MANAGEMENT_PATHS.handoverCommit, body);
  }

  abort(base: string, body: HandoverAbortRequest): Promise<unknown> {
    return this.json<unknown>(base, 'POST', MANAGEMENT_PATHS.handoverAbort, body);
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  private async json<T>(base: string, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const response = await this.send(base, method, path, body, timeoutMs);
    if (response.statusCode < 200 || response.statusCode > 299) throw await httpError(base, path, response);
    try {
      return await response.body.json() as T;
    } catch (error) {
      throw new ManagementError('ERR_MGMT_PROTOCOL', `${method} ${base}${path}: response is not JSON`, { status: response.statusCode, cause: error });
    }
  }

  private async send(base: string, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<Dispatcher.ResponseData> {
    let url: URL;
    try {
      url = new URL(path, base);
    } catch {
      throw new ManagementError('ERR_MGMT_PROTOCOL', `"${base}" is not a management URL (expected https://host:port)`);
    }
    if (url.protocol !== 'https:') throw new ManagementError('ERR_MGMT_PROTOCOL', `"${base}" must be https: the management API only speaks mutual TLS`);
    try {
      return await request(url, {
        method,
        dispatcher: this.agent,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (error) {
      const err = error as Error & { code?: string };
      const timeout = err.code === 'UND_ERR_HEADERS_TIMEOUT' || err.code === 'UND_ERR_CONNECT_TIMEOUT' || err.code === 'UND_ERR_BODY_TIMEOUT';
      throw new ManagementError(timeout ? 'ERR_MGMT_TIMEOUT' : 'ERR_MGMT_UNREACHABLE', `${method} ${url.href}: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '), { cause: error });
    }
  }
}

/** undici's own TLS connector, run over a tunnel instead of a TCP socket; opening the tunnel counts against the timeout. */
function tunnelConnector(tunnel: Tunnel, tls: { secureContext: SecureContext; servername: string | undefined; timeout: number }): buildConnector.connector {
  const overTunnel = buildConnector({ ...tls, allowH2: false });
  return (options, callback) => {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`tunnel to ${options.hostname}:${options.port} not open within ${tls.timeout} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' })), tls.timeout);
    });
    const opening = tunnel({ host: options.hostname, port: Number(options.port) });
    Promise.race([opening, timedOut]).then(
      (stream) => {
        clearTimeout(timer);
        // The URL's host names the tunnel's far end (a pod), not the certificate: undici would take it as servername.
        overTunnel({ ...options, servername: tls.servername ?? options.servername, httpSocket: stream as unknown as Socket }, callback);
      },
      (error: unknown) => {
        clearTimeout(timer);
        // A tunnel that opens after all is not leaked.
        void opening.then((stream) => stream.destroy(), () => undefined);
        callback(error as Error, null);
      },
    );
  };
}

async function httpError(base: string, path: string, response: Dispatcher.ResponseData): Promise<ManagementError> {
  let remote: ErrorResponse | null = null;
  try {
    remote = await response.body.json() as ErrorResponse;
  } catch {
    await response.body.dump().catch(() => undefined);
  }
  const detail = remote?.error !== undefined ? `${remote.error.code}: ${remote.error.message}` : 'no error body';
  return new ManagementError('ERR_MGMT_HTTP', `${base}${path} answered ${response.statusCode} (${detail})`, { status: response.statusCode, remoteCode: remote?.error?.code });
}
