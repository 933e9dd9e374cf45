import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { systemClock } from '../../../orchestrator/clock.ts';
import { resolveConfig } from '../../../orchestrator/platform/kubernetes/config.ts';
import { WriteLog } from '../../../orchestrator/platform/kubernetes/dry-run.ts';
import { KubeApi, type WatchEvent } from '../../../orchestrator/platform/kubernetes/kube-api.ts';
import { WatchCache } from '../../../orchestrator/platform/kubernetes/watch-cache.ts';
import type { RecordedRequest } from '../../support/kube-apiserver/index.ts';
import { NS, RELAYCTL, runPods, deployActiveSet, standIn, type StandIn } from './standin.ts';

/**
 * The pod cache over client-node's Watch against the stand-in: a watch the server ends is resumed from the last
 * resourceVersion, and a resume the server can no longer serve (history compacted: ERROR 410) lists again.
 * A gate holds each resume until the test lets it go, so what happens in between is chosen, not raced.
 */

let standin: StandIn;
let api: KubeApi;

beforeAll(async () => {
  standin = await standIn();
  deployActiveSet(standin.api);
  await runPods(standin, 'relay-a', [0]);
  const config = resolveConfig({ kubeconfig: await standin.kubeconfig(RELAYCTL) }, { env: {}, home: null, serviceAccountDir: '/nonexistent' });
  api = new KubeApi({ kubeConfig: config.kubeConfig, server: config.server, namespace: NS, identity: RELAYCTL, writes: new WriteLog('none') });
});

afterAll(async () => {
  api?.close();
  await standin?.close();
});

/** While closed, resumes wait at the gate (with the resourceVersion they resume from); open lets them through. */
function gate() {
  let closed = false;
  const waiting: Array<{ resourceVersion: string; go: () => void }> = [];
  let arrived: () => void = () => undefined;
  return {
    pass: (resourceVersion: string): Promise<void> => {
      if (!closed) return Promise.resolve();
      return new Promise((go) => {
        waiting.push({ resourceVersion, go });
        arrived();
      });
    },
    close: (): void => {
      closed = true;
    },
    /** The resume waiting at the (closed) gate, once one is. */
    reached: async (): Promise<string> => {
      if (waiting.length === 0) await new Promise<void>((resolve) => (arrived = resolve));
      return waiting[0]!.resourceVersion;
    },
    open: (): void => {
      closed = false;
      for (const resume of waiting.splice(0)) resume.go();
    },
  };
}

function podWatches(since: number): RecordedRequest[] {
  return standin.api.requests.all(RELAYCTL).filter((request) => request.seq > since && request.resource === 'pods' && (request.verb === 'watch' || request.verb === 'list'));
}

async function until(cache: WatchCache<V1Pod>, condition: () => boolean): Promise<void> {
  while (!condition()) {
    const before = cache.changes;
    await Promise.race([cache.changedSince(before), new Promise((resolve) => setTimeout(resolve, 50))]);
  }
}

describe('watches against the API stand-in', () => {
  test('a watch the server ends is resumed from the last resourceVersion seen; after compaction the resume gets 410 and lists again', async () => {
    const resumes = gate();
    const cache = new WatchCache<V1Pod>(
      {
        list: () => api.listPods('relayctl.dev/fleet=relay'),
        watch: async (resourceVersion, onEvent: (event: WatchEvent) => void) => {
          await resumes.pass(resourceVersion);
          // Short watches: the stand-in ends each after 0.3 s, and the cache resumes.
          return api.watch('pods', { resourceVersion, labelSelector: 'relayctl.dev/fleet=relay', timeoutSeconds: 0.3 }, onEvent);
        },
      },
      { clock: systemClock, minWatchMs: 0 },
    );
    const mark = standin.mark();
    try {
      await cache.sync();
      await runPods(standin, 'relay-a', [1]);
      await until(cache, () => cache.get('relay-a-1')?.status?.phase === 'Running');
      // Hold the next resume: it starts from the last version the cache saw, and nothing was listed again.
      resumes.close();
      expect(await resumes.reached()).toBe(cache.resourceVersion);
      const watches = podWatches(mark);
      expect(watches.filter((request) => request.verb === 'list')).toHaveLength(1);
      expect(watches.filter((request) => request.verb === 'watch').length).toBeGreaterThanOrEqual(1);

      // While it waits: a change nobody watches, then the history is compacted.
      await runPods(standin, 'relay-a', [2]);
      const unseen = standin.api.store.get('pods', NS, 'relay-a-2')!.metadata.resourceVersion;
      expect(cache.get('relay-a-2')?.metadata?.resourceVersion).not.toBe(unseen);
      standin.api.store.compact();
      const before = podWatches(mark).length;
      resumes.open();
      // The resume is answered with an ERROR 410 event; the cache lists again and watches from that list.
      await until(cache, () => cache.stats.relistsAfterGone === 1 && cache.fresh);
      expect(podWatches(mark).slice(before, before + 3).map((request) => request.verb)).toEqual(['watch', 'list', 'watch']);
      expect(cache.stats.relistsAfterGone).toBe(1);
      expect(cache.list().map((pod) => pod.metadata!.name).sort()).toEqual(['relay-a-0', 'relay-a-1', 'relay-a-2']);
      expect(cache.get('relay-a-2')?.metadata?.resourceVersion).toBe(unseen);
    } finally {
      cache.stop();
    }
  });
});
