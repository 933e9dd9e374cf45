import { isAbsolute, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../lib/duration.ts';
import { KUBERNETES_UNAVAILABLE, UsageError } from './errors.ts';
import type { Io } from './io.ts';

/** Global flags, checked once (each bad one named), with every default set here. */
export interface GlobalOptions {
  /** Only local exists in this build; --platform kubernetes and its flags are refused as usage errors. */
  readonly platform: 'local';
  /** --timeout; null: the command's own default. */
  readonly timeoutMs: number | null;
  readonly dryRun: boolean;
  readonly output: 'text' | 'json';
  /** Absolute. */
  readonly stateDir: string;
  /** Whether --state-dir was given on the command line (the demo refuses it rather than ignore it). */
  readonly stateDirGiven: boolean;
  readonly name: string;
  /** False with --no-color; NO_COLOR and non-terminals are decided per stream (io.ts). */
  readonly color: boolean;
}

export const PLATFORMS = ['local', 'kubernetes'] as const;
export const OUTPUTS = ['text', 'json'] as const;
export const DEFAULT_STATE_DIR = './.relayctl';
export const DEFAULT_NAME = 'relay';

// DNS-1123 label, short enough for `<name>-b-<ordinal>`; the orchestrator checks the same rule.
const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAME_MAX = 50;

/** Commander argument parser for Go-style durations. */
export function durationArg(options: { allowZero?: boolean } = {}): (value: string) => number {
  return (value) => {
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch {
      throw new InvalidArgumentError('expected a duration such as 500ms, 90s, 5m or 1h30m.');
    }
    if (ms === 0 && !options.allowZero) throw new InvalidArgumentError('expected a duration greater than 0.');
    return ms;
  };
}

export function positiveIntegerArg(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number) || number < 1) {
    throw new InvalidArgumentError('expected a whole number of at least 1.');
  }
  return number;
}

export function portArg(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value.trim()) || number > 65535) throw new InvalidArgumentError('expected a port number 0..65535.');
  return number;
}

export interface RawGlobals {
  platform?: string;
  namespace?: string;
  context?: string;
  kubeconfig?: string;
  timeout?: number;
  dryRun?: boolean;
  output?: string;
  stateDir?: string;
  name?: string;
  color?: boolean;
}

export function resolveGlobals(raw: RawGlobals, io: Io, sources: { stateDirGiven: boolean }): GlobalOptions {
  const platform = raw.platform ?? 'local';
  if (platform !== 'local' && platform !== 'kubernetes') {
    throw new UsageError(`--platform: expected local or kubernetes, got "${platform}"`);
  }
  if (platform === 'kubernetes') throw new UsageError(KUBERNETES_UNAVAILABLE);
  // Flags of the other platform are refused rather than ignored: a command run against the wrong place is worse
  // than one that did not run.
  const kubernetesOnly = [
    ['--namespace', raw.namespace],
    ['--context', raw.context],
    ['--kubeconfig', raw.kubeconfig],
  ].filter(([, value]) => value !== undefined);
  if (kubernetesOnly.length > 0) {
    const flags = kubernetesOnly.map(([flag]) => flag).join(', ');
    throw new UsageError(`${flags}: ${kubernetesOnly.length === 1 ? 'applies' : 'apply'} only to --platform kubernetes, not to --platform local`);
  }
  const output = raw.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new UsageError(`--output: expected text or json, got "${output}"`);
  const name = raw.name ?? DEFAULT_NAME;
  if (!NAME_PATTERN.test(name) || name.length > NAME_MAX) {
    throw new UsageError(`--name: "${name}" is not a valid fleet name (expected a DNS label: lowercase letters, digits and '-', at most ${NAME_MAX} characters)`);
  }
  const stateDir = raw.stateDir ?? DEFAULT_STATE_DIR;
  if (stateDir.trim() === '') throw new UsageError('--state-dir: expected a directory path, got an empty string');
  return Object.freeze({
    platform,
    timeoutMs: raw.timeout ?? null,
    dryRun: raw.dryRun ?? false,
    output,
    stateDir: isAbsolute(stateDir) ? stateDir : resolve(io.cwd, stateDir),
    stateDirGiven: sources.stateDirGiven,
    name,
    color: raw.color ?? true,
  });
}
