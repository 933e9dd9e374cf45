import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { ErrorResponse } from '../../api/management.ts';
import { closeServer, listenOn } from './listen.ts';

/**
 * The management HTTPS server. Mutual TLS: a client must present a certificate signed by the
 * configured CA, or the TLS handshake fails before any route runs.
 */
export interface Route {
  method: 'GET' | 'POST';
  path: string;
  handle(request: IncomingMessage, response: ServerResponse): Promise<void> | void;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class ManagementServer {
  private readonly server: https.Server;
  private readonly routes = new Map<string, Route>();

  constructor(tls: TlsMaterial, onError: (error: Error) => void) {
    this.server = https.createServer({
      cert: tls.cert,
      key: tls.key,
      ca: tls.ca,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    }, (request, response) => void this.dispatch(request, response));
    this.server.on('tlsClientError', () => {
      // A refused client (no or wrong certificate) is normal noise; the TLS alert already told it.
    });
    this.server.on('error', onError);
    this.server.keepAliveTimeout = 30_000;
  }

  add(route: Route): this {
    this.routes.set(`${route.method} ${route.path}`, route);
    return this;
  }

  listen(port: number, host: string): Promise<{ address: string; port: number }> {
    return listenOn(this.server, port, host, 'management server');
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async dispatch(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // rejectUnauthorized already refused unverified peers; this guards against a future option change.
    if (!(request.socket as TLSSocket).authorized) {
      sendError(response, new HttpError(401, 'ERR_UNAUTHENTICATED', 'a client certificate signed by the relay CA is required'));
      return;
    }
    const path = (request.url ?? '/').split('?')[0]!;
    const route = this.routes.get(`${request.method} ${path}`);
    if (route === undefined) {
      const known = [...this.routes.values()].some((r) => r.path === path);
      request.resume();
      sendError(response, known
        ? new HttpError(405, 'ERR_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}`)
        : new HttpError(404, 'ERR_NOT_FOUND', `no route ${path}`));
      return;
    }
    try {
      await route.handle(request, response);
    } catch (error) {
      if (!response.headersSent) sendError(response, error instanceof HttpError ? error : new HttpError(500, 'ERR_INTERNAL', (error as Error).message));
      else response.destroy(error as Error);
    }
  }
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

export function sendError(response: ServerResponse, error: HttpError): void {
  const body: ErrorResponse = { error: { code: error.code, message: error.message } };
  sendJson(response, error.status, body);
}

/** Reads a JSON body of at most `limit` bytes. */
export async function readJson(request: IncomingMessage, limit = 64 * 1024): Promise<unknown> {
  const type = request.headers['content-type'] ?? '';
  if (!type.startsWith('application/json')) throw new HttpError(415, 'ERR_CONTENT_TYPE', `expected content-type application/json, got ${type || 'none'}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, 'ERR_BODY_TOO_LARGE', `request body over ${limit} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw new HttpError(400, 'ERR_BAD_JSON', `request body is not JSON: ${(error as Error).message}`);
  }
}
