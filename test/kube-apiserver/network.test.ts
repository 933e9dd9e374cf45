import dgram from 'node:dgram';
import { Duplex, PassThrough } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, CoreV1Api, PortForward, type V1EnvVar, type V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCa, issueCertificate } from '../../pki/certificates.ts';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../support/kube-apiserver/index.ts';
import { kubeConfigFor } from './helpers.ts';

const NS = 'relays';
const APP = fileURLToPath(new URL('./fixtures/pod-app.ts', import.meta.url));
const OPERATOR = `system:serviceaccount:${NS}:relayctl`;

function env(values: Record<string, string>): V1EnvVar[] {
  return [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }, ...Object.entries(values).map(([name, value]) => ({ name, value }))];
}

function ready(pod: KubeObject | undefined): boolean {
  return (pod?.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

let api: KubeApiServer;
let core: CoreV1Api;
let apps: AppsV1Api;

beforeAll(async () => {
  api = await startKubeApiServer({
    namespaces: [NS],
    users: [{ name: OPERATOR }],
    kubelet: { images: { 'pod-app:1': { entrypoint: [process.execPath, APP] } }, timeScale: 0.01 },
  });
  const kc = kubeConfigFor(api, 'admin', NS);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
});

afterAll(async () => {
  expect(api.controllerErrors()).toEqual([]);
  await api.close();
});

describe('the kube-proxy stand-in', () => {
  test('routes a UDP flow to a ready endpoint, keeps it there, and moves it when that endpoint stops being ready', async () => {
    await apps.createNamespacedStatefulSet({
      namespace: NS,
      body: {
        metadata: { name: 'echo' },
        spec: {
          replicas: 2,
          podManagementPolicy: 'Parallel',
          serviceName: 'echo',
          selector: { matchLabels: { app: 'echo' } },
          template: {
            metadata: { labels: { app: 'echo' } },
            spec: {
              containers: [
                {
                  name: 'app',
                  image: 'pod-app:1',
                  env: env({ HTTP_PORT: '8080', UDP_PORT: '5684' }),
                  ports: [{ name: 'dtls', containerPort: 5684, protocol: 'UDP' }],
                  readinessProbe: { httpGet: { path: '/readyz', port: 8080 }, periodSeconds: 1, failureThreshold: 1 },
                },
              ],
            },
          },
        },
      },
    });
    const service: V1Service = {
      metadata: { name: 'echo' },
      spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', selector: { app: 'echo' }, ports: [{ name: 'dtls', port: 5684, targetPort: 'dtls', protocol: 'UDP' }] },
    };
    await core.createNamespacedService({ namespace: NS, body: service });
    for (const pod of ['echo-0', 'echo-1']) await api.store.waitFor('pods', NS, pod, ready);
    await api.settled();
    const svc = api.store.get('services', NS, 'echo')!;
    const clusterIP = (svc.spec as { clusterIP: string }).clusterIP;
    expect(svc.status).toEqual({ loadBalancer: { ingress: [{ ip: clusterIP, ipMode: 'VIP' }] } });
    const front = api.serviceFront(NS, 'echo', 5684)!;
    expect(front.backends().map((b) => b.id).sort()).toEqual(['echo-0', 'echo-1']);

    const device = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => device.bind(0, '127.0.0.1', resolve));
    const replies: string[] = [];
    let waiter: (() => void) | undefined;
    device.on('message', (message) => {
      replies.push(message.toString());
      waiter?.();
    });
    const ask = (text: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer to ${text}`)), 5_000);
        waiter = () => {
          clearTimeout(timer);
          resolve(replies.at(-1)!);
        };
        device.send(text, 5684, clusterIP);
      });
    try {
      const first = await ask('one');
      const owner = first.split(':')[0]!;
      expect(first).toBe(`${owner}:one`);
      expect(await ask('two')).toBe(`${owner}:two`);

      const ownerIp = (api.store.get('pods', NS, owner)!.status as { podIP: string }).podIP;
      await fetch(`http://${ownerIp}:8080/fail`).then((r) => r.text());
      await api.store.waitFor('pods', NS, owner, (p) => !ready(p));
      await api.settled();
      const other = owner === 'echo-0' ? 'echo-1' : 'echo-0';
      expect(front.backends().map((b) => b.id)).toEqual([other]);
      expect(await ask('three')).toBe(`${other}:three`);
      expect(front.stats()).toMatchObject({ flows: 1, reassigned: 2, misrouted: 0, noBackend: 0 });
    } finally {
      device.close();
    }
  });
});

describe('port-forward', () => {
  let ca: { certPem: string; keyPem: string };

  beforeAll(async () => {
    const authority = await createCa({ commonName: 'relay-test-ca', validityDays: 1 });
    ca = authority;
    const server = await issueCertificate(authority, { commonName: 'relay', dnsNames: ['relay-peers.relays.svc'], usage: 'server', validityDays: 1 });
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'relay-tls' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': server.certPem, 'tls.key': server.keyPem } } });
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'relay-a-0' },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'pod-app:1',
              env: env({ HTTP_PORT: '8080', TLS_PORT: '8443', TLS_CERT: '/etc/relay/tls/tls.crt', TLS_KEY: '/etc/relay/tls/tls.key' }),
              readinessProbe: { httpGet: { path: '/readyz', port: 8080 }, periodSeconds: 1 },
              volumeMounts: [{ name: 'tls', mountPath: '/etc/relay/tls', readOnly: true }],
            },
          ],
          volumes: [{ name: 'tls', secret: { secretName: 'relay-tls' } }],
        },
      },
    });
    await api.store.waitFor('pods', NS, 'relay-a-0', ready);
    api.apply([
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'relayctl', namespace: NS } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'forward', namespace: NS },
        rules: [{ apiGroups: [''], resources: ['pods/portforward'], verbs: ['create'] }],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'forward', namespace: NS },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'forward' },
        subjects: [{ kind: 'ServiceAccount', name: 'relayctl', namespace: NS }],
      },
    ]);
  });

  /** A TLS session through client-node's PortForward: one WebSocket, one TCP connection to the pod. */
  async function echoThroughForward(user: string, text: string): Promise<string> {
    const forward = new PortForward(kubeConfigFor(api, user, NS));
    const toPod = new PassThrough();
    const fromPod = new PassThrough();
    const errors = new PassThrough();
    const ws = await forward.portForward(NS, 'relay-a-0', [8443], fromPod, errors, toPod);
    const tunnel = Duplex.from({ readable: fromPod, writable: toPod });
    try {
      return await new Promise<string>((resolve, reject) => {
        const session = tls.connect({ socket: tunnel, ca: ca.certPem, servername: 'relay-peers.relays.svc' }, () => session.write(text));
        session.once('data', (chunk: Buffer) => {
          resolve(chunk.toString());
          session.end();
        });
        session.on('error', reject);
      });
    } finally {
      (ws as { close(): void }).close();
    }
  }

  test('carries a TLS session to the pod (the server certificate verified through the tunnel)', async () => {
    expect(await echoThroughForward('admin', 'hello relay')).toBe('hello relay');
    const entry = api.requests.all().filter((r) => r.subresource === 'portforward').at(-1)!;
    expect(entry).toMatchObject({ verb: 'get', resource: 'pods', name: 'relay-a-0', authorizedVerbs: ['get', 'create'], code: 101 });
  });

  test('needs both get and create on pods/portforward', async () => {
    await expect(echoThroughForward(OPERATOR, 'x')).rejects.toThrow(/403/);
    const denied = api.requests.all().filter((r) => r.user === OPERATOR).at(-1)!;
    expect(denied).toMatchObject({ code: 403, reason: 'Forbidden', authorizedVerbs: ['get', 'create'] });
    api.apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'forward', namespace: NS },
      rules: [{ apiGroups: [''], resources: ['pods/portforward'], verbs: ['get', 'create'] }],
    });
    expect(await echoThroughForward(OPERATOR, 'allowed')).toBe('allowed');
    expect(api.requests.requiredRules(OPERATOR)).toEqual([
      { apiGroup: '', resource: 'pods/portforward', verb: 'create' },
      { apiGroup: '', resource: 'pods/portforward', verb: 'get' },
    ]);
  });

  test('a port nothing listens on reports the kubelet error on the error channel', async () => {
    const forward = new PortForward(kubeConfigFor(api, 'admin', NS));
    const errors = new PassThrough();
    const text = new Promise<string>((resolve) => errors.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    const ws = await forward.portForward(NS, 'relay-a-0', [9999], new PassThrough(), errors, new PassThrough());
    expect(await text).toMatch(/^an error occurred forwarding 9999 -> 9999: error forwarding port 9999 to pod: dial tcp4 127\.\d+\.\d+\.\d+:9999: connect: connection refused$/);
    (ws as { close(): void }).close();
  });
});
