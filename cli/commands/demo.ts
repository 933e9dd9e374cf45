import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readStatus, runUpdate, type Platform, type UpdateEvent } from '../../orchestrator/index.ts';
import { VERSION } from '../../relay/version.ts';
import type { FleetCounters } from '../../loadgen/counters.ts';
import { DeviceFleet } from '../../loadgen/fleet.ts';
import { UsageError } from '../errors.ts';
import { ExitCode, exitCodeForResult } from '../exit-codes.ts';
import { colorEnabled, isInteractive, schedule, type Io } from '../io.ts';
import { demoSummaryLines, summarize, type DemoSummary } from '../render/demo-summary.ts';
import { ELAPSED_WIDTH, duration, elapsed } from '../render/format.ts';
import { jsonLine } from '../render/json.ts';
import { createStyle, type Style } from '../render/style.ts';
import type { LocalPlatformModule } from '../platforms.ts';
import type { CommandContext } from './context.ts';
import { printResult, runOrchestrated } from './orchestrated.ts';

export interface DemoFlags {
  devices: number;
  replicas: number;
  requestInterval: number;
}

export const DEMO_DEFAULTS = { devices: 300, replicas: 3, requestIntervalMs: 1000 } as const;

/** Timings chosen to keep the whole demo around 30-60 s. */
const WARM_UP_MS = 5000;
const COOL_DOWN_MS = 8000;
/** Requests in flight when the devices stop get this long to be answered (a retransmission takes up to 3 s). */
const STOP_GRACE_MS = 10_000;
const DRAIN_QUIET_MS = 2000;
/** Devices that keep talking keep their conntrack entries (and so their old relay): the drain ends by this timeout. */
const DRAIN_TIMEOUT_MS = 5000;
export const DEMO_UPDATE_TIMEOUT_MS = 120_000;
const DEVICE_LINE_EVERY_MS = 5000;

/**
 * `relayctl demo`: a local cluster, a few hundred devices talking through it, and a blue/green update from set a
 * to set b under that traffic. Ends with what the devices saw. Everything lives in a fresh temporary state dir
 * and is torn down at the end, on failure and on Ctrl-C.
 *
 * Exit: 0 only when the update succeeded and the devices saw no error, no new handshake during the update and no
 * request left unanswered; 1 when the update succeeded but the devices noticed; otherwise the update's code.
 */
export async function demoCommand(ctx: CommandContext, flags: DemoFlags): Promise<ExitCode> {
  const { io, globals } = ctx;
  if (globals.dryRun) throw new UsageError('--dry-run: the demo has nothing to preview; run it without --dry-run');
  if (globals.stateDirGiven) throw new UsageError('--state-dir: the demo always runs in a fresh temporary directory and removes it afterwards; drop --state-dir');

  const style = createStyle(colorEnabled(io, io.stderr, globals.color));
  const demoStartedAt = io.clock.now();
  // Off a terminal every line carries the seconds since the start, like the progress lines.
  const say = (text: string): void => {
    if (globals.output !== 'text') return;
    io.stderr.write(isInteractive(io, io.stderr) ? `${text}\n` : `${elapsed(io.clock.now() - demoStartedAt).padStart(ELAPSED_WIDTH)}  ${text}\n`);
  };
  const local = await ctx.platforms.local();
  const stateDir = await mkdtemp(join(tmpdir(), 'relayctl-demo-'));
  const stop = new AbortController();
  const unsubscribe = io.onInterrupt((count) => {
    if (count === 1) {
      io.stderr.write('\ninterrupted: stopping the devices and tearing the cluster down (Ctrl-C again to quit at once)\n');
      stop.abort(new Error('interrupted by the user'));
    } else {
      io.stderr.write(`quitting without teardown: relay processes may be left; run "relayctl teardown --state-dir ${stateDir}"\n`);
    }
  });

  const options = { stateDir, name: globals.name };
  let fleet: DeviceFleet | null = null;
  let platform: (Platform & { close(): Promise<void> }) | null = null;
  try {
    say(style.bold(`relayctl demo: a blue/green update of ${flags.replicas} DTLS relays under live traffic from ${flags.devices} devices`));
    say(`state in ${stateDir}`);
    // Any free port: a demo must not collide with a cluster deployed on the default port.
    const info = await local.deployLocal({ ...options, replicas: flags.replicas, image: `relay:${VERSION}`, servicePort: 0 });
    say(`started set ${globals.name}-a: ${flags.replicas} relays behind a UDP front on ${info.service.address}:${info.service.port}, upstream echo on port ${info.upstream.port}`);
    checkStopped(stop.signal);

    fleet = new DeviceFleet({ host: info.service.address, port: info.service.port, serverPublicKey: info.serverPublicKey, devices: flags.devices, requestIntervalMs: flags.requestInterval });
    const connectStarted = io.clock.now();
    await fleet.connect();
    say(`connected ${flags.devices} devices in ${duration(io.clock.now() - connectStarted)}; each sends a request, then the next one about ${duration(flags.requestInterval)} after the answer`);
    checkStopped(stop.signal);
    fleet.start();
    // Handshakes after everyone connected are the ones a user watches for.
    const connected = fleet.snapshot();
    const deviceLines = startDeviceLines(io, globals.output, fleet, connected, style, demoStartedAt);
    try {
      await io.clock.sleep(WARM_UP_MS, stop.signal);
      platform = await local.openLocalPlatform(options);
      const before = await readStatus(globals.name, platform, { relays: true });
      say(`updating to relay:${VERSION}-next; devices keep their flows on the old relays (conntrack), so the old relays forward stragglers until the drain ends (${duration(DRAIN_TIMEOUT_MS)} here)`);

      const forwarded = new Map<string, number>();
      // Read and opened in the same tick: nothing is sent or answered in between.
      const inFlightAtStart = fleet.inFlight;
      const window = fleet.openWindow();
      const activeFleet = fleet;
      const { result } = await runOrchestrated(
        ctx,
        (target, observer, runOptions) =>
          runUpdate(
            {
              name: globals.name,
              owner: ctx.owner,
              image: `relay:${VERSION}-next`,
              drainQuietMs: DRAIN_QUIET_MS,
              timeouts: { overallMs: globals.timeoutMs ?? DEMO_UPDATE_TIMEOUT_MS, drainMs: DRAIN_TIMEOUT_MS },
            },
            target,
            (event: UpdateEvent) => {
              if (event.type === 'drain-progress') forwarded.set(event.pod, event.forwardedDatagrams);
              observer(event);
            },
            runOptions,
          ),
        { platform: platform, signal: stop.signal, footer: () => [deviceLine(activeFleet, connected, style)], origin: demoStartedAt, printResult: false },
      );
      const during = window.close();
      const inFlight = { atStart: inFlightAtStart, atEnd: fleet.inFlight };
      // An interrupted update's "run it again" advice makes no sense here: the cluster is about to go.
      checkStopped(stop.signal);
      if (globals.output === 'text') printResult(ctx, result);

      if (result.code === 'succeeded') {
        say(`devices keep running on the new set for ${duration(COOL_DOWN_MS)}`);
        await io.clock.sleep(COOL_DOWN_MS, stop.signal);
      }
      const after = await readStatus(globals.name, platform, { relays: true });
      deviceLines.stop();
      const { unanswered } = await fleet.stop(STOP_GRACE_MS);
      const whole = fleet.snapshot();
      const summary = summarize({ result, whole, during, inFlight, unanswered, before, after, forwarded, devices: flags.devices, service: info.service });
      writeSummary(io, globals.output, summary, createStyle(colorEnabled(io, io.stdout, globals.color)));
      if (result.code !== 'succeeded') return exitCodeForResult(result);
      return summary.devicesNoticed ? ExitCode.Unexpected : ExitCode.Success;
    } finally {
      deviceLines.stop();
    }
  } catch (error) {
    if (stop.signal.aborted) return ExitCode.Interrupted;
    throw error;
  } finally {
    unsubscribe();
    await fleet?.close();
    await platform?.close();
    await teardown(io, local, options, say);
    if (stop.signal.aborted) io.stderr.write('interrupted; the demo cluster was torn down\n');
  }
}

function checkStopped(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason;
}

async function teardown(io: Io, local: LocalPlatformModule, options: { stateDir: string; name: string }, say: (text: string) => void): Promise<void> {
  try {
    await local.teardownLocal(options);
    await rm(options.stateDir, { recursive: true, force: true });
    say(`tore the cluster down and removed ${options.stateDir}`);
  } catch (error) {
    io.stderr.write(`teardown failed: ${(error as Error).message}; relay processes may be left: run "relayctl teardown --state-dir ${options.stateDir}"\n`);
  }
}

/**
 * The devices' figures in one line, what a user watches first: errors and new handshakes (after everyone
 * connected) come first so they stay visible on an 80-column terminal, where the line may be cut.
 */
export function deviceLine(fleet: Pick<DeviceFleet, 'connected' | 'size' | 'snapshot'>, connected: FleetCounters, style: Style): string {
  const counters = fleet.snapshot();
  const errors = counters.transmissionErrors;
  const handshakes = counters.handshakes - connected.handshakes;
  return (
    `devices ${fleet.connected}/${fleet.size}  ${errors === 0 ? 'errors 0' : style.bad(`errors ${errors}`)}  ` +
    `${handshakes === 0 ? 'new handshakes 0' : style.bad(`new handshakes ${handshakes}`)}  retransmissions ${counters.retransmissions}  ` +
    `requests ${counters.requests}  answered ${counters.answered}`
  );
}

/** Off a terminal the live footer does not exist: a device line every few seconds instead (JSON lines with -o json). */
function startDeviceLines(io: Io, output: 'text' | 'json', fleet: DeviceFleet, connected: FleetCounters, style: Style, startedAt: number): { stop(): void } {
  if (output === 'text' && isInteractive(io, io.stderr)) return { stop: () => undefined };
  let cancel: (() => void) | null = null;
  let stopped = false;
  const tick = (): void => {
    if (stopped) return;
    if (output === 'json') io.stdout.write(`${jsonLine({ type: 'devices', at: io.clock.now(), time: new Date(io.clock.now()).toISOString(), connected: fleet.connected, ...fleet.snapshot() })}\n`);
    else io.stderr.write(`${elapsed(io.clock.now() - startedAt).padStart(ELAPSED_WIDTH)}  ${deviceLine(fleet, connected, style)}\n`);
    cancel = schedule(io.clock, DEVICE_LINE_EVERY_MS, tick);
  };
  tick();
  return {
    stop() {
      stopped = true;
      cancel?.();
    },
  };
}

function writeSummary(io: Io, output: 'text' | 'json', summary: DemoSummary, style: Style): void {
  if (output === 'json') io.stdout.write(`${jsonLine({ ...summary, at: io.clock.now(), time: new Date(io.clock.now()).toISOString() })}\n`);
  else io.stdout.write(`${demoSummaryLines(summary, style).join('\n')}\n`);
}
