/**
 * Durations in one style everywhere, Go's (time.ParseDuration, time.Duration.String): "250ms", "5s", "1m30s",
 * "1h30m". Flags of relayd and relayctl are parsed here, and everything either program prints (help defaults,
 * progress, results) is formatted here, so a value a user reads can be pasted back into a flag.
 */

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/**
 * Milliseconds of a Go-style duration. A bare number is refused ("10" could mean seconds or ms), except "0".
 * Throws a RangeError naming `what` and the part that could not be read.
 */
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
    total += Number(match[1]) * (UNITS[match[2] as string] as number);
  }
  return Math.round(total);
}

/**
 * Go-style text of `ms`, rounded to `resolutionMs`: 0s, 250ms, 1.5s, 12s, 1m30s, 1h, 1h0m5s is written 1h5s.
 * Units that are zero are left out (Go writes 1h0m0s; "1h" reads better and parses the same).
 */
export function formatDuration(ms: number, resolutionMs = 1): string {
  if (!Number.isFinite(ms)) throw new RangeError(`formatDuration: expected a finite number of ms, got ${ms}`);
  const sign = ms < 0 ? '-' : '';
  let rest = Math.round(Math.abs(ms) / resolutionMs) * resolutionMs;
  if (rest === 0) return '0s';
  if (rest < 1000) return `${sign}${Number(rest.toFixed(3))}ms`;
  const hours = Math.floor(rest / UNITS['h']!);
  rest -= hours * UNITS['h']!;
  const minutes = Math.floor(rest / UNITS['m']!);
  rest -= minutes * UNITS['m']!;
  const seconds = Number((rest / 1000).toFixed(3));
  return `${sign}${hours > 0 ? `${hours}h` : ''}${minutes > 0 ? `${minutes}m` : ''}${seconds > 0 ? `${seconds}s` : ''}`;
}

/**
 * A measured duration for people: whole ms under a second, tenths of a second under ten, whole seconds above
 * (14ms, 1.7s, 7.3s, 42s, 2m5s).
 */
export function formatMeasured(ms: number): string {
  const magnitude = Math.abs(ms);
  return formatDuration(ms, magnitude < 1000 ? 1 : magnitude < 10_000 ? 100 : 1000);
}
