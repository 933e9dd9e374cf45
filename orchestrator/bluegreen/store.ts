import { ErrorCode, OrchestratorError, isOrchestratorError } from '../errors.ts';
import type { SetInfo } from '../platform/platform.ts';
import { PROGRESS_ANNOTATION, isTerminal, parseProgress, serializeProgress, type ProgressRecord } from './progress.ts';
import type { Run } from './runtime.ts';
import { Reason, type Condition } from './status.ts';

/**
 * Owns the progress record: every change goes through `update`, which applies it to a copy, skips the write when
 * nothing changed, and writes once with optimistic concurrency. Writes are serialised because ordinals are handed
 * over in parallel. Callers emit their events after `update` resolves, so events never report unsaved progress.
 */
export class RecordStore {
  readonly #run: Run;
  #record: ProgressRecord;
  #set: string;
  #resourceVersion: string;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(run: Run, record: ProgressRecord, set: string, resourceVersion: string) {
    this.#run = run;
    this.#record = record;
    this.#set = set;
    this.#resourceVersion = resourceVersion;
  }

  /** Writes a brand-new record onto `set` (seq 1). */
  static async create(run: Run, set: SetInfo, record: ProgressRecord): Promise<RecordStore> {
    const store = new RecordStore(run, { ...record, seq: 0 }, set.name, set.resourceVersion);
    await store.#write({ ...record, seq: 1 }, set.name, /* expectedSeqOnConflict */ null);
    store.#emitConditions([], store.#record.conditions);
    return store;
  }

  /** Adopts a record found on the platform (resume). */
  static adopt(run: Run, record: ProgressRecord, set: SetInfo): RecordStore {
    return new RecordStore(run, record, set.name, set.resourceVersion);
  }

  get record(): Readonly<ProgressRecord> {
    return this.#record;
  }

  /** The set whose annotation holds the record. */
  get set(): string {
    return this.#set;
  }

  update(change: (draft: ProgressRecord) => void): Promise<Readonly<ProgressRecord>> {
    return this.#enqueue(async () => {
      const draft = structuredClone(this.#record);
      change(draft);
      if (sameContent(draft, this.#record)) return this.#record;
      const before = this.#record.conditions;
      await this.#write({ ...draft, seq: this.#record.seq + 1, updatedAt: this.#run.now() }, this.#set, this.#record.seq);
      this.#emitConditions(before, this.#record.conditions);
      return this.#record;
    });
  }

  /**
   * Writes the record onto `target` (which then holds it) with `change` applied. Used before the old set is
   * deleted, the only time the record changes home; the old copy stays behind with a lower seq.
   */
  moveTo(target: string, change: (draft: ProgressRecord) => void): Promise<Readonly<ProgressRecord>> {
    return this.#enqueue(async () => {
      if (target === this.#set) return this.#record;
      const set = await this.#run.call(`getSet ${target}`, () => this.#run.platform.getSet(target), { retry: true });
      if (set === null) {
        throw new OrchestratorError(ErrorCode.RecordConflict, `cannot move the progress record: ${target} is gone`, {
          reason: Reason.RecordConflict,
        });
      }
      const draft = structuredClone(this.#record);
      change(draft);
      const before = this.#record.conditions;
      this.#resourceVersion = set.resourceVersion;
      const existing = parseProgress(set.name, set.annotations);
      // A resumed run may find its own later copy there already.
      const expectedSeq = existing && existing.id === draft.id ? existing.seq : null;
      const seq = Math.max(this.#record.seq, existing?.id === draft.id ? existing.seq : 0) + 1;
      await this.#write({ ...draft, seq, updatedAt: this.#run.now() }, target, expectedSeq);
      this.#emitConditions(before, this.#record.conditions);
      return this.#record;
    });
  }

  #enqueue<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work, work);
    // Keep the queue alive after a failed write; the caller still sees the failure.
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Writes `record` to `set` expecting our last resourceVersion. On a conflict the set is re-read: if the record
   * there is still the one we wrote last (seq `expectedSeq`; null: none, or a finished update's), only other
   * fields changed and we retry; otherwise somebody else writes our record and we stop.
   */
  async #write(record: ProgressRecord, set: string, expectedSeq: number | null): Promise<void> {
    const run = this.#run;
    for (let attempt = 1; ; attempt++) {
      run.throwIfStopped();
      try {
        const written = await run.call(
          `patchSetAnnotations ${set}`,
          () => run.platform.patchSetAnnotations(set, { [PROGRESS_ANNOTATION]: serializeProgress(record) }, this.#resourceVersion),
          { retry: true },
        );
        this.#record = record;
        this.#set = set;
        this.#resourceVersion = written.resourceVersion;
        return;
      } catch (error) {
        if (!isOrchestratorError(error) || error.code !== ErrorCode.Conflict || attempt >= run.settings.retry.attempts) {
          throw error;
        }
        const current = await run.call(`getSet ${set}`, () => run.platform.getSet(set), { retry: true });
        if (current === null) {
          throw new OrchestratorError(ErrorCode.RecordConflict, `set ${set} disappeared while writing the record`, {
            reason: Reason.RecordConflict,
          });
        }
        const there = parseProgress(set, current.annotations);
        if (there !== null && there.id === record.id && there.seq === record.seq) {
          // An earlier attempt landed but its answer was lost.
          this.#record = record;
          this.#set = set;
          this.#resourceVersion = current.resourceVersion;
          return;
        }
        const untouched =
          expectedSeq === null
            ? there === null || isTerminal(there)
            : there !== null && there.id === record.id && there.seq === expectedSeq;
        if (!untouched) {
          throw new OrchestratorError(
            ErrorCode.RecordConflict,
            `progress record on ${set} was changed by someone else (found ${there ? `${there.id} seq ${there.seq}` : 'none'})`,
            { reason: Reason.RecordConflict },
          );
        }
        run.emit({
          type: 'retry',
          step: run.step,
          operation: `patchSetAnnotations ${set}`,
          attempt,
          delayMs: 0,
          error: { code: error.code, message: error.message },
        });
        this.#resourceVersion = current.resourceVersion;
      }
    }
  }

  #emitConditions(before: readonly Condition[], after: readonly Condition[]): void {
    for (const condition of after) {
      const old = before.find((candidate) => candidate.type === condition.type);
      if (old === undefined || old.status !== condition.status || old.reason !== condition.reason || old.message !== condition.message) {
        this.#run.emit({ type: 'condition', condition });
      }
    }
  }
}

function sameContent(x: ProgressRecord, y: ProgressRecord): boolean {
  return serializeProgress({ ...x, seq: 0, updatedAt: 0 }) === serializeProgress({ ...y, seq: 0, updatedAt: 0 });
}
