import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A restore of 100,000 sessions leaves a few hundred MB of short-lived garbage (decoded records,
 * stream chunks) that V8 collects lazily, so the pod's RSS would stay near its peak and count
 * against its memory limit. One full collection right after a large restore gives it back.
 */
let collect: ((options?: object) => void) | null | undefined;

/** `compact`: the last-resort kind of full collection, which also compacts and gives pages back. */
export function collectGarbageNow(compact = false): boolean {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as (options?: object) => void;
    } catch {
      collect = null;
    }
  }
  if (collect === null) return false;
  collect(compact ? { type: 'major', execution: 'sync', flavor: 'last-resort' } : undefined);
  return true;
}
