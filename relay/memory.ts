import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A restore of 100,000 sessions leaves a few hundred MB of short-lived garbage (decoded records,
 * stream chunks) that V8 collects lazily, so the pod's RSS would stay near its peak and count
 * against its memory limit. One full collection right after a large restore gives it back.
 */
let collect: (() => void) | null | undefined;

export function collectGarbageNow(): boolean {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as () => void;
    } catch {
      collect = null;
    }
  }
  if (collect === null) return false;
  collect();
  return true;
}
