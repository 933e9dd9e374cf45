import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ExitCode } from '../../cli/exit-codes.ts';
import { defaultPlatforms } from '../../cli/platforms.ts';
import { run } from '../../cli/program.ts';
import { parseIntervalLine } from '../../loadgen/report.ts';
import { systemClock } from '../../orchestrator/clock.ts';
import { deployLocal, teardownLocal, type LocalClusterInfo } from '../../orchestrator/platform/local/index.ts';
import { memoryIo } from './helpers.ts';

/**
 * `relayctl bench` against a local cluster of one relay: a real run as a user starts it (its own process, worker
 * threads, DTLS), and the checks it makes before any device starts. The load generator's parts (devices, rate cap,
 * histograms, intervals) are tested deterministically in test/loadgen; the figures themselves are benchmarks'.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('relayctl bench', () => {
  let stateDir: string;
  let info: LocalClusterInfo;

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'relayctl-bench-test-'));
    info = await deployLocal({ stateDir, name: 'relay', replicas: 1, image: 'relay:test', servicePort: 0 });
  });

  afterAll(async () => {
    await teardownLocal({ stateDir });
    await rm(stateDir, { recursive: true, force: true });
  });

  function relayctl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, ['bin/relayctl.js', ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const kill = setTimeout(() => child.kill('SIGKILL'), 25_000);
      child.on('exit', (code) => {
        clearTimeout(kill);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** relayctl in this process (no worker starts in these cases), against the real local platform. */
  async function inProcess(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const io = memoryIo(systemClock);
    const code = await run(argv, io, { platforms: defaultPlatforms });
    return { code, stdout: io.stdout.text, stderr: io.stderr.text };
  }

  test('30 clients for 2 s against the local cluster: a line a second on stderr, the JSON document on stdout, both agree', async () => {
    const { code, stdout, stderr } = await relayctl(['bench', '--state-dir', stateDir, '--clients', '30', '--duration', '2s', '--interval', '1s', '--rate', '300', '-o', 'json']);
    const context = `exit ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`;
    expect(code, context).toBe(ExitCode.Success);
    expect(stderr, context).toMatch(/start-up: 30\/30 clients connected/);
    const lines = stderr.split('\n').map(parseIntervalLine).filter((line) => line !== null);
    expect(lines, context).toHaveLength(2);
    for (const line of lines) {
      expect(line.clients, context).toBe(30);
      expect(line.transmissionErrors, context).toBe(0);
      expect(line.handshakes, context).toBe(0);
      // The cap (loadgen/pacer.ts, exact to the ms in its own test) plus the 250 ms of turns it makes up after
      // a stall of the event loop: no interval can exceed that. How much less a busy machine answers is a figure.
      expect(line.rate, context).toBeGreaterThan(0);
      expect(line.rate, context).toBeLessThanOrEqual(300 * 1.25 + 1);
    }
    const summary = JSON.parse(stdout) as Record<string, any>;
    expect(summary).toMatchObject({ type: 'bench-summary', clients: 30, rateCap: 300, intervalMs: 1000, target: { host: info.service.address, port: info.service.port, kind: 'local' } });
    expect(summary.startup).toMatchObject({ connected: 30, failed: 0 });
    expect(summary.run).toMatchObject({ transmissionErrors: 0, unanswered: 0, handshakes: 0, handshakeFailures: 0, sessionsLost: 0 });
    expect(summary.run.requests).toBe(lines.reduce((sum, line) => sum + line.requests, 0));
    expect(summary.intervals.map((interval: { requests: number }) => interval.requests)).toEqual(lines.map((line) => line.requests));
    expect(summary.run.latency.count).toBe(summary.run.requests);
    expect(summary.run.latency.p50Ms).toBeGreaterThan(0);
    expect(summary.run.latency.p99Ms).toBeGreaterThanOrEqual(summary.run.latency.p50Ms);
    expect(summary.run.latency.maxMs).toBeGreaterThanOrEqual(summary.run.latency.p99Ms);
    // Where the CPU went on the local cluster: its relay set, the service, the load generator.
    expect(Object.keys(summary.cpu.percentOfCore).sort()).toEqual(['load generator', 'relay-a', 'service']);
  });

  test('text output: the summary with round-trip percentiles on stdout', async () => {
    const { code, stdout, stderr } = await inProcess(['bench', '--state-dir', stateDir, '--clients', '10', '--workers', '1', '--duration', '1s', '--interval', '1s']);
    expect(code, stderr).toBe(ExitCode.Success);
    expect(stdout).toMatch(/^measured run +1(\.\d+)?s: [\d,]+ requests answered/m);
    expect(stdout).toMatch(/^round trip +p50 [\d.]+ m?s, p90 [\d.]+ m?s, p99 [\d.]+ m?s, max [\d.]+ m?s/m);
    expect(stderr.split('\n').filter((line) => parseIntervalLine(line) !== null)).toHaveLength(1);
  });

  test('--target with the wrong server key fails on the probe handshake, before any device starts', async () => {
    const wrongKey = join(stateDir, 'wrong-key.pem');
    await writeFile(wrongKey, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));
    const { code, stdout, stderr } = await inProcess(['bench', '--target', `${info.service.address}:${info.service.port}`, '--server-key', wrongKey, '--clients', '5', '--duration', '1s']);
    expect(code).toBe(ExitCode.Usage);
    expect(stdout).toBe('');
    // The signature check failed (not the 10 s probe timeout, whose message says nothing answered).
    expect(stderr).toBe(
      `relayctl: error: bench: the server at ${info.service.address}:${info.service.port} does not hold the key of --server-key ${wrongKey}: ` +
        'its handshake signature does not verify against that key (ERR_DTLS_BAD_SERVER_SIGNATURE). Give the key the relays serve with (SPKI DER or PEM).\n',
    );
  });

  test('usage errors name the flag', async () => {
    const noKey = await inProcess(['bench', '--target', '127.0.0.1:5684']);
    expect(noKey.code).toBe(ExitCode.Usage);
    expect(noKey.stderr).toContain('--target: needs --server-key');
    const badTarget = await inProcess(['bench', '--target', 'nowhere', '--server-key', join(stateDir, 'pki', 'dtls-pub.der')]);
    expect(badTarget.code).toBe(ExitCode.Usage);
    expect(badTarget.stderr).toContain('--target: expected host:port');
  });
});
