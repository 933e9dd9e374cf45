/**
 * A cache of one kind of object, fed by a watch (client-go's reflector): list once, then watch from the list's
 * resourceVersion and apply each event. A watch that ends (the server's timeoutSeconds, client-node's 30 s without
 * data) is resumed from the last resourceVersion seen; a 410 Gone (as an answer or as an ERROR event) means that
 * version is too old, so it lists again. Other failures back off (1 s doubling to 30 s) while reads go to the API.
 *
 * Reads may use the cache only while it is `fresh`: watching, and having seen every write this process made through
 * it (read-your-writes). Each write registers what it expects (`expect`): the watch event carrying the written
 * resourceVersion, or the DELETED event, clears it. Resource versions are compared for equality only (they are
 * opaque); when the events cannot tell (a relist raced the write), a direct read that agrees with the cache does.
 */
import type { Clock } from '../../clock.ts';
import { apiStatusOf } from './kube-errors.ts';
import type { ObjectList, WatchEvent, WatchHandle } from './kube-api.ts';

export interface CachedObject {
  metadata?: { name?: string; resourceVersion?: string };
}

export interface ListWatchSource<T> {
  list(): Promise<ObjectList<T>>;
  watch(resourceVersion: string, onEvent: (event: WatchEvent) => void): Promise<WatchHandle>;
}

export interface WatchCacheOptions {
  clock: Clock;
  /** A failed watch or relist; `attempt` counts consecutive failures. */
  onError?: (error: unknown, attempt: number) => void;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A watch that ends sooner than this without any event counts as a failure (no tight reconnect loop). */
  minWatchMs?: number;
}

type Phase = 'idle' | 'watching' | 'between' | 'stopped';

export class WatchCache<T extends CachedObject> {
  readonly #source: ListWatchSource<T>;
  readonly #clock: Clock;
  readonly #onError: (error: unknown, attempt: number) => void;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #minWatchMs: number;
  readonly #objects = new Map<string, T>();
  /** Writes not yet seen by the watch: name -> resourceVersion written, or null for a delete. */
  readonly #expected = new Map<string, string | null>();
  readonly #stop = new AbortController();
  #resourceVersion = '';
  #phase: Phase = 'idle';
  #synced: Promise<void> | null = null;
  #handle: WatchHandle | null = null;
  #gone = false;
  #eventError: unknown = null;
  #changes = 0;
  /** Watch events applied, ever: a watch that ended having delivered none may be a server ending it at once. */
  #events = 0;
  #waiters = new Set<() => void>();
  /** Counted for tests and figures: lists, watches started, watches resumed after ending. */
  readonly stats = { lists: 0, watches: 0, relistsAfterGone: 0, failures: 0 };

  constructor(source: ListWatchSource<T>, options: WatchCacheOptions) {
    this.#source = source;
    this.#clock = options.clock;
    this.#onError = options.onError ?? (() => undefined);
    this.#baseDelayMs = options.baseDelayMs ?? 1_000;
    this.#maxDelayMs = options.maxDelayMs ?? 30_000;
    this.#minWatchMs = options.minWatchMs ?? 1_000;
  }

  /**
   * Lists (the first time) and starts watching in the background. A failed first list rejects, with the cache
   * left as it was: the next call tries again.
   */
  sync(): Promise<void> {
    if (this.#phase === 'stopped') return Promise.reject(new Error('the watch cache is stopped'));
    this.#synced ??= this.#relist().then(
      () => {
        void this.#loop();
      },
      (error: unknown) => {
        this.#synced = null;
        throw error;
      },
    );
    return this.#synced;
  }

  /** Watching, and every write made through this cache seen: reads may come from here. */
  get fresh(): boolean {
    return this.#phase === 'watching' && this.#expected.size === 0;
  }

  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  /** Bumped on every change the cache saw (and when it starts watching); see changedSince. */
  get changes(): number {
    return this.#changes;
  }

  list(): T[] {
    return [...this.#objects.values()];
  }

  get(name: string): T | undefined {
    return this.#objects.get(name);
  }

  /** A write this process made: reads wait for the watch to show it (resourceVersion null: a delete). */
  expect(name: string, resourceVersion: string | null): void {
    this.#expected.set(name, resourceVersion);
  }

  /**
   * What a direct read returned for `names` (absent: gone): every expectation the cache is known to satisfy (it holds
   * exactly that version, or neither has the object) is dropped.
   */
  reconcile(names: readonly string[], read: ReadonlyMap<string, T>): void {
    for (const name of names) {
      if (!this.#expected.has(name)) continue;
      const direct = read.get(name)?.metadata?.resourceVersion;
      const cached = this.#objects.get(name)?.metadata?.resourceVersion;
      if (direct === cached) this.#expected.delete(name);
    }
  }

  get expectedNames(): string[] {
    return [...this.#expected.keys()];
  }

  /** Resolves once the cache changed after `since` (a value of `changes`), or when `signal` aborts. */
  changedSince(since: number, signal?: AbortSignal): Promise<void> {
    if (this.#changes !== since || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#waiters.delete(wake);
        signal?.removeEventListener('abort', wake);
        resolve();
      };
      this.#waiters.add(wake);
      signal?.addEventListener('abort', wake, { once: true });
    });
  }

  stop(): void {
    this.#phase = 'stopped';
    this.#stop.abort();
    this.#handle?.abort();
    this.#notify();
  }

  async #relist(): Promise<void> {
    this.stats.lists++;
    const list = await this.#source.list();
    const names = new Set<string>();
    for (const item of list.items) {
      const name = item.metadata?.name;
      if (name === undefined) continue;
      names.add(name);
      this.#objects.set(name, item);
    }
    for (const name of [...this.#objects.keys()]) if (!names.has(name)) this.#objects.delete(name);
    this.#resourceVersion = list.resourceVersion;
    this.#notify();
  }

  async #loop(): Promise<void> {
    let failures = 0;
    while (!this.#stop.signal.aborted) {
      try {
        if (this.#resourceVersion === '') {
          this.#phase = 'between';
          await this.#relist();
        }
        const startedAt = this.#clock.now();
        const before = this.#events;
        this.#eventError = null;
        const handle = await this.#source.watch(this.#resourceVersion, (event) => this.#apply(event));
        this.stats.watches++;
        if (this.#stop.signal.aborted) {
          handle.abort();
          return;
        }
        this.#handle = handle;
        this.#phase = 'watching';
        // Becoming fresh is a change too: a reader waiting for it wakes.
        this.#notify();
        const ended = await handle.done;
        this.#handle = null;
        if (this.#stop.signal.aborted) return;
        this.#phase = 'between';
        if (this.#gone) {
          this.#gone = false;
          this.#resourceVersion = '';
          this.stats.relistsAfterGone++;
          continue;
        }
        const error = this.#eventError ?? ended;
        if (error !== null && !isTimeout(error)) throw error;
        // Ended quietly: resume at once, unless it keeps ending before anything happens.
        if (this.#events !== before || this.#clock.now() - startedAt >= this.#minWatchMs) {
          failures = 0;
          continue;
        }
        failures++;
        await this.#clock.sleep(this.#delay(failures), this.#stop.signal);
      } catch (error) {
        if (this.#stop.signal.aborted) return;
        this.#phase = 'between';
        if (apiStatusOf(error)?.code === 410) {
          this.#resourceVersion = '';
          this.stats.relistsAfterGone++;
          continue;
        }
        failures++;
        this.stats.failures++;
        this.#onError(error, failures);
        try {
          await this.#clock.sleep(this.#delay(failures), this.#stop.signal);
        } catch {
          return;
        }
      }
    }
  }

  #delay(failures: number): number {
    return Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (failures - 1));
  }

  #apply(event: WatchEvent): void {
    if (event.type === 'ERROR') {
      // The server ends the watch after an ERROR event; a 410 means the resourceVersion is too old: list again.
      const code = (event.object as { code?: unknown } | null)?.code;
      if (code === 410) this.#gone = true;
      else this.#eventError = { code, body: event.object };
      this.#handle?.abort();
      return;
    }
    this.#events++;
    const object = event.object as T;
    const name = object?.metadata?.name;
    const resourceVersion = object?.metadata?.resourceVersion;
    if (resourceVersion !== undefined) this.#resourceVersion = resourceVersion;
    if (event.type === 'BOOKMARK' || name === undefined) return;
    if (event.type === 'DELETED') {
      this.#objects.delete(name);
      if (this.#expected.has(name)) this.#expected.delete(name);
    } else if (event.type === 'ADDED' || event.type === 'MODIFIED') {
      this.#objects.set(name, object);
      if (this.#expected.get(name) === resourceVersion) this.#expected.delete(name);
    } else {
      return;
    }
    this.#notify();
  }

  #notify(): void {
    this.#changes++;
    for (const wake of [...this.#waiters]) wake();
  }
}

/** client-node aborts a watch after 30 s without data: that is a quiet watch, not a failure. */
function isTimeout(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'TimeoutError';
}
