import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../lib/duration.ts';
import { parseImageReference } from '../lib/image-reference.ts';
import { KUBERNETES_UNAVAILABLE, UsageError } from './errors.ts';
import type { Io } from './io.ts';

/** kubectl's modes: client says what would be done; server has the API server check every write (dryRun=All). */
export type DryRunMode = 'client' | 'server';

/** Global flags, checked once (each bad one named), with every default set here. */
export interface GlobalOptions {
  /** Only local exists in this build; --platform kubernetes and its flags are refused as usage errors. */
  readonly platform: 'local';
  /** --timeout; null: the command's own default. */
  readonly timeoutMs: number | null;
  /** --dry-run[=client|server]; null without it (or with --dry-run=none). Platforms receive it with open(). */
  readonly dryRun: DryRunMode | null;
  readonly output: 'text' | 'json';
  /** Absolute. */
  readonly stateDir: string;
  /** Whether --state-dir was given on the command line (the demo refuses it rather than ignore it). */
  readonly stateDirGiven: boolean;
  /**
   * The fleet: the NAME argument or --name when given, else the current fleet (fleet.ts); before that is
   * resolved, the default name.
   */
  readonly name: string;
  /** Whether the fleet was named (NAME or --name) rather than found. */
  readonly nameGiven: boolean;
  /** False with --no-color; NO_COLOR and non-terminals are decided per stream (io.ts). */
  readonly color: boolean;
}

export const PLATFORMS = ['local', 'kubernetes'] as const;
export const OUTPUTS = ['text', 'json'] as const;
export const DRY_RUN_MODES = ['none', 'client', 'server'] as const;
export const DEFAULT_STATE_DIR = './.relayctl';
export const DEFAULT_NAME = 'relay';

// DNS-1123 label, short enough for `<name>-b-<ordinal>`; the orchestrator checks the same rule.
const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAME_MAX = 50;

/**
 * kubectl's spelling: a bare --dry-run means client, a mode needs "=" (--dry-run=server). A flag whose value is
 * optional would otherwise swallow the next word (`--dry-run update`), so the bare flag is made explicit here.
 */
export function normalizeArgv(argv: readonly string[]): string[] {
  const end = argv.indexOf('--');
  return argv.map((arg, index) => (arg === '--dry-run' && (end < 0 || index < end) ? '--dry-run=client' : arg));
}

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

/** Commander argument parser for image references (lib/image-reference.ts). */
export function imageArg(value: string): string {
  try {
    parseImageReference(value);
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message}.`);
  }
  return value;
}

export interface RawGlobals {
  platform?: string;
  namespace?: string;
  context?: string;
  kubeconfig?: string;
  timeout?: number;
  dryRun?: string;
  output?: string;
  stateDir?: string;
  name?: string;
  color?: boolean;
}

/**
 * Checks the global flags. `positionalName` is the command's NAME argument: it and --name are two spellings of
 * the same thing, so both given and different is a usage error.
 */
export function resolveGlobals(raw: RawGlobals, io: Io, sources: { stateDirGiven: boolean; positionalName?: string | undefined }): GlobalOptions {
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
  const dryRun = raw.dryRun ?? 'none';
  if (dryRun !== 'none' && dryRun !== 'client' && dryRun !== 'server') throw new UsageError(`--dry-run: expected none, client or server, got "${dryRun}"`);
  const { positionalName } = sources;
  if (positionalName !== undefined && raw.name !== undefined && positionalName !== raw.name) {
    throw new UsageError(`the fleet is named twice, "${positionalName}" and --name "${raw.name}": give one of them`);
  }
  const requested = positionalName ?? raw.name;
  if (requested !== undefined && (!NAME_PATTERN.test(requested) || requested.length > NAME_MAX)) {
    const what = positionalName !== undefined ? 'NAME' : '--name';
    throw new UsageError(`${what}: "${requested}" is not a valid fleet name (expected a DNS label: lowercase letters, digits and '-', at most ${NAME_MAX} characters)`);
  }
  const stateDir = raw.stateDir ?? DEFAULT_STATE_DIR;
  if (stateDir.trim() === '') throw new UsageError('--state-dir: expected a directory path, got an empty string');
  return Object.freeze({
    platform,
    timeoutMs: raw.timeout ?? null,
    dryRun: dryRun === 'none' ? null : dryRun,
    output,
    stateDir: isAbsolute(stateDir) ? stateDir : resolve(io.cwd, stateDir),
    stateDirGiven: sources.stateDirGiven,
    name: requested ?? DEFAULT_NAME,
    nameGiven: requested !== undefined,
    color: raw.color ?? true,
  });
}

/**
 * --state-dir must be a directory, or not exist yet (deploy makes it). A file there, or a file on the way, is a
 * usage error named as such, not an I/O failure deep inside the platform.
 */
export async function checkStateDir(stateDir: string): Promise<void> {
  try {
    const found = await stat(stateDir);
    if (!found.isDirectory()) throw new UsageError(`--state-dir ${stateDir}: is a file, not a directory; give a directory (it is made if missing)`);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new UsageError(`--state-dir ${stateDir}: a part of the path is a file, not a directory`);
    if (code === 'EACCES') throw new UsageError(`--state-dir ${stateDir}: permission denied`);
    throw error;
  }
}
