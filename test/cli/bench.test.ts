import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LatencyHistogram, bucketIndex, bucketValue } from '../../cli/bench/histogram.ts';
import type { LoadSample } from '../../cli/bench/load.ts';
import { Pacer } from '../../cli/bench/pacer.ts';
import { intervalLine, intervalOf, joinIntervals, parseIntervalLine, worstWindow, type Interval } from '../../cli/bench/report.ts';
import { mergeCounters, zeroCounters, type FleetCounters } from '../../cli/devices/fleet.ts';
import { deployLocal, teardownLocal, type LocalClusterInfo } from '../../orchestrator/platform/local/index.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function counters(values: Partial<FleetCounters>): FleetCounters {
  return { ...zeroCounters(), ...values };
}

function sample(at: number, delta: Partial<FleetCounters>, latenciesMs: number[] = [], clients = 10): LoadSample {
  const latency = new LatencyHistogram();
  for (const ms of latenciesMs) latency.recordMs(ms);
  return { at, delta: counters(delta), totals: counters(delta), latency, clients, inFlight: 0, loopDelayMaxMs: 1, loopDelayP99Ms: 1, utilization: [0.1] };
}

function tick(startMs: number, values: Partial<FleetCounters>): Interval {
  return { startMs, endMs: startMs + 1000, counters: counters(values), latency: new LatencyHistogram(), clients: 10, loopDelayMaxMs: 0 };
}

describe('latency histogram', () => {
  test('every bucket is at most 1% wide, so any value is reported within 1%', () => {
    for (let value = 1; value < 2 ** 32; value = Math.ceil(value * 1.013) + 1) {
      const reported = bucketValue(bucketIndex(value));
      expect(Math.abs(reported - value) / value, `value ${value}`).toBeLessThanOrEqual(0.01);
    }
    // Below 256 µs each value has a bucket of its own.
    for (let value = 0; value < 256; value++) expect(bucketValue(bucketIndex(value))).toBe(value);
  });

  test('percentiles of a known distribution, within 1%', () => {
    const histogram = new LatencyHistogram();
    // 1..10,000 ms, once each: p50 = 5,000 ms, p90 = 9,000, p99 = 9,900, max = 10,000.
    for (let ms = 1; ms <= 10_000; ms++) histogram.recordMs(ms);
    const summary = histogram.summary();
    expect(summary.count).toBe(10_000);
    expect(summary.p50Ms! / 5000).toBeCloseTo(1, 2);
    expect(summary.p90Ms! / 9000).toBeCloseTo(1, 2);
    expect(summary.p99Ms! / 9900).toBeCloseTo(1, 2);
    expect(summary.maxMs).toBe(10_000);
    expect(summary.meanMs).toBeCloseTo(5000.5, 6);
    expect(new LatencyHistogram().summary()).toMatchObject({ count: 0, p50Ms: null, maxMs: null });
  });

  test('histograms of workers merge into the histogram of all their samples (also across threads, as data)', () => {
    const all = new LatencyHistogram();
    const workers = [new LatencyHistogram(), new LatencyHistogram(), new LatencyHistogram()];
    for (let index = 0; index < 30_000; index++) {
      const ms = ((index * 7919) % 5000) / 10 + (index % 3 === 0 ? 2000 : 0);
      all.recordMs(ms);
      workers[index % 3]!.recordMs(ms);
    }
    const merged = new LatencyHistogram();
    for (const worker of workers) merged.add(structuredClone(worker.toData()));
    expect(merged.toData()).toEqual(all.toData());
    for (const p of [1, 50, 90, 99, 99.9, 100]) expect(merged.percentileMs(p)).toBe(all.percentileMs(p));
    expect(LatencyHistogram.from(all.toData()).summary()).toEqual(all.summary());
  });
});

describe('counters and intervals', () => {
  test('samples add up into an interval; the slowest answer is the interval\'s own', () => {
    const interval = intervalOf([
      sample(2000, { requests: 100, answered: 98, retransmissions: 3, handshakes: 1 }, [1, 2, 40]),
      sample(3000, { requests: 120, answered: 119, transmissionErrors: 1 }, [5, 900], 11),
    ], 1000, 0);
    expect(interval).toMatchObject({ startMs: 1000, endMs: 3000, clients: 11 });
    expect(interval.counters).toMatchObject({ requests: 220, answered: 217, retransmissions: 3, transmissionErrors: 1, handshakes: 1 });
    expect(interval.counters.latencyMaxMs).toBe(900);
    expect(interval.latency.count).toBe(5);
  });

  test('counters of several workers add up; maxima take the larger', () => {
    const merged = [counters({ requests: 10, answered: 9, latencyMaxMs: 30 }), counters({ requests: 5, answered: 5, handshakes: 2, latencyMaxMs: 80 })].reduce(mergeCounters, zeroCounters());
    expect(merged).toMatchObject({ requests: 15, answered: 14, handshakes: 2, latencyMaxMs: 80 });
  });

  test('the interval line has the format of Californium\'s benchmark client, with handshakes added', () => {
    const interval = intervalOf([sample(10_000, { requests: 50_012, answered: 50_000, retransmissions: 250, transmissionErrors: 2, handshakes: 3 }, [], 4000)], 0, 0);
    const line = intervalLine(interval);
    expect(line).toBe('50000 requests (5000 reqs/s, 250 retransmissions (0.50%), 2 transmission errors (0.00%), 3 handshakes, 4000 clients)');
    expect(parseIntervalLine(`   10 s  ${line}`)).toEqual({ requests: 50_000, rate: 5000, retransmissions: 250, transmissionErrors: 2, handshakes: 3, clients: 4000 });
    // Nothing answered but retransmissions: no finite share.
    expect(intervalLine(intervalOf([sample(1000, { retransmissions: 7 })], 0, 0))).toBe('0 requests (0 reqs/s, 7 retransmissions (n/a), 0 transmission errors (0.00%), 0 handshakes, 10 clients)');
  });

  test('the worst window has the most retransmissions per answer; a window without answers but with trouble is worst', () => {
    const ticks = [tick(0, { answered: 5000 }), tick(1000, { answered: 4000, retransmissions: 40 }), tick(2000, { answered: 5000, retransmissions: 10 }), tick(3000, { answered: 5000 })];
    expect(worstWindow(ticks, 1)).toMatchObject({ startMs: 1000, endMs: 2000 });
    expect(worstWindow(ticks, 2)).toMatchObject({ startMs: 1000, endMs: 3000 });
    expect(joinIntervals(ticks.slice(1, 3)).counters).toMatchObject({ answered: 9000, retransmissions: 50 });
    const outage = [...ticks, tick(4000, { retransmissions: 3 }), tick(5000, { retransmissions: 900 })];
    expect(worstWindow(outage, 1)).toMatchObject({ startMs: 5000 });
    expect(worstWindow([], 10)).toBeNull();
  });

  test('the pacer grants at most its rate, in arrival order', async () => {
    const pacer = new Pacer(200);
    const order: number[] = [];
    const started = performance.now();
    await Promise.all(Array.from({ length: 60 }, async (_, index) => {
      await pacer.take();
      order.push(index);
    }));
    const seconds = (performance.now() - started) / 1000;
    // 60 at 200/s: about 0.3 s (less the few ms of burst allowed).
    expect(seconds).toBeGreaterThan(0.25);
    expect(seconds).toBeLessThan(1);
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });
});

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

  test('50 clients for 3 s against the local cluster: a line a second on stderr, the JSON document on stdout', async () => {
    const { code, stdout, stderr } = await relayctl(['bench', '--state-dir', stateDir, '--clients', '50', '--duration', '3s', '--interval', '1s', '--rate', '500', '-o', 'json']);
    const context = `exit ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`;
    expect(code, context).toBe(0);
    expect(stderr, context).toMatch(/start-up: 50\/50 clients connected/);
    const lines = stderr.split('\n').map(parseIntervalLine).filter((line) => line !== null);
    expect(lines, context).toHaveLength(3);
    for (const line of lines) {
      expect(line.clients, context).toBe(50);
      expect(line.transmissionErrors, context).toBe(0);
      // Capped at 500/s; a loaded machine may answer a little less.
      expect(line.rate, context).toBeGreaterThan(250);
      expect(line.rate, context).toBeLessThan(560);
    }
    const summary = JSON.parse(stdout) as Record<string, any>;
    expect(summary).toMatchObject({ type: 'bench-summary', clients: 50, rateCap: 500, intervalMs: 1000, target: { host: info.service.address, port: info.service.port, kind: 'local' } });
    expect(summary.startup).toMatchObject({ connected: 50, failed: 0 });
    expect(summary.run).toMatchObject({ transmissionErrors: 0, unanswered: 0, handshakes: 0 });
    expect(summary.run.requests).toBe(lines.reduce((sum, line) => sum + line.requests, 0));
    expect(summary.run.latency.count).toBe(summary.run.requests);
    expect(summary.run.latency.p50Ms).toBeGreaterThan(0);
    expect(summary.run.latency.p99Ms).toBeGreaterThanOrEqual(summary.run.latency.p50Ms);
    expect(summary.run.latency.maxMs).toBeGreaterThanOrEqual(summary.run.latency.p99Ms);
    expect(summary.intervals).toHaveLength(3);
  });

  test('text output: the summary with round-trip percentiles on stdout', async () => {
    const { code, stdout, stderr } = await relayctl(['bench', '--state-dir', stateDir, '--clients', '20', '--duration', '2s', '--interval', '1s']);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^measured run +2(\.\d)?s: [\d,]+ requests answered/m);
    expect(stdout).toMatch(/^round trip +p50 [\d.]+ m?s, p90 [\d.]+ m?s, p99 [\d.]+ m?s, max [\d.]+ m?s/m);
    expect(stderr.split('\n').filter((line) => parseIntervalLine(line) !== null)).toHaveLength(2);
  });

  test('--target with the wrong server key fails at once with a clear error', async () => {
    const wrongKey = join(stateDir, 'wrong-key.pem');
    await writeFile(wrongKey, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }));
    const started = Date.now();
    const { code, stdout, stderr } = await relayctl(['bench', '--target', `${info.service.address}:${info.service.port}`, '--server-key', wrongKey, '--clients', '5', '--duration', '1s']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain(`relayctl: error: bench: the server at ${info.service.address}:${info.service.port} does not hold the key of --server-key ${wrongKey}`);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('usage errors name the flag', async () => {
    const noKey = await relayctl(['bench', '--target', '127.0.0.1:5684']);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('--target: needs --server-key');
    const badTarget = await relayctl(['bench', '--target', 'nowhere', '--server-key', join(stateDir, 'pki', 'dtls-pub.der')]);
    expect(badTarget.code).toBe(2);
    expect(badTarget.stderr).toContain('--target: expected host:port');
  });
});
