import { afterEach, describe, expect, test } from 'vitest';
import { ManualClock } from '../../../orchestrator/clock.ts';
import type { WatchEvent, WatchHandle } from '../../../orchestrator/platform/kubernetes/kube-api.ts';
import { WatchCache, type ListWatchSource } from '../../../orchestrator/platform/kubernetes/watch-cache.ts';

interface Obj {
  metadata: { name: string; resourceVersion: string };
  value?: string;
}

const obj = (name: string, resourceVersion: string, value?: string): Obj => ({ metadata: { name, resourceVersion }, ...(value === undefined ? {} : { value }) });

/** A scripted API server: every list and watch call is logged, and the test drives each watch it opened. */
class ScriptedSource implements ListWatchSource<Obj> {
  readonly calls: string[] = [];
  items: Obj[] = [];
  listVersion = '10';
  /** What the next watch calls answer, in order (default: accepted). */
  readonly watchAnswers: Array<'gone' | 'fail' | 'accept'> = [];
  current: { emit: (event: WatchEvent) => void; end: (error?: unknown) => void; aborted: boolean } | null = null;
  #opened: Array<() => void> = [];

  async list() {
    this.calls.push('list');
    return { items: this.items.map((item) => structuredClone(item)), resourceVersion: this.listVersion };
  }

  async watch(resourceVersion: string, onEvent: (event: WatchEvent) => void): Promise<WatchHandle> {
    this.calls.push(`watch@${resourceVersion}`);
    const answer = this.watchAnswers.shift() ?? 'accept';
    if (answer === 'gone') throw Object.assign(new Error('Gone'), { statusCode: 410 });
    if (answer === 'fail') throw Object.assign(new Error('Internal Server Error'), { statusCode: 500 });
    let settle: (error: unknown) => void = () => undefined;
    const done = new Promise<unknown>((resolve) => (settle = resolve));
    const watch = {
      aborted: false,
      emit: (event: WatchEvent) => onEvent(event),
      end: (error: unknown = null) => settle(error),
    };
    this.current = watch;
    // After the cache has the handle in hand and has started waiting on it.
    setImmediate(() => {
      for (const wake of this.#opened.splice(0)) wake();
    });
    return {
      done,
      abort: () => {
        watch.aborted = true;
        settle(null);
      },
    };
  }

  /** Resolves once a watch is open (the next one, or the current one if it has not ended). */
  opened(): Promise<void> {
    return new Promise((resolve) => this.#opened.push(resolve));
  }
}

const caches: WatchCache<Obj>[] = [];
afterEach(() => {
  for (const cache of caches.splice(0)) cache.stop();
});

function setup(options: { minWatchMs?: number } = {}) {
  const clock = new ManualClock();
  const source = new ScriptedSource();
  const errors: Array<[number, unknown]> = [];
  const cache = new WatchCache<Obj>(source, { clock, onError: (error, attempt) => errors.push([attempt, error]), ...options });
  caches.push(cache);
  return { clock, source, cache, errors };
}

/** Lets the cache's loop run its pending continuations. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

describe('the watch-fed cache', () => {
  test('lists once, then watches from the list\'s resourceVersion and applies every event', async () => {
    const { source, cache } = setup();
    source.items = [obj('a', '8'), obj('b', '9')];
    const opened = source.opened();
    await cache.sync();
    await opened;
    expect(source.calls).toEqual(['list', 'watch@10']);
    expect(cache.fresh).toBe(true);
    source.current!.emit({ type: 'ADDED', object: obj('c', '11') });
    source.current!.emit({ type: 'MODIFIED', object: obj('a', '12', 'changed') });
    source.current!.emit({ type: 'DELETED', object: obj('b', '13') });
    source.current!.emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '15' } } });
    expect(cache.list().map((item) => [item.metadata.name, item.metadata.resourceVersion])).toEqual([['a', '12'], ['c', '11']]);
    expect(cache.get('a')?.value).toBe('changed');
    expect(cache.resourceVersion).toBe('15');
  });

  test('a watch that ends is resumed from the last resourceVersion seen, without listing again', async () => {
    const { source, cache, clock } = setup();
    let opened = source.opened();
    await cache.sync();
    await opened;
    source.current!.emit({ type: 'ADDED', object: obj('a', '11') });
    opened = source.opened();
    await clock.advance(30_000);
    source.current!.end();
    await opened;
    // client-node's own 30 s inactivity abort is a quiet end too.
    opened = source.opened();
    await clock.advance(30_000);
    source.current!.end(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
    await opened;
    expect(source.calls).toEqual(['list', 'watch@10', 'watch@11', 'watch@11']);
    expect(cache.fresh).toBe(true);
  });

  test('410 Gone, as an answer or as an ERROR event, means list again and watch from there', async () => {
    const { source, cache } = setup();
    source.items = [obj('a', '8'), obj('stale', '9')];
    source.watchAnswers.push('accept', 'gone');
    let opened = source.opened();
    await cache.sync();
    await opened;
    source.items = [obj('a', '20')];
    source.listVersion = '21';
    opened = source.opened();
    source.current!.emit({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 10 (15)' } });
    await opened;
    // The ERROR event ended the first watch; its resume got a 410 answer; each time: list, then watch from it.
    expect(source.calls).toEqual(['list', 'watch@10', 'list', 'watch@21', 'list', 'watch@21']);
    expect(cache.list().map((item) => item.metadata.name)).toEqual(['a']);
    expect(cache.stats).toMatchObject({ lists: 3, relistsAfterGone: 2, failures: 0 });
  });

  test('failures back off 1 s, 2 s, 4 s; reads must go to the API server meanwhile; one error per attempt reported', async () => {
    const { source, cache, clock, errors } = setup();
    source.watchAnswers.push('accept', 'fail', 'fail');
    let opened = source.opened();
    await cache.sync();
    await opened;
    source.current!.end(Object.assign(new Error('Internal Server Error'), { statusCode: 500 }));
    await settle();
    expect(cache.fresh).toBe(false);
    expect(source.calls).toEqual(['list', 'watch@10']);
    await clock.advance(999);
    expect(source.calls).toHaveLength(2);
    await clock.advance(1);
    expect(source.calls).toEqual(['list', 'watch@10', 'watch@10']);
    await clock.advance(2_000);
    expect(source.calls).toHaveLength(4);
    opened = source.opened();
    await clock.advance(4_000);
    await opened;
    expect(source.calls).toHaveLength(5);
    expect(errors.map(([attempt]) => attempt)).toEqual([1, 2, 3]);
    expect(cache.fresh).toBe(true);
  });

  test('a watch that keeps ending at once without events backs off instead of spinning', async () => {
    const { source, cache, clock } = setup({ minWatchMs: 1_000 });
    let opened = source.opened();
    await cache.sync();
    await opened;
    source.current!.end();
    await settle();
    expect(source.calls).toEqual(['list', 'watch@10']);
    opened = source.opened();
    await clock.advance(1_000);
    await opened;
    expect(source.calls).toEqual(['list', 'watch@10', 'watch@10']);
  });

  test('read-your-writes: after a write the cache is not fresh until the watch shows that version (or a direct read agrees)', async () => {
    const { source, cache } = setup();
    source.items = [obj('a', '8'), obj('b', '9')];
    const opened = source.opened();
    await cache.sync();
    await opened;
    cache.expect('a', '12');
    expect(cache.fresh).toBe(false);
    // Somebody else's earlier change arrives first: still not ours.
    source.current!.emit({ type: 'MODIFIED', object: obj('a', '11') });
    expect(cache.fresh).toBe(false);
    source.current!.emit({ type: 'MODIFIED', object: obj('a', '12') });
    expect(cache.fresh).toBe(true);

    cache.expect('b', null);
    source.current!.emit({ type: 'DELETED', object: obj('b', '13') });
    expect(cache.fresh).toBe(true);

    // A direct read that finds what the cache holds settles an expectation the events could not.
    cache.expect('a', '30');
    cache.reconcile(['a'], new Map([['a', obj('a', '31')]]));
    expect(cache.fresh).toBe(false);
    cache.reconcile(['a'], new Map([['a', obj('a', '12')]]));
    expect(cache.fresh).toBe(true);
  });

  test('a first list that fails is reported to the reader and tried again on the next read', async () => {
    const { source, cache } = setup();
    const original = source.list.bind(source);
    let fail = true;
    source.list = async () => {
      if (fail) throw new Error('403 list pods');
      return original();
    };
    await expect(cache.sync()).rejects.toThrow('403 list pods');
    fail = false;
    const opened = source.opened();
    await cache.sync();
    await opened;
    expect(source.calls).toEqual(['list', 'watch@10']);
  });

  test('stop aborts the watch and nothing more is called', async () => {
    const { source, cache, clock } = setup();
    const opened = source.opened();
    await cache.sync();
    await opened;
    const watch = source.current!;
    cache.stop();
    await settle();
    await clock.advance(60_000);
    expect(watch.aborted).toBe(true);
    expect(source.calls).toEqual(['list', 'watch@10']);
    expect(cache.fresh).toBe(false);
  });

  test('changedSince wakes a waiter on the next change', async () => {
    const { source, cache } = setup();
    const opened = source.opened();
    await cache.sync();
    await opened;
    const since = cache.changes;
    let woke = false;
    const waiting = cache.changedSince(since).then(() => (woke = true));
    await settle();
    expect(woke).toBe(false);
    source.current!.emit({ type: 'ADDED', object: obj('x', '11') });
    await waiting;
    expect(woke).toBe(true);
  });
});
