import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `check` until it returns something other than null, false or undefined, and returns that. For state that
 * lives in another process (a relay's readiness, a metric, a pid) where no event reaches the test: it waits for
 * the state itself, never for an amount of time, and fails naming what it waited for (and the last error) after
 * `timeoutMs`.
 */
export async function eventually<T>(
  what: string,
  check: () => T | null | false | undefined | Promise<T | null | false | undefined>,
  options: {
    timeoutMs?: number;
    everyMs?: number;
    /** How to wait between checks (default: sleep everyMs); a platform with watches can wake on its next change. */
    pause?: (ms: number) => Promise<unknown>;
  } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const deadline = performance.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const value = await check();
      if (value !== null && value !== false && value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === null ? '' : ` (last error: ${(last as Error).message})`}`);
    await (options.pause ?? sleep)(options.everyMs ?? 50);
  }
}
