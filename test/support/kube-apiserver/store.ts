/**
 * The stand-in's etcd: objects by resource, namespace and name; one revision counter for every write (an object's
 * resourceVersion is the revision of its last write, as in etcd); a bounded window of recent events that watches
 * resume from (a watch from a revision older than the window is answered 410 Gone, as after etcd compaction); and
 * synchronous fan-out of every event to subscribers (watch streams, controllers).
 *
 * Stored objects are deep-frozen: readers may hold them without copying, writers clone first.
 */
import type { KubeObject } from './resources.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  revision: number;
  type: EventType;
  /** `<group>/<resource>`, e.g. `apps/statefulsets`, `/pods`. */
  table: string;
  namespace: string;
  name: string;
  /** The object after the write (for DELETED: the last state, with the deletion's revision). */
  object: KubeObject;
  /** The object before the write (undefined for ADDED). */
  previous: KubeObject | undefined;
}

export type StoreListener = (event: StoreEvent) => void;

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as object)) deepFreeze(child);
  }
  return value;
}

export function objectKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export class ObjectStore {
  private revision: number;
  private readonly tables = new Map<string, Map<string, KubeObject>>();
  private readonly history: StoreEvent[] = [];
  /** Events with a revision at or below this one are forgotten. */
  private compacted: number;
  private readonly listeners = new Set<StoreListener>();

  private readonly historyLimit: number;

  constructor(historyLimit: number, startRevision = 1) {
    this.historyLimit = historyLimit;
    this.revision = startRevision;
    this.compacted = startRevision;
  }

  currentRevision(): number {
    return this.revision;
  }

  /** The oldest revision a watch may start from. */
  compactedRevision(): number {
    return this.compacted;
  }

  get(table: string, namespace: string, name: string): KubeObject | undefined {
    return this.tables.get(table)?.get(objectKey(namespace, name));
  }

  /** Objects of a table, in one namespace or all, ordered by namespace then name (as etcd keys sort). */
  list(table: string, namespace?: string): KubeObject[] {
    const rows = this.tables.get(table);
    if (rows === undefined) return [];
    const out: [string, KubeObject][] = [];
    for (const [key, object] of rows) {
      if (namespace === undefined || (object.metadata.namespace ?? '') === namespace) out.push([key, object]);
    }
    out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return out.map(([, object]) => object);
  }

  /**
   * Writes an object (ADDED, MODIFIED) or removes it (DELETED) at the next revision, which becomes its
   * resourceVersion; returns the stored, frozen object.
   */
  write(type: EventType, table: string, object: KubeObject): KubeObject {
    const namespace = object.metadata.namespace ?? '';
    const name = object.metadata.name!;
    const key = objectKey(namespace, name);
    let rows = this.tables.get(table);
    if (rows === undefined) {
      rows = new Map();
      this.tables.set(table, rows);
    }
    const previous = rows.get(key);
    if (type === 'ADDED' && previous !== undefined) throw new Error(`store: ${table} ${key} exists`);
    if (type !== 'ADDED' && previous === undefined) throw new Error(`store: ${table} ${key} does not exist`);
    this.revision++;
    const stored = deepFreeze({ ...object, metadata: { ...object.metadata, resourceVersion: String(this.revision) } });
    if (type === 'DELETED') rows.delete(key);
    else rows.set(key, stored);
    const event: StoreEvent = { revision: this.revision, type, table, namespace, name, object: stored, previous };
    this.history.push(event);
    if (this.history.length > this.historyLimit) this.compacted = this.history.shift()!.revision;
    for (const listener of [...this.listeners]) listener(event);
    return stored;
  }

  /** Events after `revision`, or null when some of them were compacted away. */
  eventsSince(revision: number): StoreEvent[] | null {
    if (revision < this.compacted) return null;
    // History is ordered by revision; find the first event after `revision`.
    let low = 0;
    let high = this.history.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.history[mid]!.revision <= revision) low = mid + 1;
      else high = mid;
    }
    return this.history.slice(low);
  }

  /** Forgets the whole history, as an etcd compaction at the current revision would. */
  compact(): void {
    this.history.length = 0;
    this.compacted = this.revision;
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
