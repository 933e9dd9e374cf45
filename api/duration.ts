/**
 * Durations as operators write them in flags of both relayd and relayctl, Go style:
 * "1h30m", "90s", "250ms", "1.5s". A bare number is refused: "10" could mean seconds or ms.
 */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

export function parseDuration(text: string, what = 'duration'): number {
  const input = text.trim();
  if (input === '' || input === '0') return 0;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < input.length) {
    const start = PART.lastIndex;
    const match = PART.exec(input);
    if (match === null) {
      throw new RangeError(`${what}: "${text}" is not a duration (expected e.g. 500ms, 30s, 5m, 1h30m) at "${input.slice(start)}"`);
    }
    total += Number(match[1]) * UNITS[match[2]!]!;
  }
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}
