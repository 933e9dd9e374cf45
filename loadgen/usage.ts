/**
 * Where the CPU goes on a local cluster: CPU time and resident memory of every relay pod, of the service process
 * (UDP front and upstream echo) and of the load generator itself, from /proc (Linux, like the relay's image), plus
 * how busy the whole machine was. Pods come and go during an update, so they are re-listed from the state folder
 * (<stateDir>/local/pods/<pod>.json carries the pid) on every sample; a process that exited keeps what was last
 * read of it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcessFigures {
  cpuSeconds: number;
  rssBytes: number;
}

/** CPU seconds (user + system, every thread) and resident memory of a process; null when it is gone. */
export function readProcess(pid: number): ProcessFigures | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND, rssBytes: rssKb * 1024 };
  } catch {
    return null;
  }
}

/** readProcess for a process that must be there (a benchmark's own relay): throws naming it when it is gone. */
export function readRunningProcess(pid: number, name: string): ProcessFigures {
  const figures = readProcess(pid);
  if (figures === null) throw new Error(`${name} (pid ${pid}) is gone`);
  return figures;
}

/** Busy and total CPU time of the machine (all cores), in clock ticks. */
export function readMachine(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const total = values.slice(0, 8).reduce((sum, value) => sum + value, 0);
    // idle and iowait are the not-busy parts.
    return { busy: total - (values[3] ?? 0) - (values[4] ?? 0), total };
  } catch {
    return null;
  }
}

export interface WatchedProcess {
  /** Pod name, "service" or "load generator". */
  name: string;
  /** What it is summed under: the set of a pod, "service", "load generator". */
  group: string;
  pid: number;
}

/** The relay pods and the service process of the local cluster in `stateDir`, as its state files say now. */
export function localProcesses(stateDir: string): WatchedProcess[] {
  const local = join(stateDir, 'local');
  const found: WatchedProcess[] = [];
  let files: string[] = [];
  try {
    files = readdirSync(join(local, 'pods')).filter((file) => file.endsWith('.json'));
  } catch {
    // No pods folder (torn down): nothing to watch.
  }
  for (const file of files) {
    try {
      const pod = JSON.parse(readFileSync(join(local, 'pods', file), 'utf8')) as { name?: unknown; set?: unknown; pid?: unknown };
      if (typeof pod.name === 'string' && typeof pod.set === 'string' && typeof pod.pid === 'number') found.push({ name: pod.name, group: pod.set, pid: pod.pid });
    } catch {
      // Being rewritten (atomic rename) or removed: the next sample sees it.
    }
  }
  try {
    const service = JSON.parse(readFileSync(join(local, 'service.json'), 'utf8')) as { pid?: unknown };
    if (typeof service.pid === 'number') found.push({ name: 'service', group: 'service', pid: service.pid });
  } catch {
    // Not running.
  }
  return found;
}

export interface UsageDelta {
  /** Seconds of wall time the delta covers. */
  seconds: number;
  /** CPU seconds spent in the span, per process name. */
  cpu: Map<string, { group: string; cpuSeconds: number; rssBytes: number }>;
  /** Busy share of all cores in the span, as a multiple of one core (2 = both cores of a 2-core machine busy). */
  machineCores: number | null;
}

/** Samples the watched processes; each sample returns what each spent since the previous one. */
export class UsageMonitor {
  readonly #list: () => WatchedProcess[];
  readonly #last = new Map<number, { name: string; group: string; cpuSeconds: number; rssBytes: number }>();
  #lastAt = performance.now();
  #lastMachine = readMachine();
  #first = true;

  constructor(list: () => WatchedProcess[]) {
    this.#list = list;
    this.sample();
    this.#first = false;
  }

  sample(): UsageDelta {
    const now = performance.now();
    const cpu: UsageDelta['cpu'] = new Map();
    for (const process of this.#list()) {
      const figures = readProcess(process.pid);
      if (figures === null) continue;
      const before = this.#last.get(process.pid);
      // Processes there from the start count from then; one that appeared since (a new relay) started in this
      // span, so all its CPU (booting included) belongs to it.
      const spent = before === undefined ? (this.#first ? 0 : figures.cpuSeconds) : Math.max(0, figures.cpuSeconds - before.cpuSeconds);
      this.#last.set(process.pid, { name: process.name, group: process.group, ...figures });
      cpu.set(process.name, { group: process.group, cpuSeconds: spent, rssBytes: figures.rssBytes });
    }
    const machine = readMachine();
    const machineCores = machine === null || this.#lastMachine === null || machine.total === this.#lastMachine.total
      ? null
      : ((machine.busy - this.#lastMachine.busy) / CLOCK_TICKS_PER_SECOND) / ((now - this.#lastAt) / 1000);
    const seconds = (now - this.#lastAt) / 1000;
    this.#lastAt = now;
    this.#lastMachine = machine;
    return { seconds, cpu, machineCores };
  }
}
