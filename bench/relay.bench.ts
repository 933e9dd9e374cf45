/**
 * One relayd on loopback: full handshakes per second, echo round trips per second, relay CPU per
 * operation and memory per session (live and parked). Prints figures; asserts nothing.
 *
 *   npm run bench:relay -- [--devices 1000] [--seconds 10]
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { DeviceFleet } from '../loadgen/fleet.ts';
import { LatencyHistogram } from '../loadgen/histogram.ts';
import { latencyLine } from '../loadgen/report.ts';
import { readRunningProcess } from '../loadgen/usage.ts';
import { UpstreamEcho } from '../orchestrator/platform/local/upstream-echo.ts';
import { startRelay, testPki } from '../test/support/relayd.ts';
import { fmt, machine, mib } from './format.ts';

const { values } = parseArgs({ options: { devices: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '10' }, payload: { type: 'string', default: '100' }, 'cpu-prof': { type: 'string' }, 'relay-node-args': { type: 'string', default: '' } } });
const relayNodeArgs = values['relay-node-args'].split(' ').filter((arg) => arg !== '');
const devices = Number(values.devices);
const seconds = Number(values.seconds);
const payloadBytes = Number(values.payload);

const env = await testPki();
const echo = new UpstreamEcho();
const upstream = await echo.listen();
const relay = await startRelay(env.pki, { name: 'bench-relay', upstream: `127.0.0.1:${upstream.port}`, args: ['--park-after', '1h', '--handshake-rate-per-source', '100000'], nodeArgs: [...relayNodeArgs, ...(values['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']])] });
if (values['cpu-prof'] !== undefined) console.log(`relayd CPU profile goes to ${values['cpu-prof']} (written when it stops)`);
const pid = relay.child.pid!;
const usage = () => readRunningProcess(pid, 'relayd');
console.log(`machine: ${machine()}`);
console.log(`relayd pid ${pid}; ${devices} devices from one load-generator process (loopback)`);

const latency = new LatencyHistogram();
const fleet = new DeviceFleet({
  host: '127.0.0.1',
  port: relay.dtlsPort,
  serverPublicKey: env.pki.dtls.publicKeyDer,
  devices,
  // 32 handshakes in flight, like a fleet reconnecting after an outage.
  connectConcurrency: 32,
  handshakeTimeoutMs: 30_000,
  // Every device sends its next request as soon as the answer came; a lost one is an error, not retried.
  requestIntervalMs: 0,
  payloadBytes,
  exchange: { ackTimeoutMs: 10_000, maxRetransmit: 0 },
  latency,
});
const idle = usage();

const hsStart = performance.now();
const cpuBefore = usage();
await fleet.connect();
const hsSeconds = (performance.now() - hsStart) / 1000;
const hsCpuMs = ((usage().cpuSeconds - cpuBefore.cpuSeconds) * 1000) / devices;
console.log(`handshakes: ${devices} in ${hsSeconds.toFixed(2)} s = ${fmt(devices / hsSeconds)} /s; relay CPU ${hsCpuMs.toFixed(2)} ms per handshake`);

const rtCpuBefore = usage();
const before = fleet.snapshot();
const rtStart = performance.now();
fleet.start();
await sleep(seconds * 1000);
const answered = fleet.snapshot().answered - before.answered;
const rtSeconds = (performance.now() - rtStart) / 1000;
const rtCpu = usage().cpuSeconds - rtCpuBefore.cpuSeconds;
const { unanswered } = await fleet.stop(10_000);
const errors = fleet.snapshot().transmissionErrors - before.transmissionErrors;
console.log(`round trips (${payloadBytes}-byte payload): ${fmt(answered)} in ${rtSeconds.toFixed(1)} s = ${fmt(answered / rtSeconds)} /s; relay CPU ${((rtCpu * 1e6) / answered).toFixed(1)} us per round trip (${((rtCpu / rtSeconds) * 100).toFixed(0)}% of a core)`);
console.log(`  latency ${latencyLine(latency.summary())}; ${errors} lost, ${unanswered} unanswered at the end`);

const live = usage();
console.log(`memory: idle relay ${mib(idle.rssBytes)}; with ${devices} live sessions ${mib(live.rssBytes)} = ${fmt((live.rssBytes - idle.rssBytes) / devices)} bytes per live session (native socket + upstream socket + JS)`);

await fleet.close();
await relay.stop();
await echo.close();
await env.cleanup();
