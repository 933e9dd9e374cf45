/**
 * An update under load, measured as devices see it, and the same switch without state transfer as the baseline
 * a user would otherwise live with. Each run: a local set of 3 relays, 4,000 simulated devices (worker threads)
 * at a steady request rate, then the switch to a new set mid-run, then a steady tail. Prints the interval lines
 * (1 s around the switch), the worst 1 s and 10 s windows, handshakes during the switch, the pause per relay,
 * the update's steps, the stragglers the old relays forwarded, and CPU and memory of every process by phase.
 * Asserts nothing; says which goals were met. Everything is torn down at the end, on failure and on Ctrl-C.
 *
 *   npm run bench:update -- [--clients 4000] [--rate 5000] [--handshake-rate 250] [--steady 10s] [--tail 10s]
 *                           [--only handover|baseline] [--cpu-prof <dir>]
 *
 * --cpu-prof profiles the relays and the service process (NODE_OPTIONS for the processes the platform spawns)
 * and the load generator's threads, and prints where each spent its time.
 */
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ManagementClient } from '../api/management-client.ts';
import { parseDuration } from '../lib/duration.ts';
import { LatencyHistogram } from '../loadgen/histogram.ts';
import { LoadGenerator, type LoadSample } from '../loadgen/generator.ts';
import { UsageMonitor, localProcesses, type UsageDelta } from '../loadgen/usage.ts';
import { answeredRate, formatShare, intervalLine, intervalOf, joinIntervals, latencyLine, shareOfAnswered, slowestWindow, windowLine, worstWindow, type Interval } from '../loadgen/report.ts';
import { Sampler } from '../loadgen/sampler.ts';
import { diffCounters, type FleetCounters } from '../loadgen/counters.ts';
import { runUpdate, type Platform, type PodInfo, type RunResult, type UpdateEvent } from '../orchestrator/index.ts';
import { deployLocal, openLocalPlatform, teardownLocal, type LocalPlatform } from '../orchestrator/platform/local/index.ts';
import { operatorClientTlsOptions } from '../orchestrator/platform/local/pki.ts';
import { fmt, machine, mib } from './format.ts';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '4000' },
    rate: { type: 'string', default: '5000' },
    'handshake-rate': { type: 'string', default: '250' },
    payload: { type: 'string', default: '32' },
    steady: { type: 'string', default: '10s' },
    tail: { type: 'string', default: '10s' },
    'baseline-limit': { type: 'string', default: '150s' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});
function positive(flag: string, value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new RangeError(`--${flag}: expected a whole number of at least 1, got "${value}"`);
  return number;
}
const CLIENTS = positive('clients', args.clients);
const RATE = positive('rate', args.rate);
const HANDSHAKE_RATE = positive('handshake-rate', args['handshake-rate']);
const PAYLOAD = positive('payload', args.payload);
if (args.only !== undefined && args.only !== 'handover' && args.only !== 'baseline') throw new RangeError(`--only: expected handover or baseline, got "${args.only}"`);
const STEADY_MS = parseDuration(args.steady);
const TAIL_MS = parseDuration(args.tail);
/** The baseline's tail lasts until every device is served again (retransmissions run out after 62-93 s), at most this. */
const BASELINE_LIMIT_MS = parseDuration(args['baseline-limit']);
const PROFILE_DIR = args['cpu-prof'];
const NAME = 'bench';
const REPLICAS = 3;
/** As the demo: an old relay counts as drained after 2 s without stragglers, and the drain ends after 5 s anyway. */
const DRAIN_QUIET_MS = 2_000;
const DRAIN_TIMEOUT_MS = 5_000;
/** 1 s lines from the switch until this long after it. */
const FINE_AFTER_MS = 5_000;
const STOP_GRACE_MS = 10_000;
const GOALS = { rate: 5_000, worst1sRetransmissionPercent: 1, transmissionErrors: 0, handshakes: 0, pauseMs: 100 } as const;

type Mode = 'handover' | 'baseline';
type Phase = 'steady' | 'switch' | 'tail';
const PHASES: readonly Phase[] = ['steady', 'switch', 'tail'];

const interrupted = new AbortController();
process.on('SIGINT', () => {
  if (interrupted.signal.aborted) process.exit(130);
  console.error('\ninterrupted: tearing the cluster down (Ctrl-C again to quit at once)');
  interrupted.abort(new Error('interrupted'));
});

// ---- the runs --------------------------------------------------------------------------------------------------

interface Tick extends Interval {
  phase: Phase;
}

interface RelayScrape {
  lagMaxMs: number;
  claims: Record<string, number>;
  drops: Record<string, number>;
}

interface UsageByPhase {
  /** CPU seconds and phase seconds per group, and the largest RSS seen per group (summed over its processes). */
  cpu: Map<string, Map<Phase, number>>;
  rss: Map<string, Map<Phase, number>>;
  machineCoreSeconds: Map<Phase, number>;
  seconds: Map<Phase, number>;
}

/** What a new relay logged when its restore committed ('restore committed; serving'): where its pause went. */
interface RestoreLog {
  pod: string;
  sessions: number;
  precopySessions: number | null;
  deltaSessions: number | null;
  pauseMs: number;
  phasesMs: Record<string, number>;
}

interface SwitchReport {
  startedAt: number;
  endedAt: number;
  /** Update steps (handover) or the recipe's steps (baseline), in order, with their durations. */
  steps: { step: string; durationMs: number }[];
  pauses: { pod: string; pauseMs: number | null; sessions: number | null }[];
  /** Datagrams each old relay tunnelled to its successor, read before the old set was deleted. */
  forwarded: Map<string, number>;
  outcome: string;
  restores: RestoreLog[];
}

interface RunReport {
  mode: Mode;
  startup: { connected: number; failed: number; durationMs: number };
  ticks: Tick[];
  totals: FleetCounters;
  latency: Map<Phase, LatencyHistogram>;
  unanswered: number;
  switch: SwitchReport;
  usage: UsageByPhase;
  relayLag: Map<Phase, number>;
  relayCounters: Map<string, RelayScrape>;
  loadLoopDelayMaxMs: Map<Phase, number>;
  runMs: number;
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

async function runScenario(mode: Mode): Promise<RunReport> {
  const stateDir = await mkdtemp(join(tmpdir(), `relayctl-bench-${mode}-`));
  if (PROFILE_DIR !== undefined) {
    const dir = join(PROFILE_DIR, mode);
    await mkdir(dir, { recursive: true });
    // The platform starts relays and the service with this process's environment.
    process.env['NODE_OPTIONS'] = `--cpu-prof --cpu-prof-dir=${dir}`;
  }
  let load: LoadGenerator | null = null;
  let platform: LocalPlatform | null = null;
  let mgmt: ManagementClient | null = null;
  try {
    say(`\n== ${mode === 'handover' ? 'update with session handover' : 'baseline: the same switch without state transfer'} (state in ${stateDir})`);
    const info = await deployLocal({ stateDir, name: NAME, replicas: REPLICAS, image: 'relay:1.0', servicePort: 0 });
    checkInterrupted();
    platform = await openLocalPlatform({ stateDir, name: NAME });
    mgmt = new ManagementClient(operatorClientTlsOptions(platform.pki), { timeoutMs: 1_000 });
    say(`set ${NAME}-a: ${REPLICAS} relays behind the UDP front on ${info.service.address}:${info.service.port}`);
    load = await LoadGenerator.start({
      host: info.service.address,
      port: info.service.port,
      serverPublicKey: info.serverPublicKey,
      clients: CLIENTS,
      payloadBytes: PAYLOAD,
      requestsPerSecond: RATE,
      handshakesPerSecond: HANDSHAKE_RATE,
      ...(PROFILE_DIR === undefined ? {} : { workerExecArgv: ['--cpu-prof', `--cpu-prof-dir=${join(PROFILE_DIR, mode)}`] }),
    });
    const startup = await startUp(load);
    return await measureRun(mode, stateDir, load, platform, mgmt, startup);
  } finally {
    delete process.env['NODE_OPTIONS'];
    await load?.close();
    await mgmt?.close();
    await platform?.close();
    try {
      await teardownLocal({ stateDir });
      await rm(stateDir, { recursive: true, force: true });
    } catch (error) {
      console.error(`teardown of ${stateDir} failed: ${(error as Error).message}; run "relayctl teardown --state-dir ${stateDir}"`);
    }
  }
}

function checkInterrupted(): void {
  if (interrupted.signal.aborted) throw interrupted.signal.reason;
}

async function startUp(load: LoadGenerator): Promise<RunReport['startup']> {
  const started = performance.now();
  const progress = new Sampler(load, 5_000, (sample) => say(`  start-up: ${fmt(sample.clients)}/${fmt(CLIENTS)} clients connected`), () => undefined);
  progress.start();
  const result = await load.connect().finally(() => progress.stop());
  say(`start-up: ${fmt(result.connected)}/${fmt(CLIENTS)} clients connected in ${((performance.now() - started) / 1000).toFixed(1)} s ` +
    `(${fmt(result.connected / (result.durationMs / 1000))} handshakes/s, paced at ${HANDSHAKE_RATE}/s)${result.failed === 0 ? '' : `, ${result.failed} handshakes failed (retried in the run)`}`);
  checkInterrupted();
  return { connected: result.connected, failed: result.failed, durationMs: result.durationMs };
}

/** Interval lines: 10 s in steady state, 1 s from the switch until FINE_AFTER_MS after it. */
class Timeline {
  readonly ticks: Tick[] = [];
  readonly #origin: number;
  #phase: Phase = 'steady';
  /** The phase the tick being sampled counts under: the switch, if it was on at any moment of the tick. */
  #tickPhase: Phase = 'steady';
  #fineUntil = Number.NEGATIVE_INFINITY;
  #pending: Tick[] = [];

  constructor(origin: number) {
    this.#origin = origin;
  }

  get phase(): Phase {
    return this.#phase;
  }

  enter(phase: Phase): void {
    this.#flush();
    this.#phase = phase;
    if (phase === 'switch' || this.#tickPhase !== 'switch') this.#tickPhase = phase;
    if (phase === 'switch') this.#fineUntil = Number.POSITIVE_INFINITY;
    if (phase === 'tail') this.#fineUntil = performance.now() + FINE_AFTER_MS;
  }

  add(sample: LoadSample, previousAt: number): Tick {
    const tick: Tick = { ...intervalOf([sample], previousAt, this.#origin), phase: this.#tickPhase };
    this.#tickPhase = this.#phase;
    this.ticks.push(tick);
    this.#pending.push(tick);
    if (performance.now() <= this.#fineUntil || this.#pending.length >= 10) this.#flush();
    return tick;
  }

  note(text: string): void {
    say(`${this.#stamp(performance.now() - this.#origin)}  ${text}`);
  }

  finish(): void {
    this.#flush();
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const interval = joinIntervals(this.#pending);
    say(`${this.#stamp(interval.endMs)}  ${this.#pending[0]!.phase.padEnd(6)}  ${intervalLine(interval)}`);
    this.#pending = [];
  }

  #stamp(ms: number): string {
    return `${(ms / 1000).toFixed(0).padStart(5)} s`;
  }
}

async function measureRun(mode: Mode, stateDir: string, load: LoadGenerator, platform: LocalPlatform, mgmt: ManagementClient, startup: RunReport['startup']): Promise<RunReport> {
  const atRunStart = await load.sample();
  const timeline = new Timeline(atRunStart.at);
  const usage: UsageByPhase = { cpu: new Map(), rss: new Map(), machineCoreSeconds: new Map(), seconds: new Map() };
  const monitor = new UsageMonitor(() => [...localProcesses(stateDir), { name: 'load generator', group: 'load generator', pid: process.pid }]);
  const latency = new Map<Phase, LatencyHistogram>(PHASES.map((phase) => [phase, new LatencyHistogram()]));
  const relayLag = new Map<Phase, number>();
  const loadLoopDelayMaxMs = new Map<Phase, number>();
  const relayCounters = new Map<string, RelayScrape>();
  let scraping = false;
  let failure: Error | null = null;

  const onSample = (sample: LoadSample, previousAt: number): void => {
    const tick = timeline.add(sample, previousAt);
    latency.get(tick.phase)!.add(sample.latency);
    loadLoopDelayMaxMs.set(tick.phase, Math.max(loadLoopDelayMaxMs.get(tick.phase) ?? 0, sample.loopDelayMaxMs));
    addUsage(usage, tick.phase, monitor.sample());
    if (!scraping) {
      // Relay event-loop lag (reset by each scrape: a max per second) and claim and drop counters.
      scraping = true;
      const phase = tick.phase;
      void scrapeRelays(stateDir, mgmt).then((scraped) => {
        for (const [pod, scrape] of scraped) {
          relayCounters.set(pod, scrape);
          relayLag.set(phase, Math.max(relayLag.get(phase) ?? 0, scrape.lagMaxMs));
        }
      }).finally(() => (scraping = false));
    }
  };
  const sampler = new Sampler(load, 1_000, onSample, (error) => (failure ??= error));
  await load.run();
  sampler.start(atRunStart.at);
  let switched: SwitchReport;
  try {
    timeline.note(`steady: ${fmt(CLIENTS)} devices at up to ${fmt(RATE)} requests/s for ${STEADY_MS / 1000} s`);
    await sleep(STEADY_MS, undefined, { signal: interrupted.signal });

    timeline.enter('switch');
    switched = mode === 'handover' ? await handoverSwitch(platform, mgmt, timeline) : await baselineSwitch(platform, mgmt, stateDir, timeline);
    checkInterrupted();
    timeline.enter('tail');
    if (mode === 'handover') {
      timeline.note(`tail: ${TAIL_MS / 1000} s on the new set`);
      await sleep(TAIL_MS, undefined, { signal: interrupted.signal });
    } else {
      timeline.note(`tail: until every device is served again (their requests give up after 62-93 s, then they handshake again), at most ${BASELINE_LIMIT_MS / 1000} s`);
      const until = performance.now() + BASELINE_LIMIT_MS;
      while (performance.now() < until && !recovered(timeline.ticks)) await sleep(1_000, undefined, { signal: interrupted.signal });
      await sleep(Math.min(TAIL_MS, Math.max(0, until - performance.now())), undefined, { signal: interrupted.signal });
    }
  } finally {
    // Also on Ctrl-C and failures: a sampler left ticking would keep the process alive after the teardown.
    await sampler.stop();
  }
  if (failure !== null) throw failure;
  const last = await load.sample();
  onSample(last, sampler.lastAt);
  timeline.finish();
  // Claims may still have been running at the last scrape of the sampler.
  for (const [pod, scrape] of await scrapeRelays(stateDir, mgmt)) relayCounters.set(pod, scrape);
  switched.restores = await restoreLogs(stateDir, `${NAME}-b`);
  // The run's figures end with its last tick; the stop grace only settles what was still in flight.
  const stopped = await load.stop(STOP_GRACE_MS);
  return {
    mode,
    startup,
    ticks: timeline.ticks,
    totals: diffCounters(last.totals, atRunStart.totals),
    latency,
    unanswered: stopped.unanswered,
    switch: switched,
    usage,
    relayLag,
    relayCounters,
    loadLoopDelayMaxMs,
    runMs: last.at - atRunStart.at,
  };
}

/**
 * Served again: for the last 5 s every device had a session, nothing was retransmitted or given up, and the
 * answers came at 90% of the steady rate (between two retransmission waves nothing is retransmitted either).
 */
function recovered(ticks: readonly Tick[]): boolean {
  const steady = answeredRate(joinIntervals(ticks.filter((tick) => tick.phase === 'steady')));
  const tail = ticks.filter((tick) => tick.phase === 'tail').slice(-5);
  return tail.length === 5 && tail.every((tick) => tick.clients === CLIENTS && tick.counters.retransmissions === 0 && tick.counters.transmissionErrors === 0 && answeredRate(tick) >= 0.9 * steady);
}

function addUsage(usage: UsageByPhase, phase: Phase, delta: UsageDelta): void {
  const add = (map: Map<string, Map<Phase, number>>, group: string, value: number, combine: (a: number, b: number) => number): void => {
    const byPhase = map.get(group) ?? new Map<Phase, number>();
    byPhase.set(phase, combine(byPhase.get(phase) ?? 0, value));
    map.set(group, byPhase);
  };
  const rssNow = new Map<string, number>();
  for (const entry of delta.cpu.values()) {
    add(usage.cpu, entry.group, entry.cpuSeconds, (a, b) => a + b);
    rssNow.set(entry.group, (rssNow.get(entry.group) ?? 0) + entry.rssBytes);
  }
  for (const [group, rss] of rssNow) add(usage.rss, group, rss, Math.max);
  usage.seconds.set(phase, (usage.seconds.get(phase) ?? 0) + delta.seconds);
  if (delta.machineCores !== null) usage.machineCoreSeconds.set(phase, (usage.machineCoreSeconds.get(phase) ?? 0) + delta.machineCores * delta.seconds);
}

interface PodFile {
  name: string;
  set: string;
  pid: number | null;
  address: string;
  mgmtPort: number;
}

async function podFiles(stateDir: string): Promise<PodFile[]> {
  const dir = join(stateDir, 'local', 'pods');
  const names = await readdir(dir).catch(() => [] as string[]);
  const pods = await Promise.all(names.filter((name) => name.endsWith('.json')).map((name) => readFile(join(dir, name), 'utf8').then((text) => JSON.parse(text) as PodFile, () => null)));
  return pods.filter((pod): pod is PodFile => pod !== null);
}

/** The new relays' restore lines from their logs (kept until teardown). */
async function restoreLogs(stateDir: string, set: string): Promise<RestoreLog[]> {
  const found: RestoreLog[] = [];
  for (const pod of (await podFiles(stateDir)).filter((candidate) => candidate.set === set)) {
    const text = await readFile(join(stateDir, 'local', 'logs', `${pod.name}.log`), 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (!line.includes('"msg":"restore committed; serving"')) continue;
      const entry = JSON.parse(line) as { sessions: number; precopySessions?: number; deltaSessions?: number; pauseMs: number; phasesMs?: Record<string, number> };
      found.push({ pod: pod.name, sessions: entry.sessions, precopySessions: entry.precopySessions ?? null, deltaSessions: entry.deltaSessions ?? null, pauseMs: entry.pauseMs, phasesMs: entry.phasesMs ?? {} });
    }
  }
  return found.sort((a, b) => a.pod.localeCompare(b.pod));
}

async function scrapeRelays(stateDir: string, mgmt: ManagementClient): Promise<Map<string, RelayScrape>> {
  const scraped = new Map<string, RelayScrape>();
  await Promise.all((await podFiles(stateDir)).map(async (pod) => {
    const text = await mgmt.metrics(`https://${pod.address}:${pod.mgmtPort}`).catch(() => null);
    if (text === null) return;
    const labelled = (metric: string, label: string): Record<string, number> => {
      const found: Record<string, number> = {};
      for (const match of text.matchAll(new RegExp(`^${metric}\\{${label}="([^"]+)"\\} (\\S+)$`, 'gm'))) found[match[1]!] = Number(match[2]);
      return found;
    };
    const lag = Number(/^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text)?.[1] ?? 0);
    scraped.set(pod.name, { lagMaxMs: lag * 1000, claims: labelled('relay_session_claims_total', 'result'), drops: labelled('relay_drops_total', 'reason') });
  }));
  return scraped;
}

/** The update as relayctl runs it, on the local platform; reads each old relay's forwarded count before deleting its set. */
async function handoverSwitch(platform: LocalPlatform, mgmt: ManagementClient, timeline: Timeline): Promise<SwitchReport> {
  const forwarded = new Map<string, number>();
  const readForwarded = async (set: string): Promise<void> => {
    for (const pod of await platform.listPods(set)) {
      if (pod.mgmtUrl === null) continue;
      const status = await mgmt.status(pod.mgmtUrl).catch(() => null);
      if (status !== null) forwarded.set(pod.name, Math.max(forwarded.get(pod.name) ?? 0, status.forwarding.datagrams));
    }
  };
  // The platform as the orchestrator sees it, but deleteSet first reads what the old relays forwarded.
  const observed: Platform = {
    name: platform.name,
    getSet: (name) => platform.getSet(name),
    createSet: (spec) => platform.createSet(spec),
    deleteSet: async (name) => {
      await readForwarded(name);
      timeline.note(`old relays forwarded ${[...forwarded].map(([pod, count]) => `${pod} ${fmt(count)}`).join(', ')} datagrams; deleting ${name}`);
      await platform.deleteSet(name);
    },
    listPods: (set) => platform.listPods(set),
    patchPodLabels: (pod, labels) => platform.patchPodLabels(pod, labels),
    patchSetAnnotations: (set, annotations, expected) => platform.patchSetAnnotations(set, annotations, expected),
    lock: platform.lock,
    relay: platform.relay,
  };
  const steps: SwitchReport['steps'] = [];
  const pauses: SwitchReport['pauses'] = [];
  const startedAt = performance.now();
  timeline.note(`update: ${NAME}-a -> ${NAME}-b (drain: quiet ${DRAIN_QUIET_MS / 1000} s, timeout ${DRAIN_TIMEOUT_MS / 1000} s)`);
  const result: RunResult = await runUpdate(
    {
      name: NAME,
      owner: `bench@${hostname()}:${process.pid}`,
      image: 'relay:1.1',
      drainQuietMs: DRAIN_QUIET_MS,
      timeouts: { overallMs: 180_000, drainMs: DRAIN_TIMEOUT_MS },
    },
    observed,
    (event: UpdateEvent) => {
      if (event.type === 'step-finished') {
        steps.push({ step: event.step, durationMs: event.durationMs });
        timeline.note(`update: ${event.step} done in ${(event.durationMs / 1000).toFixed(2)} s`);
      } else if (event.type === 'ordinal-moved') {
        pauses.push({ pod: event.source, pauseMs: event.pauseMs, sessions: event.sessions });
        timeline.note(`update: ${event.source} -> ${event.target}: ${fmt(event.sessions ?? 0)} sessions, pause ${event.pauseMs ?? '?'} ms`);
      } else if (event.type === 'drain-progress') {
        forwarded.set(event.pod, Math.max(forwarded.get(event.pod) ?? 0, event.forwardedDatagrams));
      } else if (event.type === 'error' || event.type === 'warning' || event.type === 'retry') {
        timeline.note(`update: ${event.type} in ${event.step}: ${'error' in event ? event.error.message : event.message}`);
      }
    },
    { signal: interrupted.signal },
  );
  const endedAt = performance.now();
  timeline.note(`update: ${result.code} in ${(result.durationMs / 1000).toFixed(1)} s`);
  return { startedAt, endedAt, steps, pauses, forwarded, outcome: result.code, restores: [] };
}

/**
 * What a user without state transfer lives with: the new set starts empty, the old relays die (killed, as in a
 * crash: a graceful stop would let siblings claim sessions from them), devices get no answer, give up after
 * their retransmissions and handshake again.
 */
async function baselineSwitch(platform: LocalPlatform, mgmt: ManagementClient, stateDir: string, timeline: Timeline): Promise<SwitchReport> {
  const steps: SwitchReport['steps'] = [];
  const startedAt = performance.now();
  let stepStarted = startedAt;
  const done = (step: string): void => {
    const now = performance.now();
    steps.push({ step, durationMs: now - stepStarted });
    timeline.note(`baseline: ${step} done in ${((now - stepStarted) / 1000).toFixed(2)} s`);
    stepStarted = now;
  };
  timeline.note(`baseline: ${NAME}-a -> ${NAME}-b without state transfer`);
  const old = await platform.getSet(`${NAME}-a`);
  if (old === null) throw new Error(`${NAME}-a is gone`);
  await platform.createSet({ name: `${NAME}-b`, replicas: REPLICAS, image: 'relay:1.1', template: old, annotations: {} });
  done('create');
  // The new relays listen once their management port answers; each is told to start empty.
  const restored = new Set<string>();
  const deadline = performance.now() + 60_000;
  let pods: PodInfo[] = [];
  while (restored.size < REPLICAS || !pods.every((pod) => pod.ready)) {
    if (performance.now() > deadline) throw new Error(`${NAME}-b did not become ready within 60 s`);
    checkInterrupted();
    pods = await platform.listPods(`${NAME}-b`);
    for (const pod of pods) {
      if (pod.mgmtUrl === null || restored.has(pod.name)) continue;
      await mgmt.restore(pod.mgmtUrl, { empty: true }, 10_000).then(() => restored.add(pod.name), () => undefined);
    }
    if (pods.length < REPLICAS || !pods.every((pod) => pod.ready)) await sleep(100);
  }
  done('start empty');
  // Killed, not stopped: siblings would otherwise claim the sessions from the live old relays.
  for (const pod of (await podFiles(stateDir)).filter((candidate) => candidate.set === `${NAME}-a`)) {
    if (pod.pid !== null && isRelayProcess(pod.pid, pod.name)) process.kill(pod.pid, 'SIGKILL');
  }
  done('kill old relays');
  await platform.deleteSet(`${NAME}-a`);
  done('delete');
  const endedAt = performance.now();
  timeline.note(`baseline: switched in ${((endedAt - startedAt) / 1000).toFixed(1)} s`);
  return { startedAt, endedAt, steps, pauses: [], forwarded: new Map(), outcome: 'switched', restores: [] };
}

/** A pid from a pod file is only signalled when it still runs that pod's relay (pids are recycled). */
function isRelayProcess(pid: number, pod: string): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
    return args.some((arg) => /relay\/main\.(ts|js)$/.test(arg)) && args.includes(pod);
  } catch {
    return false;
  }
}

// ---- reporting ------------------------------------------------------------------------------------------------

function phaseTicks(report: RunReport, phase: Phase): Tick[] {
  return report.ticks.filter((tick) => tick.phase === phase);
}

function percentOfCore(cpuSeconds: number | undefined, seconds: number | undefined): string {
  if (cpuSeconds === undefined || seconds === undefined || seconds === 0) return '-';
  return `${Math.round((100 * cpuSeconds) / seconds)}%`;
}

function printRun(report: RunReport): void {
  const { totals } = report;
  const switchTicks = phaseTicks(report, 'switch');
  const during = joinIntervals(switchTicks);
  const afterSwitch = joinIntervals([...switchTicks, ...phaseTicks(report, 'tail')]);
  const worst1 = worstWindow(report.ticks, 1);
  const worst10 = worstWindow(report.ticks, 10);
  say(`\n-- ${report.mode}: results`);
  const rows: [string, string][] = [
    ['start-up', `${fmt(report.startup.connected)} handshakes in ${(report.startup.durationMs / 1000).toFixed(1)} s (not part of the measured run)`],
    ['measured run', `${(report.runMs / 1000).toFixed(0)} s: ${fmt(totals.answered)} requests answered (${fmt(totals.answered / (report.runMs / 1000))} reqs/s), ` +
      `${fmt(totals.retransmissions)} retransmissions (${formatShare(shareOfAnswered(totals.retransmissions, totals))}), ${fmt(totals.transmissionErrors)} transmission errors, ` +
      `${fmt(totals.handshakes)} handshakes, ${report.unanswered} unanswered at the end`],
    ['steady rate', `${fmt(steadyRate(report))} reqs/s answered before the switch (cap ${fmt(RATE)})`],
    ['worst 1 s window', windowLine(worst1)],
    ['worst 10 s window', windowLine(worst10)],
    ['slowest 10 s window', windowLine(slowestWindow(report.ticks, 10))],
    ['during the switch', `${(durationSecondsOf(during)).toFixed(1)} s: ${fmt(during.counters.answered)} answered, ${fmt(during.counters.retransmissions)} retransmissions, ` +
      `${fmt(during.counters.transmissionErrors)} transmission errors, ${fmt(during.counters.handshakes)} handshakes`],
    ['switch to end', `${fmt(afterSwitch.counters.retransmissions)} retransmissions, ${fmt(afterSwitch.counters.transmissionErrors)} transmission errors, ${fmt(afterSwitch.counters.handshakes)} handshakes, ` +
      `${fmt(afterSwitch.counters.sessionsLost)} sessions ended by a relay`],
    ['round trips', PHASES.map((phase) => `${phase}: ${latencyLine(report.latency.get(phase)!.summary())}`).join('\n' + ' '.repeat(22))],
    [report.mode === 'handover' ? 'update took' : 'switch took', `${((report.switch.endedAt - report.switch.startedAt) / 1000).toFixed(1)} s (${report.switch.outcome}): ` +
      report.switch.steps.map((step) => `${step.step} ${(step.durationMs / 1000).toFixed(2)} s`).join(', ')],
  ];
  if (report.mode === 'handover') {
    const pauses = report.switch.pauses.map((entry) => entry.pauseMs).filter((value): value is number => value !== null).sort((a, b) => a - b);
    rows.push(['pause per relay', pauses.length === 0 ? 'none reported' : `p50 ${pauses[Math.floor((pauses.length - 1) / 2)]} ms, max ${pauses.at(-1)} ms (${report.switch.pauses.map((entry) => `${entry.pod} ${entry.pauseMs ?? '?'} ms, ${fmt(entry.sessions ?? 0)} sessions`).join('; ')})`]);
    for (const restore of report.switch.restores) {
      // request: until the old relay's answer began (it pauses when the request reaches it); then the stream, the
      // staging and the commit round trip, at whose arrival the old relay ends its pause.
      const phases = Object.entries(restore.phasesMs).filter(([phase]) => phase !== 'precopy').map(([phase, ms]) => `${phase} ${ms}`).join(', ');
      rows.push([`  ${restore.pod}`, `pause ${restore.pauseMs} ms: ${fmt(restore.deltaSessions ?? restore.sessions)} of ${fmt(restore.sessions)} sessions changed since the pre-copy; ms: ${phases}`]);
    }
    const stragglers = [...report.switch.forwarded.values()].reduce((sum, count) => sum + count, 0);
    // The switch window ends when the old set is gone: a request lost on the way through an old relay would show
    // up there as a retransmission 2-3 s later, or as an error.
    const lost = during.counters.retransmissions + during.counters.transmissionErrors;
    rows.push(['stragglers', `${fmt(stragglers)} datagrams reached the old set after the switch and were tunnelled to the new relays ` +
      `(${[...report.switch.forwarded].map(([pod, count]) => `${pod} ${fmt(count)}`).join(', ')}); ` +
      (lost === 0 ? 'all answered at the first transmission (0 retransmissions, 0 errors until the old set was deleted)' : `NOT all answered at once: ${during.counters.retransmissions} retransmissions, ${during.counters.transmissionErrors} errors until the old set was deleted`)]);
  }
  const claims = sumCounters([...report.relayCounters.values()].map((scrape) => scrape.claims));
  const drops = sumCounters([...report.relayCounters.values()].map((scrape) => scrape.drops));
  rows.push(['relay claims', Object.keys(claims).length === 0 ? 'none' : Object.entries(claims).map(([result, count]) => `${result} ${fmt(count)}`).join(', ') + ' (relays alive at the end)']);
  rows.push(['relay drops', Object.keys(drops).length === 0 ? 'none' : Object.entries(drops).map(([reason, count]) => `${reason} ${fmt(count)}`).join(', ') + ' (relays alive at the end)']);
  rows.push(['event-loop delay', `relays max ${PHASES.map((phase) => `${phase} ${Math.round(report.relayLag.get(phase) ?? 0)} ms`).join(', ')}; ` +
    `load generator max ${PHASES.map((phase) => `${phase} ${Math.round(report.loadLoopDelayMaxMs.get(phase) ?? 0)} ms`).join(', ')}`]);
  for (const [label, text] of rows) say(`${label.padEnd(20)}  ${text}`);

  say(`\n${'CPU (% of one core)'.padEnd(26)}${PHASES.map((phase) => phaseLabel(phase).padStart(12)).join('')}`);
  const groups = [...report.usage.cpu.keys()].sort(groupOrder);
  for (const group of groups) {
    say(`  ${group.padEnd(24)}${PHASES.map((phase) => percentOfCore(report.usage.cpu.get(group)?.get(phase), report.usage.seconds.get(phase)).padStart(12)).join('')}`);
  }
  // What the machine spent beyond our processes: other work on the host competes for the same 2 cores.
  const ours = (phase: Phase): number => groups.reduce((sum, group) => sum + (report.usage.cpu.get(group)?.get(phase) ?? 0), 0);
  say(`  ${'other processes'.padEnd(24)}${PHASES.map((phase) => {
    const machineSeconds = report.usage.machineCoreSeconds.get(phase);
    return percentOfCore(machineSeconds === undefined ? undefined : Math.max(0, machineSeconds - ours(phase)), report.usage.seconds.get(phase)).padStart(12);
  }).join('')}`);
  say(`  ${`machine (${availableParallelism()} cores = ${availableParallelism() * 100}%)`.padEnd(24)}${PHASES.map((phase) => percentOfCore(report.usage.machineCoreSeconds.get(phase), report.usage.seconds.get(phase)).padStart(12)).join('')}`);
  say(`${'RSS, all processes of a row'.padEnd(26)}${PHASES.map((phase) => phaseLabel(phase).padStart(12)).join('')}`);
  for (const group of groups) {
    say(`  ${group.padEnd(24)}${PHASES.map((phase) => {
      const rss = report.usage.rss.get(group)?.get(phase);
      return (rss === undefined ? '-' : mib(rss)).padStart(12);
    }).join('')}`);
  }
}

function steadyRate(report: RunReport): number {
  return answeredRate(joinIntervals(phaseTicks(report, 'steady')));
}

function phaseLabel(phase: Phase): string {
  return phase === 'steady' ? 'before' : phase === 'switch' ? 'during' : 'after';
}

function groupOrder(a: string, b: string): number {
  const rank = (group: string): number => (group.startsWith(`${NAME}-`) ? 0 : group === 'service' ? 1 : 2);
  return rank(a) - rank(b) || a.localeCompare(b);
}

function durationSecondsOf(interval: Interval): number {
  return Math.max(0, (interval.endMs - interval.startMs) / 1000);
}

function sumCounters(list: Record<string, number>[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const entry of list) for (const [key, value] of Object.entries(entry)) sum[key] = (sum[key] ?? 0) + value;
  return sum;
}

function printComparison(handover: RunReport, baseline: RunReport): void {
  const figures = (report: RunReport) => {
    const after = joinIntervals(report.ticks.filter((tick) => tick.phase !== 'steady'));
    const worst1 = worstWindow(report.ticks, 1)!;
    const worst10 = worstWindow(report.ticks, 10)!;
    const slowest10 = slowestWindow(report.ticks, 10)!;
    return {
      handshakes: after.counters.handshakes,
      errors: after.counters.transmissionErrors,
      retransmissions: after.counters.retransmissions,
      worst1: shareOfAnswered(worst1.counters.retransmissions, worst1.counters),
      worst10: shareOfAnswered(worst10.counters.retransmissions, worst10.counters),
      slowest10: answeredRate(slowest10),
      // Seconds from the switch on in which fewer than half the steady answers came.
      starved: report.ticks.filter((tick) => tick.phase !== 'steady' && answeredRate(tick) < steadyRate(report) / 2).reduce((sum, tick) => sum + (tick.endMs - tick.startMs) / 1000, 0),
      relayCpu: [...report.usage.cpu].filter(([group]) => group.startsWith(`${NAME}-`)).reduce((sum, [, byPhase]) => sum + (byPhase.get('switch') ?? 0) + (byPhase.get('tail') ?? 0), 0),
    };
  };
  const a = figures(handover);
  const b = figures(baseline);
  const ratio = (x: number | null, y: number | null): string => {
    if (x === null || y === null) return 'n/a';
    if (x === 0) return y === 0 ? '1' : '∞ (0 with handover)';
    return `${(y / x).toFixed(1)}x`;
  };
  const share = (value: number | null): string => (value === null ? 'no answers' : `${value.toFixed(2)}%`);
  say('\n== handover vs baseline (from the switch to the end of each run)');
  const rows: [string, string, string, string][] = [
    ['', 'handover', 'baseline', 'baseline / handover'],
    ['handshakes', fmt(a.handshakes), fmt(b.handshakes), ratio(a.handshakes, b.handshakes)],
    ['transmission errors', fmt(a.errors), fmt(b.errors), ratio(a.errors, b.errors)],
    ['retransmissions', fmt(a.retransmissions), fmt(b.retransmissions), ratio(a.retransmissions, b.retransmissions)],
    ['worst 1 s retransmissions', share(a.worst1), share(b.worst1), ratio(a.worst1, b.worst1)],
    ['worst 10 s retransmissions', share(a.worst10), share(b.worst10), ratio(a.worst10, b.worst10)],
    ['slowest 10 s, answered/s', fmt(a.slowest10), fmt(b.slowest10), `${(b.slowest10 / Math.max(1, a.slowest10)).toFixed(2)}x`],
    ['seconds under half the rate', a.starved.toFixed(0), b.starved.toFixed(0), ratio(a.starved, b.starved)],
    ['relay CPU seconds', a.relayCpu.toFixed(1), b.relayCpu.toFixed(1), ratio(a.relayCpu, b.relayCpu)],
  ];
  for (const row of rows) say(`  ${row[0].padEnd(28)}${row[1].padStart(14)}${row[2].padStart(14)}   ${row[3]}`);
  say(`  (the baseline runs ${(baseline.runMs / 1000).toFixed(0)} s against ${(handover.runMs / 1000).toFixed(0)} s: its devices need 62-93 s to give up and handshake again)`);
}

function printGoals(report: RunReport): void {
  const steady = steadyRate(report);
  const worst1 = worstWindow(report.ticks, 1)!;
  const worst1Share = shareOfAnswered(worst1.counters.retransmissions, worst1.counters);
  const during = joinIntervals(phaseTicks(report, 'switch'));
  const pauses = report.switch.pauses.map((entry) => entry.pauseMs ?? Number.POSITIVE_INFINITY);
  const maxPause = pauses.length === 0 ? null : Math.max(...pauses);
  const goals: [string, boolean, string][] = [
    // The cap is the offered load: the goal is met when the set answered all of it (0.5% slack for requests in flight at the edges).
    [`at least ${fmt(GOALS.rate)} req/s`, RATE >= GOALS.rate && steady >= RATE * 0.995, `${fmt(steady)} reqs/s answered in steady state at a cap of ${fmt(RATE)}`],
    [`worst 1 s under ${GOALS.worst1sRetransmissionPercent}% retransmissions`, worst1Share !== null && worst1Share < GOALS.worst1sRetransmissionPercent, `${formatShare(worst1Share)} (${windowLine(worst1)})`],
    ['0 transmission errors', report.totals.transmissionErrors === 0, `${report.totals.transmissionErrors} in the run`],
    ['0 handshakes during the update', during.counters.handshakes === 0, `${during.counters.handshakes}`],
    [`pause under ${GOALS.pauseMs} ms per relay`, maxPause !== null && maxPause < GOALS.pauseMs, maxPause === null ? 'no pause reported' : `max ${maxPause} ms`],
  ];
  say('\n== goals (handover run)');
  for (const [goal, met, reached] of goals) say(`  ${met ? 'met    ' : 'MISSED '} ${goal.padEnd(40)} ${reached}`);
}

// ---- CPU profiles ------------------------------------------------------------------------------------------------

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Self time per function of each profile written under `dir`: where each process spent its CPU. */
async function printProfiles(dir: string): Promise<void> {
  const files = (await readdir(dir, { recursive: true })).filter((file) => file.endsWith('.cpuprofile')).sort();
  say(`\n== CPU profiles in ${dir} (${files.length}): top self time`);
  for (const file of files) {
    const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile;
    const byNode = new Map(profile.nodes.map((node) => [node.id, node]));
    const self = new Map<string, number>();
    const samples = profile.samples ?? [];
    const deltas = profile.timeDeltas ?? [];
    let total = 0;
    for (let index = 0; index < samples.length; index++) {
      const node = byNode.get(samples[index]!);
      const us = deltas[index + 1] ?? 0;
      if (node === undefined) continue;
      const frame = node.callFrame;
      const where = frame.url === '' ? '' : ` ${frame.url.replace(/^.*\/(node_modules\/[^/]+|[^/]+\/[^/]+)\//, '$1/').replace(/^file:\/\//, '')}:${frame.lineNumber + 1}`;
      const key = `${frame.functionName || '(anonymous)'}${where}`;
      self.set(key, (self.get(key) ?? 0) + us);
      total += us;
    }
    const idle = [...self].filter(([key]) => key.startsWith('(idle)')).reduce((sum, [, us]) => sum + us, 0);
    const busy = total - idle;
    say(`  ${file}: ${(busy / 1e6).toFixed(1)} s busy of ${(total / 1e6).toFixed(1)} s`);
    const top = [...self].filter(([key]) => !key.startsWith('(idle)')).sort((x, y) => y[1] - x[1]).slice(0, 8);
    for (const [key, us] of top) say(`    ${((100 * us) / Math.max(1, busy)).toFixed(1).padStart(5)}%  ${key}`);
  }
}

// ---- main -----------------------------------------------------------------------------------------------------------

say(`relayctl update under load: ${machine()}`);
say(`${fmt(CLIENTS)} devices, ${PAYLOAD}-byte confirmable requests capped at ${fmt(RATE)}/s, CoAP retransmission (2 s x 1-1.5, doubling, 4 times); ${REPLICAS} relays per set`);
const started = performance.now();
const reports = new Map<Mode, RunReport>();
try {
  for (const mode of ['handover', 'baseline'] as const) {
    if (args.only !== undefined && args.only !== mode) continue;
    const report = await runScenario(mode);
    reports.set(mode, report);
    printRun(report);
  }
  const handover = reports.get('handover');
  const baseline = reports.get('baseline');
  if (handover !== undefined && baseline !== undefined) printComparison(handover, baseline);
  if (handover !== undefined) printGoals(handover);
  if (PROFILE_DIR !== undefined) await printProfiles(PROFILE_DIR);
  say(`\nbench:update took ${((performance.now() - started) / 1000).toFixed(0)} s`);
} catch (error) {
  if (!interrupted.signal.aborted) throw error;
  process.exitCode = 130;
}
