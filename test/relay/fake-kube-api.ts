/**
 * A tiny Kubernetes API double over HTTPS for relayd's start-up restore reader: GET one pod by name, with a
 * bearer token, answering Status objects for errors the way kube-apiserver does. Only what relayd reads.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate } from '../../pki/certificates.ts';

export interface FakePod {
  name: string;
  labels?: Record<string, string>;
  podIp?: string;
  mgmtPort?: number;
  terminating?: boolean;
}

export interface FakeKubeApi {
  url: string;
  /** A service-account folder (token, ca.crt, namespace) for relayd's --service-account-dir. */
  serviceAccountDir: string;
  namespace: string;
  token: string;
  pods: Map<string, FakePod>;
  /** Every request's method and path, in order. */
  requests: string[];
  /** Answer every request with this status (a Status object) instead, when set. */
  failWith: number | null;
  close(): Promise<void>;
}

export function podObject(namespace: string, pod: FakePod): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: pod.name,
      namespace,
      labels: pod.labels ?? {},
      ...(pod.terminating === true ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: { containers: [{ name: 'relayd', image: 'relayd', ports: pod.mgmtPort === undefined ? [] : [{ name: 'mgmt', containerPort: pod.mgmtPort, protocol: 'TCP' }] }] },
    status: pod.podIp === undefined ? { phase: 'Pending' } : { phase: 'Running', podIP: pod.podIp },
  };
}

function status(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

export async function startFakeKubeApi(namespace = 'relays'): Promise<FakeKubeApi> {
  const ca = await createCa({ commonName: 'fake kube-apiserver CA', validityDays: 1 });
  const cert = await issueCertificate(ca, { commonName: 'kube-apiserver', ipAddresses: ['127.0.0.1'], usage: 'server', validityDays: 1 });
  const serviceAccountDir = await mkdtemp(join(tmpdir(), 'relayctl-sa-'));
  const token = 'relay-service-account-token';
  await Promise.all([
    writeFile(join(serviceAccountDir, 'token'), token),
    writeFile(join(serviceAccountDir, 'ca.crt'), ca.certPem),
    writeFile(join(serviceAccountDir, 'namespace'), namespace),
  ]);
  const api: Omit<FakeKubeApi, 'url' | 'close'> = { serviceAccountDir, namespace, token, pods: new Map(), requests: [], failWith: null };
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    api.requests.push(`${req.method} ${req.url}`);
    req.resume();
    const send = (code: number, body: string): void => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(body);
    };
    if (req.headers.authorization !== `Bearer ${api.token}`) return send(401, status(401, 'Unauthorized', 'Unauthorized'));
    if (api.failWith !== null) return send(api.failWith, status(api.failWith, api.failWith === 403 ? 'Forbidden' : 'InternalError', `pods is forbidden: test says ${api.failWith}`));
    const match = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/?]+)$/.exec(req.url ?? '');
    if (req.method !== 'GET' || match === null) return send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const pod = match[1] === api.namespace ? api.pods.get(match[2]!) : undefined;
    if (pod === undefined) return send(404, status(404, 'NotFound', `pods "${match[2]}" not found`));
    send(200, JSON.stringify(podObject(api.namespace, pod)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return Object.assign(api, {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(serviceAccountDir, { recursive: true, force: true });
    },
  });
}
