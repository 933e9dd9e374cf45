import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { MINIMUM_NODE, nodeIsRecentEnough } from '../../bin/require-node.js';

/**
 * Running a test file on a Node older than the project's fails at once, naming the Node and how to run the tests
 * on the project's own (vitest.config.ts), instead of deep inside vitest's failure report ("Map.groupBy is not a
 * function") after the tests that spawn relayd failed.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VITEST = join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');
const A_TEST_FILE = 'test/relay/duration.test.ts';

/** A Node older than the minimum on PATH outside node_modules (the system's), if this machine has one. */
function systemOldNode(): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir.includes('node_modules')) continue;
    const candidate = join(dir, 'node');
    if (!existsSync(candidate)) continue;
    try {
      const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim().replace(/^v/, '');
      if (!nodeIsRecentEnough(version)) return candidate;
    } catch {
      // Not runnable: look further.
    }
  }
  return null;
}

function vitestOn(node: string, nodeArgs: string[] = []) {
  return spawnSync(node, [...nodeArgs, VITEST, 'run', A_TEST_FILE], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 });
}

const expectRefused = (run: ReturnType<typeof vitestOn>, version: string, node: string): void => {
  expect(run.status, run.stderr).toBe(2);
  expect(run.stderr).toBe(
    `vitest: needs Node ${MINIMUM_NODE} or later (24 LTS recommended); this is Node ${version} at ${node}.\n` +
      "Run the tests on the project's Node 24: npm test, or npx vitest run <file> (npm and npx put node_modules/.bin/node first on PATH).\n",
  );
  // Refused before any test file was even collected.
  expect(run.stdout).not.toContain(A_TEST_FILE);
};

describe('vitest on an old Node', () => {
  test('the minimum is the one package.json promises', async () => {
    const { engines } = (await import('../../package.json', { with: { type: 'json' } })).default as { engines: { node: string } };
    expect(engines.node).toBe(`>=${MINIMUM_NODE}`);
    expect(['20.20.2', '22.18.0', '18.0.0'].map(nodeIsRecentEnough)).toEqual([false, false, false]);
    expect(['22.19.0', '22.20.1', '23.0.0', '24.21.0', '100.0.0'].map(nodeIsRecentEnough)).toEqual([true, true, true, true, true]);
  });

  test('a Node that reports 20.20.2 is refused at once, with the way to run the tests', () => {
    // This Node, claiming to be 20: what the check reads, without depending on what the machine has installed.
    const run = vitestOn(process.execPath, ['--import', 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.20.2"})']);
    expectRefused(run, '20.20.2', process.execPath);
  });

  const oldNode = systemOldNode();
  test.skipIf(oldNode === null)(`the system's own old Node (${oldNode ?? 'none on this machine'}) is refused the same way`, () => {
    const version = execFileSync(oldNode!, ['--version'], { encoding: 'utf8' }).trim().replace(/^v/, '');
    expectRefused(vitestOn(oldNode!), version, oldNode!);
  });
});
