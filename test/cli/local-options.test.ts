import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ExitCode } from '../../cli/exit-codes.ts';
import { run } from '../../cli/program.ts';
import { ManualClock } from '../../orchestrator/index.ts';
import { memoryIo } from './helpers.ts';

/**
 * The local platform's own checks, through relayctl's default platform provider: each is refused before
 * anything is read or started, so no cluster is needed.
 */
let root: string;
let file: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'relayctl-options-'));
  file = join(root, 'a-file');
  await writeFile(file, 'not a directory');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function relayctl(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = memoryIo(new ManualClock(), { cwd: root });
  const code = await run(argv, io, { owner: 'alice@test' });
  return { code, stdout: io.stdout.text, stderr: io.stderr.text };
}

describe('local platform: refused before anything is touched', () => {
  test.each([
    [['status', '--state-dir', 'FILE'], /--state-dir FILE: is a file, not a directory/],
    [['update', '--image', 'relay:2', '--state-dir', 'FILE'], /--state-dir FILE: is a file, not a directory/],
    [['deploy', '--state-dir', 'FILE/sub'], /--state-dir FILE\/sub: a part of the path is a file, not a directory/],
  ])('%j -> 2 (a usage error, not an I/O failure)', async (argv, message) => {
    const { code, stderr } = await relayctl(argv.map((arg) => arg.replace('FILE', file)));
    expect(code).toBe(ExitCode.Usage);
    expect(stderr.replaceAll(file, 'FILE')).toMatch(message);
    expect(stderr).toMatch(/^relayctl: error: .*\nRun 'relayctl [a-z]+ --help' for usage\.\n$/);
  });

  test.each([[['update', '--image', 'relay:2']], [['deploy']], [['abort']]])('--dry-run=server %j -> 2: no API server to check writes', async (argv) => {
    const stateDir = join(root, 'server-dry-run');
    const { code, stderr } = await relayctl(['--dry-run=server', '--state-dir', stateDir, ...argv]);
    expect(code).toBe(ExitCode.Usage);
    expect(stderr).toContain('relayctl: error: --dry-run=server: the local platform has no API server to check writes against; use --dry-run=client');
    await expect(readdir(stateDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('status with nothing deployed: NotFound (1), saying how to deploy there', async () => {
    const stateDir = join(root, 'empty');
    const { code, stderr } = await relayctl(['status', '--state-dir', stateDir]);
    expect(code).toBe(ExitCode.NotFound);
    expect(stderr).toBe(`relayctl: error: no fleet found: nothing is deployed in state dir ${stateDir}\nDeploy one with "relayctl deploy --state-dir ${stateDir}".\n`);
  });
});
