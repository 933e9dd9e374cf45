import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ErrorCode, isOrchestratorError } from '../../../orchestrator/errors.ts';
import { podAddress, preferredSlot, subnetFor } from '../../../orchestrator/platform/local/addresses.ts';
import { removeStaleTempFiles, writeFileAtomic, type FileErrors } from '../../../orchestrator/platform/local/atomic-files.ts';
import { LocalErrorCode, isLocalPlatformError } from '../../../orchestrator/platform/local/local-errors.ts';
import { pidAlive, processMatches } from '../../../orchestrator/platform/local/processes.ts';
import { readJson, withStateLock, writeJsonAtomic } from '../../../orchestrator/platform/local/state-fs.ts';
import { ensureLayout, isSetRecord, localPaths, nextRevision, readSet, setFile } from '../../../orchestrator/platform/local/state.ts';

/** The state folder's primitives, without relays. */
describe('local platform state files', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relayctl-state-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a missing file reads as null; an unparsable or misshapen one is an error naming the file', async () => {
    const paths = localPaths(dir);
    await ensureLayout(paths);
    expect(await readSet(paths, 'relay-a')).toBeNull();
    await writeFile(setFile(paths, 'relay-a'), '{"name": "relay-a", ');
    const corrupt = await readSet(paths, 'relay-a').catch((error: unknown) => error);
    expect(isLocalPlatformError(corrupt) && corrupt.code === LocalErrorCode.StateCorrupt && corrupt.message.includes(setFile(paths, 'relay-a'))).toBe(true);
    await writeFile(setFile(paths, 'relay-a'), '{"name": "relay-a"}');
    const misshapen = await readSet(paths, 'relay-a').catch((error: unknown) => error);
    expect(isLocalPlatformError(misshapen) && /does not hold a set record/.test(misshapen.message)).toBe(true);
  });

  test('concurrent read-modify-writes under the state lock lose no update', async () => {
    const lock = join(dir, '.lock');
    const file = join(dir, 'counter.json');
    await writeJsonAtomic(file, 0);
    const isNumber = (value: unknown): value is number => typeof value === 'number';
    await Promise.all(
      Array.from({ length: 40 }, () =>
        withStateLock(lock, async () => {
          const value = (await readJson(file, isNumber, 'a number'))!;
          await new Promise((resolve) => setImmediate(resolve));
          await writeJsonAtomic(file, value + 1);
        }),
      ),
    );
    expect(await readJson(file, isNumber, 'a number')).toBe(40);
  });

  test('a lock left by a dead process is broken; a live holder is waited for, then unavailable (retryable)', async () => {
    const lock = join(dir, '.lock');
    const child = spawn(process.execPath, ['-e', '']);
    const deadPid = await new Promise<number>((resolve) => child.once('exit', () => resolve(child.pid!)));
    expect(pidAlive(deadPid)).toBe(false);
    await writeFile(lock, JSON.stringify({ pid: deadPid, host: os.hostname(), token: 'x', createdAt: Date.now() }));
    expect(await withStateLock(lock, async () => 'got it', { timeoutMs: 2_000 })).toBe('got it');

    await writeFile(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), token: 'someone else', createdAt: Date.now() }));
    const held = await withStateLock(lock, async () => 'should not run', { timeoutMs: 200 }).catch((error: unknown) => error);
    expect(isOrchestratorError(held) && held.code === ErrorCode.Unavailable && held.transient).toBe(true);
    // The holder's lock is left alone.
    expect(JSON.parse(await readFile(lock, 'utf8')).token).toBe('someone else');
  });

  test('atomic writes: the exact mode whatever the umask, no temp file left, failures reported as the caller asks', async () => {
    const errors: FileErrors = {
      io: (message, file) => Object.assign(new Error(message), { code: 'TEST_IO', file }),
      lockTimeout: (message) => new Error(message),
    };
    const file = join(dir, 'key.pem');
    const umask = process.umask(0o077);
    try {
      await writeFileAtomic(file, 'secret', 0o640, errors);
    } finally {
      process.umask(umask);
    }
    expect(await readFile(file, 'utf8')).toBe('secret');
    if (process.platform !== 'win32') expect((await stat(file)).mode & 0o777).toBe(0o640);
    await writeFileAtomic(file, 'replaced', 0o600, errors);
    expect(await readFile(file, 'utf8')).toBe('replaced');

    const failed = await writeFileAtomic(join(dir, 'no-such-dir', 'x'), 'x', 0o600, errors).catch((error: unknown) => error);
    expect(failed).toMatchObject({ code: 'TEST_IO', file: join(dir, 'no-such-dir', 'x'), message: expect.stringMatching(/^cannot write .*ENOENT/) });
    expect((await readdir(dir)).sort()).toEqual(['key.pem']);
  });

  test('temp files of a writer that died are removed once old enough; young ones may still be renamed', async () => {
    const old = join(dir, '.ca.pem.123.abcdef.tmp');
    const young = join(dir, '.ca.pem.456.abcdef.tmp');
    await writeFile(old, 'half');
    await writeFile(young, 'half');
    await writeFile(join(dir, 'ca.pem'), 'kept');
    const past = new Date(Date.now() - 120_000);
    await utimes(old, past, past);
    await removeStaleTempFiles(dir, 60_000);
    expect((await readdir(dir)).sort()).toEqual(['.ca.pem.456.abcdef.tmp', 'ca.pem']);
  });

  test('resourceVersions only grow, across writers', async () => {
    const paths = localPaths(dir);
    await ensureLayout(paths);
    const versions = await Promise.all(Array.from({ length: 10 }, () => withStateLock(paths.lock, () => nextRevision(paths))));
    const numbers = versions.map(Number).sort((x, y) => x - y);
    expect(new Set(numbers).size).toBe(10);
    expect(numbers[9]! - numbers[0]!).toBe(9);
    expect(isSetRecord({})).toBe(false);
  });

  test('pod addresses: stable per state folder, inside 127.0.0.0/8, never 127.0.0.x, one /24 per set', () => {
    const subnet = subnetFor('/home/me/.relayctl');
    expect(subnetFor('/home/me/.relayctl')).toEqual(subnet);
    expect(subnet.b).toBeGreaterThanOrEqual(1);
    expect(subnet.b).toBeLessThanOrEqual(254);
    const a0 = podAddress(subnet, preferredSlot('relay-a'), 0);
    const b0 = podAddress(subnet, preferredSlot('relay-b'), 0);
    expect(a0).toMatch(/^127\.(\d+)\.(\d+)\.1$/);
    expect(a0.split('.').slice(0, 3)).not.toEqual(b0.split('.').slice(0, 3));
    expect(podAddress(subnet, 1, 253)).toMatch(/\.254$/);
  });

  test('a process is recognised by its command line, not its pid alone', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)', 'marker-one', 'marker-two'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => child.once('spawn', resolve));
      expect(processMatches(child.pid!, ['marker-one', 'marker-two'])).toBe(true);
      if (process.platform === 'linux') {
        expect(processMatches(child.pid!, ['marker-one', 'another-process'])).toBe(false);
        // Whole arguments only.
        expect(processMatches(child.pid!, ['marker'])).toBe(false);
      }
    } finally {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    expect(processMatches(child.pid!, ['marker-one'])).toBe(false);
  });
});
