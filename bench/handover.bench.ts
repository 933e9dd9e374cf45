/**
 * Session handover between two relayd processes at 1,000 / 10,000 / 100,000 sessions: export and
 * import rate, bytes per session, the pause window, and the memory of parked sessions.
 *
 *   npm run bench:handover -- [--sizes 1000,10000,100000]
 *
 * Relay A is loaded with N synthetic sessions through the real restore path, plus a few real
 * devices that keep sending; then relay B restores from A. The pause window is measured twice: as
 * A reports it (paused until commit) and as the devices see it (longest request in flight across
 * the switch, first datagram queued to its answer from B).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { DeviceFleet } from '../loadgen/fleet.ts';
import { readRunningProcess } from '../loadgen/usage.ts';
import { UpstreamEcho } from '../orchestrator/platform/local/upstream-echo.ts';
import { metricValue, startRelay, testPki } from '../test/support/relayd.ts';
import { SyntheticPredecessor, syntheticSessions } from '../test/support/synthetic-predecessor.ts';
import { fmt, machine, mib } from './format.ts';

const processUsage = (pid: number) => readRunningProcess(pid, 'relayd');

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '1000,10000,100000' }, devices: { type: 'string', default: '20' }, 'relay-node-args': { type: 'string', default: '' } } });
/** Node/V8 flags for the two relays, e.g. "--max-semi-space-size=4" to see what the young generation costs. */
const relayNodeArgs = values['relay-node-args'].split(' ').filter((arg) => arg !== '');
const sizes = values.sizes.split(',').map(Number);
const realDevices = Number(values.devices);

const env = await testPki();
const echo = new UpstreamEcho();
const upstream = `127.0.0.1:${(await echo.listen()).port}`;
console.log(`machine: ${machine()}`);
console.log('Reference (Californium): save 4,000 connections in 44-89 ms, load in 54 ms, about 297 bytes each.\n');
const rows: string[] = [];

for (const size of sizes) {
  const relayArgs = ['--await-restore', '--park-after', '1h', '--max-sessions', String(size + 1000)];
  const predecessor = new SyntheticPredecessor(env.pki, syntheticSessions(size));
  const predecessorUrl = await predecessor.listen();
  const a = await startRelay(env.pki, { name: 'relay-a-0', upstream, args: relayArgs, nodeArgs: relayNodeArgs });
  const b = await startRelay(env.pki, { name: 'relay-b-0', upstream, args: relayArgs, nodeArgs: relayNodeArgs });
  try {
    const rssIdle = processUsage(a.child.pid!).rssBytes;
    const load = await env.operator.restore(a.mgmtUrl, { from: predecessorUrl, commitTimeoutMs: 60_000 });
    // Let the transient garbage of the import go before measuring what the sessions themselves hold.
    await sleep(7_000);
    const rssParked = processUsage(a.child.pid!).rssBytes;
    const parkedMetrics = await env.operator.metrics(a.mgmtUrl);
    const heapParked = metricValue(parkedMetrics, 'nodejs_heap_size_used_bytes');
    const heapTotal = metricValue(parkedMetrics, 'nodejs_heap_size_total_bytes');
    const external = metricValue(parkedMetrics, 'nodejs_external_memory_bytes');

    // Live devices sending throughout: the next request as soon as the answer came; a lost one is not retried.
    const fleet = new DeviceFleet({ host: '127.0.0.1', port: a.dtlsPort, serverPublicKey: env.pki.dtls.publicKeyDer, devices: realDevices, requestIntervalMs: 0, exchange: { ackTimeoutMs: 5_000, maxRetransmit: 0 } });
    await fleet.connect();
    fleet.start();
    await sleep(300);
    const cpuA = processUsage(a.child.pid!).cpuSeconds;
    const cpuB = processUsage(b.child.pid!).cpuSeconds;
    const window = fleet.openWindow();
    const started = performance.now();
    const outcome = await env.operator.restore(b.mgmtUrl, { from: a.mgmtUrl, commitTimeoutMs: 60_000 });
    const wall = performance.now() - started;
    await sleep(300);
    const { latencyMaxMs: worst, transmissionErrors: lost, handshakes: handshakesAfter } = window.close();
    await fleet.stop(5_000);
    const exportCpu = processUsage(a.child.pid!).cpuSeconds - cpuA;
    const importCpu = processUsage(b.child.pid!).cpuSeconds - cpuB;
    const total = outcome.sessions;
    const rssB = processUsage(b.child.pid!).rssBytes;
    rows.push([
      `${fmt(size)} sessions (+${realDevices} live devices)`,
      `  handover A->B: ${fmt(total)} sessions, ${fmt(outcome.bytes)} bytes = ${fmt(outcome.bytes / total, 1)} B/session`,
      `  wall time (request to commit): ${wall.toFixed(1)} ms = ${fmt(total / (wall / 1000))} sessions/s end to end`,
      `  CPU: A (export) ${(exportCpu * 1000).toFixed(0)} ms = ${fmt(total / Math.max(exportCpu, 0.001))} sessions/s; B (import) ${(importCpu * 1000).toFixed(0)} ms = ${fmt(total / Math.max(importCpu, 0.001))} sessions/s`,
      `  pause window: A paused ${outcome.pauseMs} ms; devices' worst request across the switch ${worst.toFixed(1)} ms; requests lost ${lost}; new handshakes ${handshakesAfter}`,
      `  first load into A (synthetic predecessor -> A): ${load.durationMs} ms = ${fmt(size / (load.durationMs / 1000))} sessions/s`,
      `  RSS of A: idle ${mib(rssIdle)}, with ${fmt(size)} parked sessions ${mib(rssParked)} (${fmt((rssParked - rssIdle) / size)} B/session; JS heap in use ${mib(heapParked)} of ${mib(heapTotal)}, external ${mib(external)}); B right after import ${mib(rssB)}`,
    ].join('\n'));
    const phases = b.logs.filter((l) => l.msg === 'restore committed; serving').at(-1)?.phasesMs;
    const streamed = a.logs.filter((l) => l.msg === 'state streamed; waiting for commit').at(-1);
    rows[rows.length - 1] += `\n  phases on B: ${JSON.stringify(phases)}; on A: export ${String(streamed?.exportMs)} ms, encode+stream ${String(streamed?.streamMs)} ms`;
    console.log(rows.at(-1) + '\n');
    await fleet.close();
  } finally {
    await Promise.all([a.stop(), b.stop(), predecessor.close()]);
  }
}

await echo.close();
await env.cleanup();
