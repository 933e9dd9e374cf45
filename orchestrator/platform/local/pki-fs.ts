/**
 * File-system helpers for the local PKI: atomic writes and a cross-process lock on the PKI folder.
 * Kept apart from pki.ts so the crypto code reads without the plumbing.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PkiError } from './pki-errors.ts';

const TEMP_SUFFIX = '.tmp';

/**
 * Writes `data` to `file` so that no reader ever sees a partial file: write a uniquely named temp
 * file in the same directory (same file system, so rename is atomic), fsync it, then rename over
 * the target. The mode is set on the temp file before any data is written, so a key is never
 * briefly world-readable.
 */
export async function atomicWriteFile(file: string, data: string | Uint8Array, mode: number): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
    // open()'s mode is filtered by the umask; chmod makes it exact (0600 stays 0600, 0644 stays 0644).
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(tmp, file);
  } catch (err) {
    await handle?.close().catch(() => {});
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw new PkiError('ERR_PKI_IO', `could not write ${file}: ${(err as Error).message}`, { file, cause: err });
  }
}

/** Makes completed renames durable across a crash (best effort: not every platform can fsync a directory). */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // Durability nicety only; correctness (no torn files) comes from rename.
  } finally {
    await handle?.close().catch(() => {});
  }
}

/** Removes temp files left behind by a writer that crashed between open and rename. */
export async function removeStaleTempFiles(dir: string, olderThanMs: number): Promise<void> {
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  const cutoff = Date.now() - olderThanMs;
  for (const name of entries) {
    if (!name.startsWith('.') || !name.endsWith(TEMP_SUFFIX)) continue;
    const full = path.join(dir, name);
    const stat = await fs.stat(full).catch(() => undefined);
    if (stat && stat.mtimeMs < cutoff) await fs.rm(full, { force: true }).catch(() => {});
  }
}

export interface LockOptions {
  /** Give up waiting after this long. */
  timeoutMs: number;
  /** A lock older than this is considered abandoned even if its pid looks alive (pid reuse). */
  staleMs: number;
}

interface LockRecord {
  pid: number;
  host: string;
  token: string;
  createdAt: number;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isStale(raw: string, mtimeMs: number, staleMs: number): boolean {
  if (Date.now() - mtimeMs > staleMs) return true;
  let record: Partial<LockRecord>;
  try {
    record = JSON.parse(raw) as Partial<LockRecord>;
  } catch {
    // Unparsable but young: probably being written right now by its owner; wait for it.
    return false;
  }
  if (record.host !== os.hostname() || typeof record.pid !== 'number') return false;
  return !pidAlive(record.pid);
}

/**
 * Runs `fn` while holding an exclusive lock file (created with O_EXCL, which is atomic on local
 * file systems). Serialises both concurrent processes and concurrent async callers in one
 * process, so a PKI set (CA + leaves signed by it) is never assembled from two writers' halves.
 *
 * A lock left by a dead process (same host, pid gone) or older than `staleMs` is broken. Two
 * waiters breaking the same stale lock at the same instant could both proceed; that needs a crash
 * plus a race, and ensureLocalPki re-validates the whole set on its next call anyway.
 */
export async function withFileLock<T>(lockFile: string, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const record: LockRecord = {
    pid: process.pid,
    host: os.hostname(),
    token: randomBytes(12).toString('hex'),
    createdAt: Date.now(),
  };
  const deadline = Date.now() + options.timeoutMs;
  let delay = 5;
  for (;;) {
    try {
      await fs.writeFile(lockFile, JSON.stringify(record), { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new PkiError('ERR_PKI_IO', `could not create lock ${lockFile}: ${(err as Error).message}`, {
          file: lockFile,
          cause: err,
        });
      }
    }
    const [raw, stat] = await Promise.all([
      fs.readFile(lockFile, 'utf8').catch(() => undefined),
      fs.stat(lockFile).catch(() => undefined),
    ]);
    if (raw !== undefined && stat && isStale(raw, stat.mtimeMs, options.staleMs)) {
      // Only remove it if it is still the very lock we judged stale.
      const again = await fs.readFile(lockFile, 'utf8').catch(() => undefined);
      if (again === raw) await fs.rm(lockFile, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      throw new PkiError(
        'ERR_PKI_LOCK_TIMEOUT',
        `timed out after ${options.timeoutMs} ms waiting for ${lockFile} (held by: ${raw ?? 'unknown'})`,
        { file: lockFile },
      );
    }
    // Jittered backoff so two waiters do not poll in lockstep.
    await sleep(delay + Math.floor(Math.random() * delay));
    delay = Math.min(delay * 2, 100);
  }
  try {
    return await fn();
  } finally {
    const current = await fs.readFile(lockFile, 'utf8').catch(() => undefined);
    if (current === JSON.stringify(record)) await fs.rm(lockFile, { force: true }).catch(() => {});
  }
}
