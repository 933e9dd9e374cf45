/**
 * The file primitives both folders of the local platform stand on, the cluster's state (state-fs.ts) and the PKI
 * (pki.ts): whole-file writes a reader never sees half of, and one cross-process lock file under which every
 * read-modify-write happens. Each caller says how its failures are reported (FileErrors), so the state folder's
 * stay LocalPlatformErrors and the PKI's PkiErrors.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pidAlive } from './processes.ts';

const TEMP_SUFFIX = '.tmp';

export interface FileErrors {
  /** A read, write or lock creation failed; `message` names the file and the system's reason. */
  io(message: string, file: string, cause: unknown): Error;
  /** The lock was still held when the caller's patience ran out. */
  lockTimeout(message: string, file: string): Error;
}

/**
 * Writes `data` to `file` so that no reader ever sees a partial file: a uniquely named temp file in the same
 * directory (same file system, so the rename is atomic), fsynced, then renamed over the target. The mode is set
 * before any data is written, so a key is never briefly readable by others.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode: number, errors: FileErrors): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
    // open()'s mode is filtered by the umask; chmod makes it exact.
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(tmp, file);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw errors.io(`cannot write ${file}: ${(error as Error).message}`, file, error);
  }
}

/** Makes completed renames durable across a crash (best effort: not every platform can fsync a directory). */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // Durability only; no reader sees a torn file either way (rename).
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Removes temp files left behind by a writer that died between open and rename. */
export async function removeStaleTempFiles(dir: string, olderThanMs: number): Promise<void> {
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  const cutoff = Date.now() - olderThanMs;
  for (const name of entries) {
    if (!name.startsWith('.') || !name.endsWith(TEMP_SUFFIX)) continue;
    const full = path.join(dir, name);
    const stat = await fs.stat(full).catch(() => undefined);
    if (stat && stat.mtimeMs < cutoff) await fs.rm(full, { force: true }).catch(() => undefined);
  }
}

export interface FileLockOptions {
  /** Give up waiting after this long (errors.lockTimeout). */
  timeoutMs: number;
  /** A lock file older than this is broken even if its pid looks alive (pid reuse). */
  staleMs: number;
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
 * Runs `fn` holding the lock file `lockFile` (created with O_EXCL, atomic on local file systems; its folder is
 * made when missing). Serialises processes and the async callers of one process alike. A lock left by a dead
 * process (same host, pid gone) or older than `staleMs` is broken; critical sections must stay well below
 * `staleMs` (they read, decide, write, maybe spawn; never wait on the network).
 */
export function withFileLock<T>(lockFile: string, options: FileLockOptions, errors: FileErrors, fn: () => Promise<T>): Promise<T> {
  const previous = inProcess.get(lockFile) ?? Promise.resolve();
  const locked = (): Promise<T> => holdLockFile(lockFile, options, errors, fn);
  const run = previous.then(locked, locked);
  const tail = run.catch(() => undefined);
  inProcess.set(lockFile, tail);
  void tail.then(() => {
    if (inProcess.get(lockFile) === tail) inProcess.delete(lockFile);
  });
  return run;
}

async function holdLockFile<T>(lockFile: string, options: FileLockOptions, errors: FileErrors, fn: () => Promise<T>): Promise<T> {
  const owner: LockOwner = { pid: process.pid, host: os.hostname(), token: randomBytes(12).toString('hex'), createdAt: Date.now() };
  const mine = JSON.stringify(owner);
  const deadline = Date.now() + options.timeoutMs;
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
      if (code !== 'EEXIST') throw errors.io(`cannot create lock ${lockFile}: ${(error as Error).message}`, lockFile, error);
    }
    const [raw, stat] = await Promise.all([
      fs.readFile(lockFile, 'utf8').catch(() => undefined),
      fs.stat(lockFile).catch(() => undefined),
    ]);
    if (raw !== undefined && stat !== undefined && isStale(raw, stat.mtimeMs, options.staleMs)) {
      // Remove it only if it is still the lock we judged stale, not one a faster waiter just took.
      const again = await fs.readFile(lockFile, 'utf8').catch(() => undefined);
      if (again === raw) await fs.rm(lockFile, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      throw errors.lockTimeout(`lock ${lockFile} still held after ${options.timeoutMs} ms by ${raw ?? 'an unknown process'}`, lockFile);
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
