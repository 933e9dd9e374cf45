/**
 * One relayd on loopback: full handshakes per second, echo round trips per second, relay CPU per
 * operation and memory per session (live and parked). Prints figures; asserts nothing.
 *
 *   npm run bench:relay -- [--devices 1000] [--seconds 10]
 */
import { parseArgs } from 'node:util';
import { DtlsClient, generateDeviceKey } from '../client/index.ts';
import { UpstreamEcho } from '../orchestrator/platform/local/upstream-echo.ts';
import { closeAll, request } from '../test/helpers/devices.ts';
import { startRelay, testPki } from '../test/helpers/relayd.ts';
import { fmt, machine, mib, percentile, processUsage } from './lib.ts';

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
console.log(`machine: ${machine()}`);
console.log(`relayd pid ${pid}; ${devices} devices from one load-generator process (loopback)`);

const idle = processUsage(pid);
// Handshakes: keep 32 in flight, like a fleet reconnecting after an outage.
const keys = Array.from({ length: devices }, () => generateDeviceKey());
const clients: DtlsClient[] = [];
let next = 0;
const hsStart = performance.now();
const cpuBefore = processUsage(pid);
await Promise.all(Array.from({ length: 32 }, async () => {
  while (next < devices) {
    const i = next++;
    const client = new DtlsClient({ host: '127.0.0.1', port: relay.dtlsPort, serverPublicKey: env.pki.dtls.publicKeyDer, clientKey: keys[i]!, handshakeTimeoutMs: 30_000 });
    clients[i] = client;
    await client.connect();
  }
}));
const hsSeconds = (performance.now() - hsStart) / 1000;
const afterHandshakes = processUsage(pid);
const hsCpuMs = ((afterHandshakes.cpuSeconds - cpuBefore.cpuSeconds) * 1000) / devices;
console.log(`handshakes: ${devices} in ${hsSeconds.toFixed(2)} s = ${fmt(devices / hsSeconds)} /s; relay CPU ${hsCpuMs.toFixed(2)} ms per handshake`);

// Round trips: every device sends its next request as soon as the answer came.
const latencies: number[] = [];
let stop = false;
const payload = Buffer.alloc(payloadBytes, 0x61);
const rtCpuBefore = processUsage(pid);
const rtStart = performance.now();
await Promise.all(clients.map(async (client, i) => {
  let n = 0;
  while (!stop) {
    const body = Buffer.from(payload);
    body.writeUInt32BE(i, 0);
    body.writeUInt32BE(n++, 4);
    const t0 = performance.now();
    await request(client, body, { retransmit: false, timeoutMs: 10_000 }).catch(() => undefined);
    latencies.push(performance.now() - t0);
    if (performance.now() - rtStart > seconds * 1000) stop = true;
  }
}));
const rtSeconds = (performance.now() - rtStart) / 1000;
const rtCpu = processUsage(pid).cpuSeconds - rtCpuBefore.cpuSeconds;
latencies.sort((a, b) => a - b);
console.log(`round trips (${payloadBytes}-byte payload): ${fmt(latencies.length)} in ${rtSeconds.toFixed(1)} s = ${fmt(latencies.length / rtSeconds)} /s; relay CPU ${((rtCpu * 1e6) / latencies.length).toFixed(1)} us per round trip (${((rtCpu / rtSeconds) * 100).toFixed(0)}% of a core)`);
console.log(`  latency p50 ${percentile(latencies, 50).toFixed(2)} ms, p90 ${percentile(latencies, 90).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, max ${percentile(latencies, 100).toFixed(1)} ms`);

const live = processUsage(pid);
console.log(`memory: idle relay ${mib(idle.rssBytes)}; with ${devices} live sessions ${mib(live.rssBytes)} = ${fmt((live.rssBytes - idle.rssBytes) / devices)} bytes per live session (native socket + upstream socket + JS)`);

await closeAll(clients);
await relay.stop();
await echo.close();
await env.cleanup();
