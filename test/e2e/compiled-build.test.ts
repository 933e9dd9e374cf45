/**
 * The build (`npm run build`, tsconfig.build.json) into a temporary folder: the compiled relayd and relayctl
 * run with type stripping switched off, and the compiled relayd really starts and answers on its health port.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELAYD_NODE_FLAGS } from '../../relay/runtime-flags.ts';
import { UpstreamEcho } from '../../orchestrator/platform/local/upstream-echo.ts';
import { testPki } from '../support/relayd.ts';
import { packageOf, RECORD_IMPORTS, RELAYCTL_ONLY_PACKAGES, resolvedBy, ROOT } from '../relay/module-graph.ts';

const NO_TYPES = '--no-experimental-strip-types';

describe('the compiled build', () => {
  let out: string;
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'relayctl-build-'));
    const build = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], { encoding: 'utf8', timeout: 120_000 });
    expect(build.status, `${build.stdout}${build.stderr}`).toBe(0);
    // Packages resolve from the output's parent folders, as /app/node_modules does in the image.
    await symlink(join(ROOT, 'node_modules'), join(out, 'node_modules'), 'dir');
  }, 150_000);
  afterAll(() => rm(out, { recursive: true, force: true }));

  it('emits JavaScript only, with package.json (type: module, version) beside it', () => {
    for (const file of ['relay/main.js', 'cli/main.js', 'package.json']) expect(existsSync(join(out, file)), file).toBe(true);
    const files = readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((file) => !file.startsWith('node_modules'));
    expect(files.filter((file) => file.endsWith('.ts'))).toEqual([]);
    expect(files.some((file) => file.startsWith('test') || file.startsWith('bench'))).toBe(false);
  });

  it('every module started by file name (processes, worker threads) is in the build', () => {
    // They are reached by new URL(<from sources> ? './x.ts' : './x.js', import.meta.url), not by an import tsc follows.
    const files = readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.js') && !file.startsWith('node_modules'));
    const started: string[] = [];
    const sourceOnly: string[] = [];
    for (const file of files) {
      const text = readFileSync(join(out, file), 'utf8');
      // A './x.ts' the build cannot run, unless paired with its './x.js'.
      for (const match of text.matchAll(/'(\.{1,2}\/[^']+)\.ts'(?! : '\1\.js')/g)) sourceOnly.push(`${file}: ${match[0]}`);
      for (const match of text.matchAll(/'(\.{1,2}\/[^']+)\.ts' : '\1\.js'/g)) started.push(join(dirname(file), match[1]!) + '.js');
    }
    expect(started).toEqual(expect.arrayContaining(['relay/main.js', 'orchestrator/platform/local/service-main.js', 'loadgen/worker.js']));
    expect(started.filter((file) => !existsSync(join(out, file)))).toEqual([]);
    expect(sourceOnly).toEqual([]);
  });

  it('relayd and relayctl run without type stripping; relayd loads none of relayctl\'s packages', () => {
    const relayd = spawnSync(process.execPath, [NO_TYPES, ...RELAYD_NODE_FLAGS, `--import=${RECORD_IMPORTS}`, join(out, 'relay/main.js'), '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(relayd.status, relayd.stderr).toBe(0);
    expect(relayd.stdout).toContain('--health-port <port|off>');
    const urls = resolvedBy(relayd.stderr);
    expect(urls.filter((url) => url.startsWith('file:') && !url.includes('/node_modules/')).every((url) => url.endsWith('.js') || url.endsWith('.json')), urls.join('\n')).toBe(true);
    const packages = new Set(urls.map(packageOf));
    for (const name of RELAYCTL_ONLY_PACKAGES) expect(packages, name).not.toContain(name);

    const relayctl = spawnSync(process.execPath, [NO_TYPES, join(out, 'cli/main.js'), '--version'], { encoding: 'utf8', timeout: 20_000 });
    expect(relayctl.status, relayctl.stderr).toBe(0);
    expect(relayctl.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('the compiled relayd starts, serves devices\' port, and answers /livez and /readyz on the health port', async () => {
    const env = await testPki();
    const echo = new UpstreamEcho();
    const upstream = await echo.listen();
    const child = spawn(process.execPath, [
      NO_TYPES, ...RELAYD_NODE_FLAGS, join(out, 'relay/main.js'),
      '--pod-name', 'relay-a-0', '--pod-ip', '127.0.0.1', '--dtls-port', '0', '--mgmt-port', '0', '--tunnel-port', '0', '--health-port', '0',
      '--dtls-key', env.pki.paths.dtlsKey, '--tls-cert', env.pki.paths.relayCert, '--tls-key', env.pki.paths.relayKey, '--tls-ca', env.pki.paths.ca,
      '--upstream', `127.0.0.1:${upstream.port}`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`compiled relayd exited with ${code}`))));
      const serving = new Promise<Record<string, unknown>>((resolve) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const entry = JSON.parse(line) as Record<string, unknown>;
          if (entry.msg === 'relay serving') resolve(entry);
        });
      });
      const line = await Promise.race([serving, exited]);
      expect(line).toMatchObject({ dtls: expect.stringMatching(/^127\.0\.0\.1:\d+$/), health: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
      const healthUrl = `http://${String(line.health)}`;
      const live = await fetch(`${healthUrl}/livez`);
      expect({ status: live.status, body: await live.json() }).toEqual({ status: 200, body: { live: true, state: 'serving' } });
      expect((await fetch(`${healthUrl}/readyz`)).status).toBe(200);
      expect(await env.operator.status(`https://127.0.0.1:${String(line.mgmt).split(':').pop()}`)).toMatchObject({ pod: 'relay-a-0', state: 'serving' });
    } finally {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
      await echo.close();
      await env.cleanup();
    }
  });
});
