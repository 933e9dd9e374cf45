/** Loopback HTTPS server and client helpers for the PKI tests. Everything is bounded by timeouts. */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { roleFromSubjectAltName, type ManagementRole } from '../../api/management-roles.ts';

export interface PeerInfo {
  /** CN of the client certificate the server saw. */
  cn: string | undefined;
  /** Node's verdict on the client certificate (always true when the handler runs with rejectUnauthorized). */
  authorized: boolean;
  /** The role the server reads from the client certificate, as the relay's management server does. */
  role: ManagementRole | null;
}

export interface TestServer {
  host: string;
  port: number;
  /** How many requests reached the handler: a refused client must not move it. */
  handled: () => number;
  close: () => Promise<void>;
}

export async function startServer(host: string, tls: https.ServerOptions): Promise<TestServer> {
  let handled = 0;
  const server = https.createServer(tls, (req, res) => {
    handled++;
    const socket = req.socket as TLSSocket;
    const certificate = socket.getPeerCertificate();
    const cn = certificate.subject?.CN;
    const peer: PeerInfo = { cn: Array.isArray(cn) ? cn[0] : cn, authorized: socket.authorized, role: roleFromSubjectAltName(certificate.subjectaltname) };
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(peer));
  });
  // Refused handshakes surface here; they are the expected outcome of several tests, not failures.
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    host,
    port,
    handled: () => handled,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** GET / over node:https with its own connection (agent: false) so nothing is reused between cases. */
export function httpsGet(options: https.RequestOptions): Promise<{ status: number; peer: PeerInfo }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ method: 'GET', path: '/', agent: false, timeout: 5_000, ...options }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, peer: JSON.parse(Buffer.concat(chunks).toString('utf8')) as PeerInfo });
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.end();
  });
}

/** The error code of a rejected promise (the error's own code, else its cause's). */
export async function rejectionCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    const e = err as { code?: unknown; cause?: { code?: unknown } };
    return String(e.code ?? e.cause?.code ?? (err as Error).message);
  }
  throw new Error('expected the request to be refused, but it succeeded');
}
