import { readFileSync } from 'node:fs';

/** How the benchmark scripts print figures and the machine they ran on. */

export const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`;
export const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export function machine(): string {
  const cpu = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  return `${cpu.trim()}, ${readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? '?'} cores, Node ${process.version}`;
}
