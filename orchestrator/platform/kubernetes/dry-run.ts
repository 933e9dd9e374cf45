/**
 * --dry-run, kubectl's way: `client` keeps every write back and records what it would have sent; `server` sends
 * every API write with dryRun=All (validated and admitted by the API server, never persisted) and records it too.
 * Relay calls that change something (restore) have no server-side dry run: both modes keep them back.
 */

export type DryRunMode = 'none' | 'client' | 'server';

/** A write as it was (server) or would have been (client) sent: what the CLI prints for --dry-run. */
export interface WriteRecord {
  dryRun: 'client' | 'server';
  /** API verbs, or `post` for a call to a relay's management API. */
  verb: 'create' | 'update' | 'patch' | 'delete' | 'post';
  /** `statefulsets.apps`, `pods`, `leases.coordination.k8s.io`; a management path for relay calls. */
  resource: string;
  namespace: string;
  name: string;
  /** Patches only. */
  contentType?: string;
  /** The object (create, update), the patch, the delete options, or the request body. */
  body: unknown;
}

export class WriteLog {
  readonly mode: DryRunMode;
  readonly records: WriteRecord[] = [];
  readonly #listener: (record: WriteRecord) => void;

  constructor(mode: DryRunMode, listener: (record: WriteRecord) => void = () => undefined) {
    this.mode = mode;
    this.#listener = listener;
  }

  /**
   * Called before each write: records it in a dry run. True when the write must not be sent (client dry-run, or a
   * relay call in any dry run).
   */
  keepsBack(record: Omit<WriteRecord, 'dryRun'>, options: { relay?: boolean } = {}): boolean {
    if (this.mode === 'none') return false;
    const entry: WriteRecord = { dryRun: this.mode, ...record, body: structuredClone(record.body) };
    this.records.push(entry);
    this.#listener(entry);
    return this.mode === 'client' || options.relay === true;
  }
}
