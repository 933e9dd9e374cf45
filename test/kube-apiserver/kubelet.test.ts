import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, type V1EnvVar, type V1Pod, type V1Probe } from '@kubernetes/client-node';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ManualClock, startKubeApiServer, type KubeApiServer, type KubeObject, type StoreEvent } from '../support/kube-apiserver/index.ts';
import { kubeConfigFor } from './helpers.ts';

const NS = 'relays';
const APP = fileURLToPath(new URL('./fixtures/pod-app.ts', import.meta.url));
const IMAGES = { 'pod-app:1': { entrypoint: [process.execPath, APP] }, 'crash:1': { entrypoint: [process.execPath, '-e', 'process.exit(3)'] } };

type Pod = KubeObject & V1Pod;

function podEnv(extra: Record<string, string> = {}): V1EnvVar[] {
  return [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }, ...Object.entries(extra).map(([name, value]) => ({ name, value }))];
}

const READY: V1Probe = { httpGet: { path: '/readyz', port: 8080 }, periodSeconds: 1, failureThreshold: 1 };

function containerStatus(pod: KubeObject | undefined): Record<string, any> {
  return ((pod?.status as { containerStatuses?: Record<string, any>[] } | undefined)?.containerStatuses ?? [])[0] ?? {};
}

function condition(pod: KubeObject | undefined, type: string): string | undefined {
  return (pod?.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions?.find((c) => c.type === type)?.status;
}

async function get(url: string): Promise<string> {
  const response = await fetch(url);
  return response.text();
}

describe('the kubelet stand-in, on a scaled clock', () => {
  let api: KubeApiServer;
  let core: CoreV1Api;

  beforeAll(async () => {
    api = await startKubeApiServer({ namespaces: [NS], kubelet: { images: IMAGES, timeScale: 0.01 } });
    core = kubeConfigFor(api, 'admin', NS).makeApiClient(CoreV1Api);
  });

  afterAll(async () => {
    await api.close();
  });

  test('runs a pod on a loopback address of its own, with the downward API, a Secret as env and as a volume, the service-account token, ready by httpGet', async () => {
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'app-tls' }, stringData: { 'tls.crt': 'CERTIFICATE', token: 's3cret' } } });
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'app', labels: { app: 'demo' } },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'pod-app:1',
              ports: [{ name: 'http', containerPort: 8080 }],
              env: [
                ...podEnv({ HTTP_PORT: '8080', CERT_FILE: '/etc/app/tls/tls.crt', SA: '/var/run/secrets/kubernetes.io/serviceaccount' }),
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                { name: 'APP_LABEL', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
                { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'app-tls', key: 'token' } } },
                { name: 'GREETING', value: 'hello $(POD_NAME)' },
              ],
              volumeMounts: [{ name: 'tls', mountPath: '/etc/app/tls', readOnly: true }],
              readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 1, failureThreshold: 1 },
            },
          ],
          volumes: [{ name: 'tls', secret: { secretName: 'app-tls' } }],
        },
      },
    });
    const pod = (await api.store.waitFor('pods', NS, 'app', (p) => condition(p, 'Ready') === 'True')) as Pod;
    const ip = pod.status!.podIP!;
    expect(ip).toMatch(/^127\.\d+\.\d+\.\d+$/);
    expect(ip).not.toBe('127.0.0.1');
    expect(pod.spec?.nodeName).toBe('standin-node');
    expect(pod.status).toMatchObject({ phase: 'Running', hostIP: '127.0.0.1', podIPs: [{ ip }] });
    expect(containerStatus(pod)).toMatchObject({ name: 'app', ready: true, started: true, restartCount: 0, state: { running: {} } });

    const env = JSON.parse(await get(`http://${ip}:8080/env`)) as Record<string, string>;
    expect(env).toMatchObject({ POD_IP: ip, POD_NAME: 'app', POD_NAMESPACE: NS, APP_LABEL: 'demo', TOKEN: 's3cret', GREETING: 'hello app', HOSTNAME: 'app' });
    expect(env.CERT_FILE).not.toBe('/etc/app/tls/tls.crt');
    expect(await get(`http://${ip}:8080/file?path=${encodeURIComponent(env.CERT_FILE!)}`)).toBe('CERTIFICATE');

    // The service-account volume the admission plugin added: namespace, CA, and a token this server accepts.
    const file = (name: string) => get(`http://${ip}:8080/file?path=${encodeURIComponent(`${env.SA}/${name}`)}`);
    expect(await file('namespace')).toBe(NS);
    expect(await file('ca.crt')).toBe(api.ca);
    const asPod = await fetch(`${api.url}/api/v1/namespaces/${NS}/pods/app`, { headers: { authorization: `Bearer ${await file('token')}` }, dispatcher: new Agent({ connect: { ca: api.ca } }) });
    // Authenticated as system:serviceaccount:relays:default, to which no Role grants anything.
    expect(asPod.status).toBe(403);
    expect(api.requests.all().at(-1)!.user).toBe(`system:serviceaccount:${NS}:default`);

    await get(`http://${ip}:8080/fail`);
    await api.store.waitFor('pods', NS, 'app', (p) => condition(p, 'Ready') === 'False');
    const events = api.store.list('events', NS).filter((e) => (e.involvedObject as { name: string }).name === 'app').map((e) => e.reason);
    expect(events).toEqual(expect.arrayContaining(['Scheduled', 'Pulled', 'Created', 'Started', 'Unhealthy']));
    expect(await core.readNamespacedPodLog({ name: 'app', namespace: NS })).toContain('pod-app app on');
  });

  test('a failing liveness probe kills the container, which restarts (behind a startup probe)', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'live' },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'pod-app:1',
              env: podEnv({ HTTP_PORT: '8080' }),
              // The startup probe holds liveness back until the (re)started process listens.
              startupProbe: { httpGet: { path: '/livez', port: 8080 }, periodSeconds: 1, failureThreshold: 1000 },
              readinessProbe: READY,
              livenessProbe: { httpGet: { path: '/livez', port: 8080 }, periodSeconds: 1, failureThreshold: 1 },
            },
          ],
        },
      },
    });
    const pod = await api.store.waitFor('pods', NS, 'live', (p) => condition(p, 'Ready') === 'True');
    await get(`http://${(pod!.status as { podIP: string }).podIP}:8080/fail`);
    const restarted = await api.store.waitFor('pods', NS, 'live', (p) => containerStatus(p).restartCount === 1 && condition(p, 'Ready') === 'True');
    expect(containerStatus(restarted)).toMatchObject({ lastState: { terminated: { exitCode: 0, reason: 'Completed' } }, state: { running: {} } });
    expect(api.store.list('events', NS).find((e) => e.reason === 'Killing' && (e.involvedObject as { name: string }).name === 'live')?.message).toBe(
      'Container app failed liveness probe, will be restarted',
    );
  });

  test('a missing Secret keeps the pod in ContainerCreating (FailedMount) until it exists; an unknown image waits in ImagePullBackOff', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'later' },
        spec: {
          containers: [{ name: 'app', image: 'pod-app:1', env: podEnv({ HTTP_PORT: '8080' }), volumeMounts: [{ name: 's', mountPath: '/s' }] }],
          volumes: [{ name: 's', secret: { secretName: 'later' } }],
        },
      },
    });
    await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'noimage' }, spec: { containers: [{ name: 'app', image: 'nowhere:1' }] } } });
    await api.store.waitFor('pods', NS, 'noimage', (p) => containerStatus(p).state?.waiting?.reason === 'ImagePullBackOff');
    await api.settled();
    expect(containerStatus(api.store.get('pods', NS, 'later'))).toMatchObject({ state: { waiting: { reason: 'ContainerCreating' } } });
    expect(api.store.list('events', NS).find((e) => e.reason === 'FailedMount')?.message).toBe('MountVolume.SetUp failed for volume "s" : secret "later" not found');
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'later' }, stringData: { a: 'b' } } });
    await api.store.waitFor('pods', NS, 'later', (p) => condition(p, 'Ready') === 'True');
  });
});

describe('the kubelet stand-in, on a manual clock', () => {
  let api: KubeApiServer;
  let core: CoreV1Api;
  let clock: ManualClock;
  let out: string;

  beforeAll(async () => {
    clock = new ManualClock();
    out = await mkdtemp(path.join(tmpdir(), 'kubelet-test-'));
    api = await startKubeApiServer({ namespaces: [NS], kubelet: { images: IMAGES, clock } });
    core = kubeConfigFor(api, 'admin', NS).makeApiClient(CoreV1Api);
  });

  afterAll(async () => {
    await api.close();
    await rm(out, { recursive: true, force: true });
  });

  /** Steps the clock one probe period at a time, each step waiting for that probe's result, until one succeeds. */
  async function probeUntilReady(pod: string): Promise<void> {
    for (;;) {
      const result = new Promise<boolean>((resolve) => {
        const stop = api.kubelet!.onProbe((outcome) => {
          if (outcome.pod !== pod || outcome.kind !== 'Readiness') return;
          stop();
          resolve(outcome.ok);
        });
      });
      clock.advance(1_000);
      if (await result) break;
    }
    await api.store.waitFor('pods', NS, pod, (p) => condition(p, 'Ready') === 'True');
  }

  test('a crashing container restarts at once, then with a doubling back-off (CrashLoopBackOff)', async () => {
    await core.createNamespacedPod({ namespace: NS, body: { metadata: { name: 'crash' }, spec: { containers: [{ name: 'app', image: 'crash:1' }] } } });
    const waiting = (count: number) => (p: KubeObject | undefined) => containerStatus(p).restartCount === count && containerStatus(p).state?.waiting?.reason === 'CrashLoopBackOff';
    const first = await api.store.waitFor('pods', NS, 'crash', waiting(1));
    expect(containerStatus(first)).toMatchObject({
      restartCount: 1,
      ready: false,
      state: { waiting: { reason: 'CrashLoopBackOff', message: expect.stringMatching(/^back-off 10s restarting failed container=app pod=crash_relays\(/) } },
      lastState: { terminated: { exitCode: 3, reason: 'Error' } },
    });
    expect((first!.status as { phase: string }).phase).toBe('Running');
    clock.advance(9_999);
    await api.settled();
    expect(containerStatus(api.store.get('pods', NS, 'crash')).restartCount).toBe(1);
    clock.advance(1);
    const second = await api.store.waitFor('pods', NS, 'crash', waiting(2));
    expect(containerStatus(second).state.waiting.message).toMatch(/^back-off 20s /);
    clock.advance(20_000);
    const third = await api.store.waitFor('pods', NS, 'crash', waiting(3));
    expect(containerStatus(third).state.waiting.message).toMatch(/^back-off 40s /);
    await core.deleteNamespacedPod({ name: 'crash', namespace: NS, gracePeriodSeconds: 0 });
  });

  test('deletion runs preStop (sleep), then SIGTERM; the pod goes once the container exited', async () => {
    const signals = path.join(out, 'graceful');
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'graceful' },
        spec: {
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: 'app',
              image: 'pod-app:1',
              env: podEnv({ HTTP_PORT: '8080', SIGNAL_FILE: '/out/graceful' }),
              readinessProbe: READY,
              volumeMounts: [{ name: 'out', mountPath: '/out' }],
              lifecycle: { preStop: { exec: { command: ['sleep', '5'] } } },
            },
          ],
          volumes: [{ name: 'out', hostPath: { path: out } }],
        },
      },
    });
    await probeUntilReady('graceful');
    const deleted = await core.deleteNamespacedPod({ name: 'graceful', namespace: NS });
    expect(deleted.metadata).toMatchObject({ deletionGracePeriodSeconds: 30, deletionTimestamp: expect.any(Date) });
    await api.settled();
    clock.advance(4_999);
    await api.settled();
    expect(api.store.get('pods', NS, 'graceful')).toBeDefined();
    await expect(readFile(signals, 'utf8')).rejects.toThrow();
    clock.advance(1);
    await api.store.waitFor('pods', NS, 'graceful', (p) => p === undefined);
    expect(await readFile(signals, 'utf8')).toBe('SIGTERM\n');
  });

  test('a container that ignores SIGTERM is killed when the grace period ends; its last status says so', async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'stubborn' },
        spec: { terminationGracePeriodSeconds: 3, containers: [{ name: 'app', image: 'pod-app:1', env: podEnv({ HTTP_PORT: '8080', IGNORE_TERM: '1' }), readinessProbe: READY }] },
      },
    });
    await probeUntilReady('stubborn');
    let last: KubeObject | undefined;
    const stop = api.store.subscribe((event: StoreEvent) => {
      if (event.table === '/pods' && event.name === 'stubborn' && event.type === 'MODIFIED') last = event.object;
    });
    await core.deleteNamespacedPod({ name: 'stubborn', namespace: NS });
    await api.settled();
    clock.advance(2_999);
    await api.settled();
    expect(api.store.get('pods', NS, 'stubborn')).toBeDefined();
    clock.advance(1);
    await api.store.waitFor('pods', NS, 'stubborn', (p) => p === undefined);
    stop();
    expect(last!.status).toMatchObject({ phase: 'Failed', conditions: expect.arrayContaining([{ type: 'Ready', status: 'False', lastProbeTime: null, lastTransitionTime: expect.any(String) }]) });
    expect(containerStatus(last)).toMatchObject({ ready: false, state: { terminated: { exitCode: 137, signal: 9, reason: 'Error' } } });
  });
});
