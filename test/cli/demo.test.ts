import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';

/**
 * The demo end to end, as a user runs it: a real local cluster (relay processes, UDP front, echo), 50 simulated
 * devices, a blue/green update under their traffic, and teardown. Bounded: the child is interrupted, then killed,
 * if it runs too long.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LIMIT_MS = 120_000;

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ReturnType<typeof spawn>>();

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

function runDemo(args: string[]): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/relayctl.js', 'demo', ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // Ctrl-C first (the demo tears down), SIGKILL if that does not end it.
    const interrupt = setTimeout(() => child.kill('SIGINT'), LIMIT_MS);
    const kill = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS + 15_000);
    child.on('exit', (code) => {
      clearTimeout(interrupt);
      clearTimeout(kill);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `what the devices saw` rows: name -> [whole run, during the update]. */
function deviceTable(stdout: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    const match = /^([a-z][a-z -]+?)\s{2,}(\S+(?: \([^)]*\))?)(?:\s{2,}(\S+(?: \([^)]*\))?))?$/.exec(line);
    if (match !== null) rows.set(match[1]!, [match[2]!, match[3] ?? '']);
  }
  return rows;
}

describe('relayctl demo', () => {
  test('--devices 50: the update succeeds, no device handshakes again or sees an error, everything is torn down', { timeout: LIMIT_MS + 30_000 }, async () => {
    const started = Date.now();
    const { code, stdout, stderr } = await runDemo(['--devices', '50']);
    const elapsedMs = Date.now() - started;
    const context = `exit ${code}\n--- stdout\n${stdout}\n--- stderr (tail)\n${stderr.slice(-3000)}`;

    const stateDir = /state in (\S+)/.exec(stderr)?.[1];
    expect(stateDir, context).toBeDefined();
    expect(stderr, context).toContain(`tore the cluster down and removed ${stateDir}`);
    expect(existsSync(stateDir!)).toBe(false);
    const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((line) => line.includes(stateDir!));
    expect(left, 'processes left running').toEqual([]);

    expect(stdout, context).toMatch(/^updated relay: relay-a -> relay-b/m);
    const table = deviceTable(stdout);
    expect(table.get('handshakes')?.[1], context).toBe('0');
    expect(table.get('transmission errors'), context).toEqual(['0', '0']);
    expect(table.get('handshake failures'), context).toEqual(['0', '0']);
    expect(table.get('unanswered at the end')?.[0], context).toBe('0');
    expect(Number(table.get('answered')?.[0]), context).toBeGreaterThan(100);
    expect(stdout, context).toContain('no device noticed: 0 handshakes and 0 errors during the update');
    expect(code, context).toBe(0);
    expect(elapsedMs).toBeLessThan(90_000);
  });
});
