import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A restore of 100,000 sessions leaves a few hundred MB of short-lived garbage (decoded records,
 * stream chunks) that V8 collects lazily, so the pod's RSS would stay near its peak and count
 * against its memory limit. One full collection right after a large restore gives it back.
 */
let collect: ((options?: object) => void) | null | undefined;

/**
 * `full`: a regular full collection. `compact`: the last-resort kind, which also compacts and gives
 * pages back. `concurrent`: marks alongside JavaScript instead of stopping it.
 */
export function collectGarbageNow(kind: 'full' | 'compact' | 'concurrent' = 'full'): boolean {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as (options?: object) => void;
    } catch {
      collect = null;
    }
  }
  if (collect === null) return false;
  if (kind === 'compact') collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  else if (kind === 'concurrent') collect({ type: 'major', execution: 'async' });
  else collect();
  return true;
}
