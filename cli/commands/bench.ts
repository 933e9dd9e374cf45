import { diffCounters, type FleetCounters } from '../../loadgen/counters.ts';
import { LatencyHistogram, type LatencySummary } from '../../loadgen/histogram.ts';
import { UsageMonitor, localProcesses } from '../../loadgen/usage.ts';
import { LoadGenerator, type LoadSample, type StartupResult } from '../../loadgen/generator.ts';
import { countsJson, formatShare, intervalJson, intervalLine, intervalOf, latencyLine, windowLine, worstWindow, type Interval } from '../../loadgen/report.ts';
import { Sampler } from '../../loadgen/sampler.ts';
import { BenchError, localTarget, parseHostPort, probeTarget, readServerKey, type BenchTarget } from './bench-target.ts';
import { LiveBlock } from '../render/terminal.ts';
import { UsageError, errorText } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { colorEnabled, isInteractive } from '../io.ts';
import { duration, elapsed } from '../render/format.ts';
import { jsonLine } from '../render/json.ts';
import { createStyle, type Style } from '../render/style.ts';
import type { CommandContext } from './context.ts';

export interface BenchFlags {
  clients: number;
  payload: number;
  /** Requests per second over all devices; undefined: no cap. */
  rate?: number;
  handshakeRate: number;
  /** ms. */
  interval: number;
  /** ms of measured run, after the start-up. */
  duration: number;
  workers?: number;
  target?: string;
  serverKey?: string;
}

export const BENCH_DEFAULTS = { clients: 1000, payloadBytes: 32, handshakeRate: 200, intervalMs: 10_000, durationMs: 60_000 } as const;
/** The relay drops larger payloads (README: node-mbed-dtls hardening); the fleet tags each request in 16 bytes. */
const PAYLOAD_RANGE = { min: 16, max: 800 } as const;
const PROBE_TIMEOUT_MS = 10_000;
/** Requests in flight when the run ends get this long to be answered; the rest are reported unanswered. */
const STOP_GRACE_MS = 5_000;
/** Live view refresh; also the tick of the interval arithmetic, never coarser than the interval. */
const MAX_TICK_MS = 1_000;
/** Off a terminal, a start-up progress line every this many seconds. */
const STARTUP_LINE_EVERY = 5;

/**
 * `relayctl bench`: simulated devices, each with one DTLS session, sending confirmable-style requests (the
 * next when the answer came) with CoAP's retransmission rules, against the local cluster's service or any
 * address. The start-up (paced handshakes) is reported apart from the measured run. Every --interval one line
 * on stderr in the format of Californium's benchmark client; at the end a summary (stdout), or with -o json one
 * JSON document.
 */
export async function benchCommand(ctx: CommandContext, flags: BenchFlags): Promise<ExitCode> {
  const { io, globals } = ctx;
  checkFlags(ctx, flags);
  const target = await resolveTarget(ctx, flags);
  const interactive = globals.output === 'text' && isInteractive(io, io.stderr);
  const style = createStyle(colorEnabled(io, io.stderr, globals.color));
  const live = interactive ? new LiveBlock(io.stderr) : null;
  const startedAt = performance.now();
  let runStartedAt: number | null = null;
  // Plain lines of the measured run carry the seconds since it began.
  const say = (text: string): void => {
    if (live !== null) live.print(text);
    else io.stderr.write(runStartedAt === null ? `${text}\n` : `${elapsed(performance.now() - runStartedAt).padStart(6)}  ${text}\n`);
  };

  const stop = new AbortController();
  const unsubscribe = io.onInterrupt((count) => {
    if (count === 1) {
      say('interrupted: stopping the devices (Ctrl-C again to quit at once)');
      stop.abort(new Error('interrupted by the user'));
    }
  });
  let load: LoadGenerator | null = null;
  try {
    try {
      await probeTarget(target, PROBE_TIMEOUT_MS);
    } catch (error) {
      if (!(error instanceof BenchError)) throw error;
      live?.close();
      io.stderr.write(errorText(`bench: ${error.message}`, null));
      return error.exitCode;
    }
    load = await LoadGenerator.start({
      host: target.host,
      port: target.port,
      serverPublicKey: target.serverPublicKey,
      clients: flags.clients,
      payloadBytes: flags.payload,
      requestsPerSecond: flags.rate ?? null,
      handshakesPerSecond: flags.handshakeRate,
      ...(flags.workers === undefined ? {} : { workers: flags.workers }),
    });
    say(`${style.bold('relayctl bench')}: ${flags.clients} clients on ${load.workers} worker threads against ${target.host}:${target.port}, ${flags.payload}-byte requests, ` +
      `${flags.rate === undefined ? 'no rate cap' : `at most ${flags.rate} requests/s`}; start-up at ${flags.handshakeRate} handshakes/s`);

    // Start-up: every device handshakes, paced; the live view follows it each second, plain output every few.
    let startupTicks = 0;
    const startupSampler = new Sampler(load, MAX_TICK_MS, (sample) => {
      const line = `start-up: ${sample.clients}/${flags.clients} clients connected (${sample.delta.handshakes} handshakes in the last second, ${sample.totals.handshakeFailures} failed)`;
      if (live !== null) live.show([`${style.bold('relayctl bench')}  ${style.dim(duration(performance.now() - startedAt))}`, `  ${line}`]);
      else if (++startupTicks % STARTUP_LINE_EVERY === 0) say(line);
    }, () => undefined);
    startupSampler.start();
    const startup = await untilAborted(load.connect(), stop.signal).finally(() => startupSampler.stop());
    if (startup === null) return ExitCode.Interrupted;
    // This sample closes the start-up: the measured run counts from here.
    const atRunStart = await load.sample();
    if (startup.connected === 0) {
      live?.close();
      io.stderr.write(errorText(`bench: no client could handshake with ${target.host}:${target.port}${startup.lastError === null ? '' : `: ${startup.lastError.message}`}`, null));
      return ExitCode.Unexpected;
    }
    say(`start-up: ${startup.connected}/${flags.clients} clients connected in ${duration(startup.durationMs)} (${Math.round(startup.connected / (startup.durationMs / 1000))} handshakes/s)` +
      (startup.failed === 0 ? '' : `, ${startup.failed} handshakes failed (those devices try again during the run)`));

    // On a local cluster, where its CPU went during the measured run: relays, service, this load generator.
    const usage = target.kind === 'local' ? new UsageMonitor(() => [...localProcesses(globals.stateDir), { name: 'load generator', group: 'load generator', pid: process.pid }]) : null;
    const run = await measure(load, flags, atRunStart, stop.signal, {
      onStart: (at) => (runStartedAt = at),
      onInterval: (interval) => say(intervalLine(interval)),
      onTick: (sample, tickMs, elapsedMs) => live?.show(statusLines(style, sample, tickMs, elapsedMs, flags)),
    });
    live?.close();
    const summary = summarize(target, flags, load.workers, startup, run, usage === null ? null : cpuShares(usage));
    if (globals.output === 'json') io.stdout.write(`${jsonLine(summary)}\n`);
    else io.stdout.write(summaryText(summary, run, createStyle(colorEnabled(io, io.stdout, globals.color))));
    return stop.signal.aborted ? ExitCode.Interrupted : ExitCode.Success;
  } finally {
    live?.close();
    unsubscribe();
    await load?.close();
  }
}

function checkFlags(ctx: CommandContext, flags: BenchFlags): void {
  const { globals } = ctx;
  if (globals.dryRun) throw new UsageError('--dry-run: bench sends real traffic and has nothing to preview; run it without --dry-run');
  if (flags.payload < PAYLOAD_RANGE.min || flags.payload > PAYLOAD_RANGE.max) {
    throw new UsageError(`--payload: expected ${PAYLOAD_RANGE.min} to ${PAYLOAD_RANGE.max} bytes (the relay drops larger payloads), got ${flags.payload}`);
  }
  if (flags.target === undefined && flags.serverKey !== undefined) throw new UsageError('--server-key: applies only with --target (the local cluster pins its own key)');
  if (flags.target !== undefined && flags.serverKey === undefined) throw new UsageError('--target: needs --server-key <file>, the relays\' DTLS public key (SPKI DER or PEM) that devices pin');
  if (flags.target !== undefined && globals.stateDirGiven) throw new UsageError('--state-dir: applies to the local cluster, not to --target; drop one of them');
  if (flags.workers !== undefined && flags.workers > flags.clients) throw new UsageError(`--workers: at most one worker per client (${flags.clients}), got ${flags.workers}`);
}

async function resolveTarget(ctx: CommandContext, flags: BenchFlags): Promise<BenchTarget> {
  if (flags.target === undefined) return localTarget(await ctx.platforms.local(), { stateDir: ctx.globals.stateDir, name: ctx.globals.name });
  const { host, port } = parseHostPort(flags.target);
  const serverKey = flags.serverKey!;
  return { host, port, serverPublicKey: await readServerKey(serverKey), keySource: `--server-key ${serverKey}`, kind: 'address' };
}

/** Resolves with the promise's value, or null as soon as the signal aborts (the promise is left to settle). */
async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | null> {
  if (signal.aborted) return null;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<null>((resolve) => signal.addEventListener('abort', (onAbort = () => resolve(null)), { once: true }));
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}

export interface MeasuredRun {
  durationMs: number;
  intervals: Interval[];
  /** Counters of the measured run: from the end of the start-up to the end of its last interval. */
  counters: FleetCounters;
  latency: LatencyHistogram;
  /** Requests in flight when the run ended that were answered during the stop grace (not counted in the run). */
  answeredAfterEnd: number;
  unanswered: number;
  clients: number;
  loopDelayMaxMs: number;
  /** Mean busy share of each worker's event loop over the run. */
  utilization: number[];
}

interface MeasureHooks {
  onStart(at: number): void;
  onInterval(interval: Interval): void;
  /** `tickMs`: the time the sample covers. */
  onTick(sample: LoadSample, tickMs: number, elapsedMs: number): void;
}

/** The measured run: samples every tick, an interval line every --interval, until --duration or Ctrl-C. */
async function measure(load: LoadGenerator, flags: BenchFlags, atRunStart: LoadSample, signal: AbortSignal, hooks: MeasureHooks): Promise<MeasuredRun> {
  // Ticks divide the interval evenly and are at most a second, so lines are exact and the live view fresh.
  const ticksPerInterval = Math.max(1, Math.ceil(flags.interval / MAX_TICK_MS));
  const tickMs = flags.interval / ticksPerInterval;
  const origin = atRunStart.at;
  const intervals: Interval[] = [];
  const latency = new LatencyHistogram();
  const utilizationSums = atRunStart.utilization.map(() => 0);
  let ticks = 0;
  let loopDelayMaxMs = 0;
  let pending: LoadSample[] = [];
  let intervalStartAt = origin;
  const closeInterval = (): void => {
    if (pending.length === 0) return;
    const interval = intervalOf(pending, intervalStartAt, origin);
    intervals.push(interval);
    hooks.onInterval(interval);
    intervalStartAt = pending.at(-1)!.at;
    pending = [];
  };
  let lastSample = atRunStart;
  const take = (sample: LoadSample): void => {
    lastSample = sample;
    latency.add(sample.latency);
    loopDelayMaxMs = Math.max(loopDelayMaxMs, sample.loopDelayMaxMs);
    sample.utilization.forEach((value, index) => (utilizationSums[index]! += value));
    ticks++;
  };
  let failure: Error | null = null;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const sampler = new Sampler(load, tickMs, (sample, previousAt) => {
    take(sample);
    pending.push(sample);
    if (pending.length >= ticksPerInterval) closeInterval();
    hooks.onTick(sample, sample.at - previousAt, sample.at - origin);
    // The run ends on the tick that completes the duration, so the last interval is a whole one.
    if (sample.at - origin >= flags.duration - tickMs / 2) finish();
  }, (error) => {
    failure ??= error;
    finish();
  });

  await load.run();
  hooks.onStart(origin);
  sampler.start(origin);
  await untilAborted(done, signal);
  await sampler.stop();
  if (failure !== null) throw failure;
  if (signal.aborted) {
    // Ctrl-C: the time since the last tick makes a shorter last interval.
    const last = await load.sample();
    take(last);
    pending.push(last);
  }
  closeInterval();
  // The run's figures are those of its intervals; the stop grace only settles the requests still in flight.
  const counters = diffCounters(lastSample.totals, atRunStart.totals);
  counters.latencyMaxMs = latency.maxMs() ?? 0;
  const stopped = await load.stop(STOP_GRACE_MS);
  return {
    durationMs: lastSample.at - origin,
    intervals,
    counters,
    latency,
    answeredAfterEnd: stopped.sample.delta.answered,
    unanswered: stopped.unanswered,
    clients: lastSample.clients,
    loopDelayMaxMs,
    utilization: utilizationSums.map((sum) => sum / Math.max(1, ticks)),
  };
}

function statusLines(style: Style, sample: LoadSample, tickMs: number, elapsedMs: number, flags: BenchFlags): string[] {
  const { delta } = sample;
  const p99 = sample.latency.percentileMs(99);
  return [
    `${style.bold('relayctl bench')}  ${style.dim(`${duration(elapsedMs)} of ${duration(flags.duration)}`)}  ${sample.clients}/${flags.clients} clients`,
    `  now: ${Math.round(delta.answered / Math.max(0.001, tickMs / 1000))} reqs/s, ${delta.retransmissions} retransmissions, ` +
      `${delta.transmissionErrors === 0 ? '0' : style.bad(String(delta.transmissionErrors))} transmission errors, ${delta.handshakes} handshakes, ` +
      `p99 ${p99 === null ? '-' : `${p99.toFixed(1)} ms`}; ${sample.inFlight} in flight`,
  ];
}

export interface BenchSummary {
  type: 'bench-summary';
  target: { host: string; port: number; kind: 'local' | 'address' };
  clients: number;
  workers: number;
  payloadBytes: number;
  rateCap: number | null;
  handshakeRate: number;
  intervalMs: number;
  startup: { durationMs: number; connected: number; failed: number; handshakesPerSecond: number };
  run: {
    durationMs: number;
    requests: number;
    reqsPerSecond: number;
    sent: number;
    retransmissions: number;
    retransmissionPercent: number | null;
    transmissionErrors: number;
    transmissionErrorPercent: number | null;
    handshakes: number;
    handshakeFailures: number;
    sessionsLost: number;
    duplicates: number;
    answeredAfterEnd: number;
    unanswered: number;
    clients: number;
    latency: LatencySummary;
  };
  intervals: Record<string, unknown>[];
  loadGenerator: { loopDelayMaxMs: number; utilization: number[] };
  /** Local targets only: CPU of the cluster's processes and of this one during the measured run, in percent of one core. */
  cpu: { percentOfCore: Record<string, number>; machinePercent: number | null } | null;
}

/** Percent of one core per group (relay sets, service, load generator) and for the whole machine, since the monitor began. */
function cpuShares(monitor: UsageMonitor): BenchSummary['cpu'] {
  const delta = monitor.sample();
  const groups: Record<string, number> = {};
  for (const entry of delta.cpu.values()) groups[entry.group] = (groups[entry.group] ?? 0) + entry.cpuSeconds;
  const percent = (cpuSeconds: number): number => Math.round((100 * cpuSeconds) / Math.max(0.001, delta.seconds));
  return {
    percentOfCore: Object.fromEntries(Object.entries(groups).map(([group, seconds]) => [group, percent(seconds)])),
    machinePercent: delta.machineCores === null ? null : Math.round(100 * delta.machineCores),
  };
}

function summarize(target: BenchTarget, flags: BenchFlags, workers: number, startup: StartupResult, run: MeasuredRun, cpu: BenchSummary['cpu']): BenchSummary {
  const { counters } = run;
  return {
    type: 'bench-summary',
    target: { host: target.host, port: target.port, kind: target.kind },
    clients: flags.clients,
    workers,
    payloadBytes: flags.payload,
    rateCap: flags.rate ?? null,
    handshakeRate: flags.handshakeRate,
    intervalMs: flags.interval,
    startup: { durationMs: Math.round(startup.durationMs), connected: startup.connected, failed: startup.failed, handshakesPerSecond: Math.round(startup.connected / Math.max(0.001, startup.durationMs / 1000)) },
    run: {
      durationMs: Math.round(run.durationMs),
      ...countsJson(counters, run.durationMs),
      handshakeFailures: counters.handshakeFailures,
      sessionsLost: counters.sessionsLost,
      duplicates: counters.duplicates,
      answeredAfterEnd: run.answeredAfterEnd,
      unanswered: run.unanswered,
      clients: run.clients,
      latency: run.latency.summary(),
    },
    intervals: run.intervals.map(intervalJson),
    loadGenerator: { loopDelayMaxMs: Math.round(run.loopDelayMaxMs), utilization: run.utilization.map((value) => Math.round(value * 1000) / 1000) },
    cpu,
  };
}

function summaryText(summary: BenchSummary, run: MeasuredRun, style: Style): string {
  const { run: figures, startup } = summary;
  const mark = (value: number): string => (value === 0 ? '0' : style.bad(String(value)));
  const n = (value: number): string => value.toLocaleString('en-US');
  const rows: [string, string][] = [
    ['target', `${summary.target.host}:${summary.target.port} (${summary.target.kind === 'local' ? 'local cluster service' : '--target'}), ${n(summary.clients)} clients on ${summary.workers} worker threads, ${summary.payloadBytes}-byte requests, ${summary.rateCap === null ? 'no rate cap' : `rate cap ${n(summary.rateCap)}/s`}`],
    ['start-up', `${n(startup.connected)}/${n(summary.clients)} clients connected in ${duration(startup.durationMs)} (${n(startup.handshakesPerSecond)} handshakes/s)${startup.failed === 0 ? '' : `, ${style.bad(String(startup.failed))} handshakes failed`}`],
    ['measured run', `${duration(figures.durationMs)}: ${n(figures.requests)} requests answered (${n(figures.reqsPerSecond)} reqs/s), ${n(figures.retransmissions)} retransmissions (${formatShare(figures.retransmissionPercent)}), ` +
      `${mark(figures.transmissionErrors)} transmission errors (${formatShare(figures.transmissionErrorPercent)}), ${figures.handshakes} handshakes`],
    ['round trip', latencyLine(figures.latency)],
    ['worst interval', windowLine(worstWindow(run.intervals, 1))],
    ['in flight at the end', `${n(figures.answeredAfterEnd)} answered within ${duration(STOP_GRACE_MS)}, ${mark(figures.unanswered)} unanswered`],
    ['load generator', `event-loop delay at most ${summary.loadGenerator.loopDelayMaxMs} ms; worker threads busy ${summary.loadGenerator.utilization.map((value) => `${Math.round(value * 100)}%`).join(', ')}`],
  ];
  if (summary.cpu !== null) {
    const groups = Object.entries(summary.cpu.percentOfCore).map(([group, percent]) => `${group} ${percent}%`).join(', ');
    rows.push(['CPU (% of a core)', `${groups}${summary.cpu.machinePercent === null ? '' : `; whole machine ${summary.cpu.machinePercent}%`}`]);
  }
  const width = Math.max(...rows.map(([label]) => label.length));
  return `\n${rows.map(([label, text]) => `${style.dim(label.padEnd(width))}  ${text}`).join('\n')}\n`;
}
