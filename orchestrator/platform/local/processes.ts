/**
 * The local platform's processes (relays and the service): started detached so they outlive the relayctl that
 * started them, identified by pid plus their command line (a recycled pid is never mistaken for ours, so we never
 * signal a stranger), and stopped with SIGTERM, then SIGKILL.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalErrorCode, LocalPlatformError } from './local-errors.ts';

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const HAS_PROC = (() => {
  try {
    readFileSync('/proc/self/cmdline');
    return true;
  } catch {
    return false;
  }
})();

/**
 * Whether `pid` is alive and still the process we started: its command line contains every marker. Where there is
 * no /proc (macOS) only liveness can be checked. A zombie has an empty command line, so it counts as gone.
 */
export function processMatches(pid: number | null, markers: readonly string[]): boolean {
  if (pid === null || !Number.isInteger(pid) || pid <= 0) return false;
  if (!HAS_PROC) return pidAlive(pid);
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
  } catch {
    return false;
  }
  // Arguments are NUL-separated; wrapping each marker in NULs matches whole arguments only.
  const args = `\0${cmdline}`;
  return markers.every((marker) => args.includes(`\0${marker}\0`));
}

/**
 * Pids of running processes whose command line contains every marker, found by scanning /proc. Empty where there
 * is no /proc. Teardown uses it to find processes whose records were lost (a crash between spawn and write).
 */
export function findProcesses(markers: readonly string[]): number[] {
  if (!HAS_PROC) return [];
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid !== process.pid && processMatches(pid, markers)) found.push(pid);
  }
  return found;
}

export interface DetachedSpec {
  /** Absolute path of the script run with process.execPath. */
  script: string;
  /** Node flags before the script. */
  nodeArgs?: readonly string[];
  args: readonly string[];
  /** stdout and stderr go here (truncated first); `header` is written as its first line. */
  logFile: string;
  header: Record<string, unknown>;
  env: Record<string, string>;
}

/** Starts `script` detached with its output in `logFile`; returns its pid. Does not wait for it to be ready. */
export async function spawnDetached(spec: DetachedSpec): Promise<number> {
  writeFileSync(spec.logFile, `${JSON.stringify({ level: 30, time: Date.now(), ...spec.header })}\n`, { mode: 0o600 });
  const fd = openSync(spec.logFile, 'a');
  try {
    const child = spawn(process.execPath, [...(spec.nodeArgs ?? []), spec.script, ...spec.args], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...inheritedEnv(), ...spec.env },
    });
    const pid = child.pid;
    if (pid === undefined) {
      const error = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw new LocalPlatformError(LocalErrorCode.StartFailed, `cannot start ${process.execPath} ${spec.script}: ${error.message}`, {
        subject: spec.script,
        cause: error,
      });
    }
    child.on('error', () => undefined);
    // Not ours to wait for: it must keep running after this relayctl exits.
    child.unref();
    return pid;
  } finally {
    closeSync(fd);
  }
}

/**
 * The environment minus RELAY_* variables: relayd reads those as flags, and one left in the user's shell (say
 * RELAY_AWAIT_RESTORE) must not silently change how the platform starts relays.
 */
function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('RELAY_')) env[key] = value;
  }
  return env;
}

export interface Target {
  pid: number;
  markers: readonly string[];
}

function signal(target: Target, name: NodeJS.Signals): void {
  if (!processMatches(target.pid, target.markers)) return;
  try {
    // Its own process group (detached): anything it started goes too.
    process.kill(-target.pid, name);
  } catch {
    try {
      process.kill(target.pid, name);
    } catch {
      // Already gone.
    }
  }
}

/**
 * Whether `pid` has finished exiting: gone, or a zombie. An exiting process loses its command line (its memory)
 * before it closes its sockets and becomes a zombie, so "its command line no longer matches" is not yet "gone".
 */
export function exited(pid: number): boolean {
  if (!HAS_PROC) return !pidAlive(pid);
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return true;
  }
  // "pid (comm) S ...": the state follows the last ')', as comm may contain one.
  const state = stat.charAt(stat.lastIndexOf(')') + 2);
  return state === 'Z' || state === 'X';
}

async function waitExited(targets: readonly Target[], ms: number): Promise<Target[]> {
  const until = Date.now() + ms;
  for (;;) {
    const left = targets.filter((target) => !exited(target.pid));
    if (left.length === 0 || Date.now() >= until) return left;
    await sleep(50);
  }
}

/** Sends SIGTERM, waits up to `graceMs`, then SIGKILL. Throws naming the pids that survived even that. */
export async function stopProcesses(targets: readonly Target[], graceMs: number): Promise<void> {
  // Only processes that are ours now: a recorded pid may since belong to someone else.
  const ours = targets.filter((target) => processMatches(target.pid, target.markers));
  for (const target of ours) signal(target, 'SIGTERM');
  const stubborn = await waitExited(ours, graceMs);
  for (const target of stubborn) signal(target, 'SIGKILL');
  const left = await waitExited(stubborn, 2_000);
  if (left.length > 0) {
    throw new LocalPlatformError(LocalErrorCode.StopFailed, `processes ${left.map((t) => t.pid).join(', ')} still run 2 s after SIGKILL`);
  }
}

/** Sends SIGKILL to whichever of `targets` still run (no waiting). */
export function killNow(targets: readonly Target[]): void {
  for (const target of targets) signal(target, 'SIGKILL');
}

/** Sends SIGTERM to whichever of `targets` still run (no waiting: see killNow for the end of the grace period). */
export function terminateNow(targets: readonly Target[]): void {
  for (const target of targets) signal(target, 'SIGTERM');
}
