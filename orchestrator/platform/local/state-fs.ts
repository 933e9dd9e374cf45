/**
 * JSON files of the local cluster's state: whole-file writes (atomic-files.ts: a reader never sees half a file) and
 * the state lock under which every read-modify-write happens, so two relayctl processes never lose each other's
 * update. Readers do not take the lock: renames are atomic.
 */
import fs from 'node:fs/promises';
import { unavailableError } from '../../errors.ts';
import { withFileLock, writeFileAtomic, type FileErrors } from './atomic-files.ts';
import { LocalErrorCode, LocalPlatformError } from './local-errors.ts';

const STATE_ERRORS: FileErrors = {
  io: (message, file, cause) => new LocalPlatformError(LocalErrorCode.StateIo, message, { subject: file, cause }),
  // The caller may retry: the holder's critical section is short.
  lockTimeout: (message) => unavailableError(`local state ${message}`),
};

export function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  return writeTextAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

export function writeTextAtomic(file: string, text: string): Promise<void> {
  return writeFileAtomic(file, text, 0o600, STATE_ERRORS);
}

/** The parsed file, or null when it does not exist. `check` names what the file should hold. */
export async function readJson<T>(file: string, check: (value: unknown) => value is T, expected: string): Promise<T | null> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw STATE_ERRORS.io(`cannot read ${file}: ${(error as Error).message}`, file, error);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new LocalPlatformError(LocalErrorCode.StateCorrupt, `${file} is not JSON (expected ${expected}): ${(error as Error).message}`, {
      subject: file,
      cause: error,
    });
  }
  if (!check(value)) throw new LocalPlatformError(LocalErrorCode.StateCorrupt, `${file} does not hold ${expected}`, { subject: file });
  return value;
}

export async function removeFile(file: string): Promise<void> {
  await fs.rm(file, { force: true });
}

/** Names of the `.json` files in `dir` without the extension; empty when the folder does not exist. */
export async function listJson(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).filter((name) => name.endsWith('.json') && !name.startsWith('.')).map((name) => name.slice(0, -5));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw STATE_ERRORS.io(`cannot list ${dir}: ${(error as Error).message}`, dir, error);
  }
}

export interface StateLockOptions {
  /** Give up waiting after this long (unavailableError: the caller may retry). Default 15 s. */
  timeoutMs?: number;
  /** A lock file older than this is broken even if its pid looks alive (pid reuse). Default 60 s. */
  staleMs?: number;
}

/** Runs `fn` holding the state lock `lockFile`. */
export function withStateLock<T>(lockFile: string, fn: () => Promise<T>, options: StateLockOptions = {}): Promise<T> {
  return withFileLock(lockFile, { timeoutMs: options.timeoutMs ?? 15_000, staleMs: options.staleMs ?? 60_000 }, STATE_ERRORS, fn);
}
