import https from 'node:https';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import type { KubeApiServer } from '../support/kube-apiserver/index.ts';

export function kubeConfigFor(api: KubeApiServer, user: string, namespace = 'default'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfigFor(user, namespace));
  return kc;
}

/** The Status body of a failed client-node call. */
export async function statusOf(call: Promise<unknown>): Promise<{ code: number; reason: string; message: string; details?: Record<string, unknown> }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof ApiException) {
      const body = typeof error.body === 'string' ? JSON.parse(error.body) : error.body;
      expectStatus(body, error.code);
      return body;
    }
    throw error;
  }
  throw new Error('the call succeeded; a failure was expected');
}

function expectStatus(body: Record<string, unknown>, code: number): void {
  if (body.kind !== 'Status' || body.apiVersion !== 'v1' || body.status !== 'Failure' || body.code !== code) {
    throw new Error(`not a Failure Status with code ${code}: ${JSON.stringify(body)}`);
  }
}

/** A raw HTTPS request to the stand-in (for what client-node cannot send), as `user` with their token. */
export function raw(
  api: KubeApiServer,
  method: string,
  path: string,
  options: { user?: string | null; body?: string; contentType?: string } = {},
): Promise<{ code: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const url = new URL(path, api.url);
  const user = options.user === undefined ? 'admin' : options.user;
  const headers: Record<string, string> = {};
  if (user !== null) headers.authorization = `Bearer ${api.tokenOf(user)}`;
  if (options.contentType !== undefined) headers['content-type'] = options.contentType;
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca: api.ca, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}
