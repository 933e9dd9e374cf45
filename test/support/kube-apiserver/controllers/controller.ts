/**
 * What every controller here shares: store events in (observe), keys on a work queue, one reconcile per key, and
 * `idle()` / `errors` / `stop()` for the server's settled(), controllerErrors() and close().
 */
import type { ObjectStore, StoreEvent } from '../store.ts';
import { WorkQueue } from './work-queue.ts';

export abstract class Controller {
  protected readonly queue: WorkQueue;
  private readonly unsubscribe: () => void;

  constructor(name: string, store: ObjectStore) {
    this.queue = new WorkQueue(name, (key) => this.reconcile(key));
    this.unsubscribe = store.subscribe((event) => this.observe(event));
  }

  /** Turns a store event into the keys to reconcile (queue.add). */
  protected abstract observe(event: StoreEvent): void;

  protected abstract reconcile(key: string): void | Promise<void>;

  idle(): Promise<void> {
    return this.queue.idle();
  }

  get errors(): readonly { key: string; error: unknown }[] {
    return this.queue.errors;
  }

  stop(): void {
    this.unsubscribe();
    this.queue.stop();
  }
}
