/**
 * Watch streams, as the watch cache serves them:
 *
 * - No resourceVersion, or "0": synthetic ADDED events for every matching object, then every change.
 * - resourceVersion N: every change after N, replayed from the store's history; N older than the history window
 *   gives one ERROR event carrying a 410 Expired Status (HTTP status 200, as the real server does), then the end.
 * - Label and field selectors are applied to the object before and after each change: an object that starts
 *   matching arrives as ADDED, one that stops matching as DELETED (its previous state, at the new
 *   resourceVersion), like the real cacher.
 * - BOOKMARK events (kind, apiVersion and metadata.resourceVersion only) every bookmark interval when the client
 *   asked for allowWatchBookmarks.
 * - The stream ends after timeoutSeconds, else after the server's default watch timeout.
 */
import { resourceExpired, tooLargeResourceVersion, type Status } from './errors.ts';
import type { Registry } from './registry.ts';
import { tableOf } from './registry.ts';
import { groupVersion, type KubeObject, type ResourceType } from './resources.ts';
import type { ListOptions } from './registry.ts';
import type { EventType, StoreEvent } from './store.ts';

export interface WatchEvent {
  type: EventType | 'ERROR' | 'BOOKMARK';
  object: KubeObject | Status;
}

export interface WatchSpec {
  type: ResourceType;
  /** undefined: all namespaces. */
  namespace: string | undefined;
  selectors: ListOptions;
  /** undefined or '' or '0': start with the current state. */
  resourceVersion: string | undefined;
  allowBookmarks: boolean;
  timeoutMs: number;
  bookmarkIntervalMs: number;
}

export interface WatchSink {
  send(event: WatchEvent): void;
  end(): void;
}

export interface WatchHandle {
  stop(): void;
}

/** How a change looks through a selector: ADDED, MODIFIED, DELETED (possibly rewritten) or nothing. */
export function filterEvent(event: StoreEvent, matches: (object: KubeObject) => boolean): WatchEvent | null {
  const now = event.type === 'DELETED' ? false : matches(event.object);
  const before = event.previous === undefined ? false : matches(event.previous);
  if (event.type === 'DELETED') return before ? { type: 'DELETED', object: event.object } : null;
  if (now && before) return { type: 'MODIFIED', object: event.object };
  if (now) return { type: 'ADDED', object: event.object };
  if (before) {
    const previous = event.previous!;
    return { type: 'DELETED', object: { ...previous, metadata: { ...previous.metadata, resourceVersion: event.object.metadata.resourceVersion } } };
  }
  return null;
}

export function startWatch(registry: Registry, spec: WatchSpec, sink: WatchSink): WatchHandle {
  const { type, namespace } = spec;
  const table = tableOf(type);
  const inScope = (event: StoreEvent): boolean => event.table === table && (namespace === undefined || event.namespace === namespace);
  const matches = (object: KubeObject): boolean => registry.matches(object, spec.selectors);
  const store = registry.store;

  let stopped = false;
  let timeout: NodeJS.Timeout | undefined;
  let bookmarkTimer: NodeJS.Timeout | undefined;
  let unsubscribe = (): void => undefined;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    unsubscribe();
    clearTimeout(timeout);
    clearTimeout(bookmarkTimer);
    sink.end();
  };

  const requested = spec.resourceVersion;
  const fromState = requested === undefined || requested === '' || requested === '0';
  if (!fromState) {
    const revision = Number(requested);
    if (!/^\d+$/.test(requested) || !Number.isSafeInteger(revision)) {
      sink.send({ type: 'ERROR', object: resourceExpired(`invalid resource version: ${requested}`).status });
      stop();
      return { stop };
    }
    const replay = store.eventsSince(revision);
    if (replay === null) {
      sink.send({ type: 'ERROR', object: resourceExpired(`too old resource version: ${revision} (${store.compactedRevision() + 1})`).status });
      stop();
      return { stop };
    }
    if (revision > store.currentRevision()) {
      sink.send({ type: 'ERROR', object: tooLargeResourceVersion(revision, store.currentRevision()).status });
      stop();
      return { stop };
    }
    for (const event of replay) {
      if (!inScope(event)) continue;
      const out = filterEvent(event, matches);
      if (out !== null) sink.send(out);
    }
  } else {
    for (const object of registry.list(type, namespace, spec.selectors).items) sink.send({ type: 'ADDED', object });
  }

  unsubscribe = store.subscribe((event) => {
    if (stopped || !inScope(event)) return;
    const out = filterEvent(event, matches);
    if (out !== null) sink.send(out);
  });

  timeout = setTimeout(stop, spec.timeoutMs);
  if (spec.allowBookmarks) {
    const bookmark = (): void => {
      if (stopped) return;
      sink.send({
        type: 'BOOKMARK',
        object: { kind: type.kind, apiVersion: groupVersion(type), metadata: { resourceVersion: String(store.currentRevision()) } },
      });
      bookmarkTimer = setTimeout(bookmark, spec.bookmarkIntervalMs);
    };
    bookmarkTimer = setTimeout(bookmark, spec.bookmarkIntervalMs);
  }
  return { stop };
}
