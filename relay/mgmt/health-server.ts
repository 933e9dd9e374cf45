import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { closeServer, listenOn } from './listen.ts';
import { sendError, HttpError } from './server.ts';
import { probeRoutes, type ProbeRoute, type ProbeSource } from './probes.ts';

/**
 * The plain-HTTP health port: /livez, /readyz and /metrics and nothing else, for kubelet probes and
 * Prometheus scrapers, which present no client certificate. Everything under /v1/ stays on the mutual-TLS
 * management port. Bounded, since anyone who reaches the pod can reach it: a few connections, a short header
 * deadline, small headers, GET and HEAD only, and no request body.
 */
export const HEALTH_LIMITS = {
  maxConnections: 32,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 8 * 1024,
  maxRequestsPerSocket: 100,
} as const;

export class HealthServer {
  private readonly server: http.Server;
  private readonly routes: ReadonlyMap<string, ProbeRoute>;

  constructor(source: ProbeSource, onError: (error: Error) => void) {
    this.routes = new Map(probeRoutes(source).map((route) => [route.path, route]));
    this.server = http.createServer({
      maxHeaderSize: HEALTH_LIMITS.maxHeaderBytes,
      headersTimeout: HEALTH_LIMITS.headersTimeoutMs,
      requestTimeout: HEALTH_LIMITS.requestTimeoutMs,
      keepAliveTimeout: HEALTH_LIMITS.keepAliveTimeoutMs,
    }, (request, response) => void this.dispatch(request, response));
    this.server.maxConnections = HEALTH_LIMITS.maxConnections;
    this.server.maxRequestsPerSocket = HEALTH_LIMITS.maxRequestsPerSocket;
    this.server.on('clientError', (_error: Error, socket: Socket) => {
      // Malformed or oversized requests, header timeouts: answer 400 if the socket still can, then close.
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
    this.server.on('error', onError);
  }

  listen(port: number, host: string): Promise<{ address: string; port: number }> {
    return listenOn(this.server, port, host, 'health server');
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async dispatch(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (hasBody(request)) {
      // Never read: answer and close, so the unread body cannot be taken for a next request.
      response.setHeader('connection', 'close');
      sendError(response, new HttpError(413, 'ERR_BODY_NOT_ACCEPTED', 'the health port accepts no request body'));
      request.socket.destroySoon();
      return;
    }
    const path = (request.url ?? '/').split('?')[0]!;
    const route = this.routes.get(path);
    if (route === undefined) {
      sendError(response, new HttpError(404, 'ERR_NOT_FOUND', `the health port serves only ${[...this.routes.keys()].join(', ')}; ${path} is on the management port (mutual TLS) if anywhere`));
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD');
      sendError(response, new HttpError(405, 'ERR_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}`));
      return;
    }
    try {
      await route.handle(response);
    } catch (error) {
      if (!response.headersSent) sendError(response, new HttpError(500, 'ERR_INTERNAL', (error as Error).message));
      else response.destroy(error as Error);
    }
  }
}

function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
