/**
 * File primitives of the local cluster's state: whole-file JSON writes (temp + rename, so a reader never sees half
 * a file) and one cross-process lock (an O_EXCL lock file) under which every read-modify-write happens, so two
 * relayctl processes never lose each other's update. Readers do not take the lock: renames are atomic.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { unavailableError } from '../../errors.ts';
import { LocalErrorCode, LocalPlatformError } from './local-errors.ts';
import { pidAlive } from './processes.ts';

const TEMP_SUFFIX = '.tmp';

export function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  return writeTextAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

export async function writeTextAtomic(file: string, text: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    await handle.writeFile(text);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(tmp, file);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw new LocalPlatformError(LocalErrorCode.StateIo, `cannot write ${file}: ${(error as Error).message}`, { subject: file, cause: error });
  }
}

/** The parsed file, or null when it does not exist. `check` names what the file should hold. */
export async function readJson<T>(file: string, check: (value: unknown) => value is T, expected: string): Promise<T | null> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new LocalPlatformError(LocalErrorCode.StateIo, `cannot read ${file}: ${(error as Error).message}`, { subject: file, cause: error });
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
    throw new LocalPlatformError(LocalErrorCode.StateIo, `cannot list ${dir}: ${(error as Error).message}`, { subject: dir, cause: error });
  }
}

export interface StateLockOptions {
  /** Give up waiting after this long (unavailableError: the caller may retry). Default 15 s. */
  timeoutMs?: number;
  /** A lock file older than this is broken even if its pid looks alive (pid reuse). Default 60 s. */
  staleMs?: number;
}

interface LockOwner {
  pid: number;
  host: string;
  token: string;
  createdAt: number;
}

// Async callers in one process queue here instead of polling the lock file against each other.
const inProcess = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` holding the lock file `lockFile`. Critical sections are short (read, decide, write, maybe spawn) and
 * never wait on the network, so waiters do not wait long and the stale-age rule never breaks a live holder.
 */
export function withStateLock<T>(lockFile: string, fn: () => Promise<T>, options: StateLockOptions = {}): Promise<T> {
  const previous = inProcess.get(lockFile) ?? Promise.resolve();
  const run = previous.then(
    () => withLockFile(lockFile, fn, options),
    () => withLockFile(lockFile, fn, options),
  );
  const tail = run.catch(() => undefined);
  inProcess.set(lockFile, tail);
  void tail.then(() => {
    if (inProcess.get(lockFile) === tail) inProcess.delete(lockFile);
  });
  return run;
}

async function withLockFile<T>(lockFile: string, fn: () => Promise<T>, options: StateLockOptions): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const staleMs = options.staleMs ?? 60_000;
  const owner: LockOwner = { pid: process.pid, host: os.hostname(), token: randomBytes(12).toString('hex'), createdAt: Date.now() };
  const mine = JSON.stringify(owner);
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  for (;;) {
    try {
      await fs.writeFile(lockFile, mine, { flag: 'wx', mode: 0o600 });
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        await fs.mkdir(path.dirname(lockFile), { recursive: true, mode: 0o700 });
        continue;
      }
      if (code !== 'EEXIST') {
        throw new LocalPlatformError(LocalErrorCode.StateIo, `cannot create lock ${lockFile}: ${(error as Error).message}`, {
          subject: lockFile,
          cause: error,
        });
      }
    }
    const [raw, stat] = await Promise.all([
      fs.readFile(lockFile, 'utf8').catch(() => undefined),
      fs.stat(lockFile).catch(() => undefined),
    ]);
    if (raw !== undefined && stat !== undefined && isStale(raw, stat.mtimeMs, staleMs)) {
      // Remove it only if it is still the lock we judged stale, not one a faster waiter just took.
      const again = await fs.readFile(lockFile, 'utf8').catch(() => undefined);
      if (again === raw) await fs.rm(lockFile, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      throw unavailableError(`local state lock ${lockFile} still held after ${timeoutMs} ms by ${raw ?? 'an unknown process'}`);
    }
    // Jittered so that two processes do not poll in lockstep.
    await sleep(delay + Math.floor(Math.random() * delay));
    delay = Math.min(delay * 2, 50);
  }
  try {
    return await fn();
  } finally {
    const current = await fs.readFile(lockFile, 'utf8').catch(() => undefined);
    if (current === mine) await fs.rm(lockFile, { force: true }).catch(() => undefined);
  }
}

function isStale(raw: string, mtimeMs: number, staleMs: number): boolean {
  if (Date.now() - mtimeMs > staleMs) return true;
  let owner: Partial<LockOwner>;
  try {
    owner = JSON.parse(raw) as Partial<LockOwner>;
  } catch {
    // Unparsable but young: its owner may be writing it right now.
    return false;
  }
  if (owner.host !== os.hostname() || typeof owner.pid !== 'number') return false;
  return !pidAlive(owner.pid);
}
