/**
 * A load-generator worker thread: one DeviceFleet with its share of the devices, the request rate and the
 * handshake rate, a latency histogram of its own, and its event-loop delay. It does what the main thread asks
 * (generator.ts) and answers every request with one message, in order.
 */
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { DeviceFleet, type Gate } from './fleet.ts';
import { LatencyHistogram } from './histogram.ts';
import type { FromWorker, ToWorker, WorkerSample, WorkerSetup } from './messages.ts';
import { Pacer } from './pacer.ts';

if (parentPort === null) throw new Error('loadgen/worker.ts runs as a worker thread (see generator.ts)');
const port = parentPort;
const setup = workerData as WorkerSetup;

const latency = new LatencyHistogram();
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let utilizationMark: EventLoopUtilization = performance.eventLoopUtilization();

const requestGate: Gate | undefined = setup.requestsPerSecond === null ? undefined : new Pacer(setup.requestsPerSecond);
const fleet = new DeviceFleet({
  host: setup.host,
  port: setup.port,
  serverPublicKey: Buffer.from(setup.serverPublicKey),
  devices: setup.devices,
  // Enough handshakes in flight for the paced rate at a quarter of a second each; the gate sets the pace.
  connectConcurrency: Math.max(8, Math.ceil(setup.handshakesPerSecond / 4)),
  // Californium's benchmark client: the next request as soon as the answer came; --rate caps the total.
  requestIntervalMs: 0,
  payloadBytes: setup.payloadBytes,
  ...(setup.exchange === undefined ? {} : { exchange: setup.exchange }),
  ...(requestGate === undefined ? {} : { requestGate }),
  handshakeGate: new Pacer(setup.handshakesPerSecond),
  latency,
});

function sample(): WorkerSample {
  const now = performance.eventLoopUtilization();
  const utilization = performance.eventLoopUtilization(now, utilizationMark).utilization;
  utilizationMark = now;
  const result: WorkerSample = {
    counters: fleet.snapshot(),
    latency: latency.takeData(),
    clients: fleet.connected,
    inFlight: fleet.inFlight,
    loopDelayMaxMs: loopDelay.count === 0 ? 0 : loopDelay.max / 1e6,
    loopDelayP99Ms: loopDelay.count === 0 ? 0 : loopDelay.percentile(99) / 1e6,
    utilization,
  };
  loopDelay.reset();
  return result;
}

function send(message: FromWorker): void {
  port.postMessage(message);
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'connect': {
      const result = await fleet.connect({ tolerateFailures: true });
      const error = result.lastError as (Error & { code?: unknown }) | null;
      send({
        type: 'connected',
        connected: result.connected,
        failed: result.failed,
        lastError: error === null ? null : { code: typeof error.code === 'string' ? error.code : null, message: error.message },
      });
      return;
    }
    case 'start':
      fleet.start();
      send({ type: 'started' });
      return;
    case 'sample':
      send({ type: 'sample', sample: sample() });
      return;
    case 'stop': {
      const { unanswered } = await fleet.stop(message.graceMs);
      send({ type: 'stopped', unanswered, sample: sample() });
      return;
    }
    case 'close':
      await fleet.close();
      loopDelay.disable();
      send({ type: 'closed' });
      port.close();
      return;
  }
}

port.on('message', (message: ToWorker) => {
  handle(message).catch((error: unknown) => send({ type: 'failed', message: error instanceof Error ? error.message : String(error) }));
});
send({ type: 'ready' });
