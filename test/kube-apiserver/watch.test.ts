import { CoreV1Api, makeInformer, PatchStrategy, setHeaderOptions, Watch, type KubernetesObject, type V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-apiserver/index.ts';
import { kubeConfigFor } from './helpers.ts';

const NS = 'relays';
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const PATH = `/api/v1/namespaces/${NS}/configmaps`;

interface Seen {
  type: string;
  name: string;
  rv: number;
  object: Record<string, unknown>;
}

let api: KubeApiServer;
let core: CoreV1Api;
let watcher: Watch;

beforeAll(async () => {
  api = await startKubeApiServer({ namespaces: [NS], watchTimeoutSeconds: 0.3, bookmarkIntervalMs: 100, kubelet: false });
  const kc = kubeConfigFor(api, 'admin', NS);
  core = kc.makeApiClient(CoreV1Api);
  watcher = new Watch(kc);
  await api.settled();
});

afterAll(async () => {
  await api.close();
});

/** Watches until `count` events arrived (then aborts), or until the server ends the stream (count undefined). */
function collect(params: Record<string, string | number | boolean | undefined>, count?: number): Promise<{ events: Seen[]; ended: 'server' | 'aborted' }> {
  return new Promise((resolve, reject) => {
    const events: Seen[] = [];
    let controller: AbortController | undefined;
    let aborted = false;
    void watcher
      .watch(
        PATH,
        params,
        (type, object: { metadata?: { name?: string; resourceVersion?: string } }) => {
          events.push({ type, name: object.metadata?.name ?? '', rv: Number(object.metadata?.resourceVersion), object: object as Record<string, unknown> });
          if (count !== undefined && events.length === count) {
            aborted = true;
            controller?.abort();
          }
        },
        (error) => {
          if (error !== null && error !== undefined && !aborted) reject(error);
          else resolve({ events, ended: aborted ? 'aborted' : 'server' });
        },
      )
      .then((c) => {
        controller = c;
        if (aborted) c.abort();
      }, reject);
  });
}

async function create(name: string, labels: Record<string, string> = {}): Promise<V1ConfigMap> {
  return core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name, labels } } });
}

describe('watch', () => {
  test('from a resourceVersion: every later change, through the label selector (an object that stops matching is DELETED)', async () => {
    const from = api.store.revision();
    await create('w-a', { app: 'w' });
    await core.patchNamespacedConfigMap({ name: 'w-a', namespace: NS, body: { data: { k: 'v' } } }, merge);
    await create('w-b');
    await core.patchNamespacedConfigMap({ name: 'w-b', namespace: NS, body: { metadata: { labels: { app: 'w' } } } }, merge);
    await core.patchNamespacedConfigMap({ name: 'w-a', namespace: NS, body: { metadata: { labels: { app: null } } } }, merge);
    await core.deleteNamespacedConfigMap({ name: 'w-b', namespace: NS });

    const { events } = await collect({ resourceVersion: String(from), labelSelector: 'app=w' }, 5);
    expect(events.map((e) => `${e.type} ${e.name}`)).toEqual(['ADDED w-a', 'MODIFIED w-a', 'ADDED w-b', 'DELETED w-a', 'DELETED w-b']);
    expect(events.map((e) => e.rv)).toEqual([from + 1, from + 2, from + 4, from + 5, from + 6]);
    // The object that stopped matching is sent as it was before, at the new resourceVersion.
    expect(events[3]!.object).toMatchObject({ kind: 'ConfigMap', apiVersion: 'v1', metadata: { labels: { app: 'w' } }, data: { k: 'v' } });
  });

  test('without a resourceVersion: the current objects as ADDED first', async () => {
    await create('init-1', { app: 'init' });
    await create('init-2', { app: 'init' });
    const { events } = await collect({ labelSelector: 'app=init' }, 2);
    expect(events.map((e) => `${e.type} ${e.name}`)).toEqual(['ADDED init-1', 'ADDED init-2']);
  });

  test('ends after timeoutSeconds; resumed from the last resourceVersion it sends the rest, once', async () => {
    const from = api.store.revision();
    await create('t-1', { app: 't' });
    await create('t-2', { app: 't' });
    const first = await collect({ resourceVersion: String(from), labelSelector: 'app=t', timeoutSeconds: 1 });
    expect(first.ended).toBe('server');
    expect(first.events.map((e) => e.name)).toEqual(['t-1', 't-2']);
    await create('t-3', { app: 't' });
    const resumed = await collect({ resourceVersion: String(first.events.at(-1)!.rv), labelSelector: 'app=t' }, 1);
    expect(resumed.events.map((e) => `${e.type} ${e.name}`)).toEqual(['ADDED t-3']);
  });

  test('a watch without timeoutSeconds ends at the server default', async () => {
    const { ended, events } = await collect({ labelSelector: 'app=nothing' });
    expect(ended).toBe('server');
    expect(events).toEqual([]);
    const entry = api.requests.all().filter((r) => r.verb === 'watch').at(-1)!;
    expect(entry).toMatchObject({ code: 200, labelSelector: 'app=nothing' });
  });

  test('a resourceVersion older than the history answers an ERROR event with 410 Expired, then ends', async () => {
    const old = api.store.revision();
    await create('gone-1');
    api.store.compact();
    const { events, ended } = await collect({ resourceVersion: String(old) });
    expect(ended).toBe('server');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'ERROR',
      object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: expect.stringMatching(/^too old resource version: \d+ \(\d+\)$/) },
    });
  });

  test('BOOKMARK events carry only the current resourceVersion when asked for', async () => {
    const { events } = await collect({ labelSelector: 'app=none', allowWatchBookmarks: true }, 1);
    expect(events[0]).toMatchObject({ type: 'BOOKMARK', object: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { resourceVersion: String(api.store.revision()) } } });
    expect(Object.keys(events[0]!.object)).toEqual(['kind', 'apiVersion', 'metadata']);
  });

  test("client-node's informer relists after a 410 and catches up", async () => {
    const kc = kubeConfigFor(api, 'admin', NS);
    const informer = makeInformer<V1ConfigMap & KubernetesObject>(kc, PATH, () => core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'app=inf' }), 'app=inf');
    const added: string[] = [];
    informer.on('add', (o) => added.push(o.metadata!.name!));
    await create('inf-1', { app: 'inf' });
    await informer.start();
    expect(added).toEqual(['inf-1']);
    await informer.stop();

    await create('inf-2', { app: 'inf' });
    api.store.compact();
    const seq = api.requests.all().length;
    const caughtUp = new Promise<void>((resolve) => informer.on('add', (o) => o.metadata?.name === 'inf-2' && resolve()));
    await informer.start();
    await caughtUp;
    await informer.stop();
    expect(added).toEqual(['inf-1', 'inf-2']);
    expect(api.requests.all().slice(seq, seq + 2).map((r) => `${r.verb} rv=${r.resourceVersion}`)).toEqual([
      `watch rv=${api.requests.all()[seq]!.resourceVersion}`,
      'list rv=undefined',
    ]);
    expect(Number(api.requests.all()[seq]!.resourceVersion)).toBeLessThan(api.store.revision());
  });
});
