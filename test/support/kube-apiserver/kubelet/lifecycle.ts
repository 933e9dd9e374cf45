/**
 * The pieces of a container's life that need no pod: the kubelet's restart back-off, the bounded log buffer, and
 * preStop hooks (the `sleep` action and `sleep N` exec commands as waits on the kubelet clock, other exec commands
 * as local processes, httpGet as a request to the pod).
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { Container } from '../kinds/pod-spec.ts';

export const INITIAL_BACKOFF_MS = 10_000;
export const MAX_BACKOFF_MS = 300_000;

export interface Backoff {
  delayMs: number;
  lastUpdate: number;
}

/** client-go's flowcontrol.Backoff.Next: start at 10 s, double up to 5 min, start over after 10 min of quiet. */
export function nextBackoff(entry: Backoff | undefined, now: number): Backoff {
  if (entry === undefined || now - entry.lastUpdate > 2 * MAX_BACKOFF_MS) return { delayMs: INITIAL_BACKOFF_MS, lastUpdate: now };
  return { delayMs: Math.min(entry.delayMs * 2, MAX_BACKOFF_MS), lastUpdate: now };
}

/** Whether a container that exited `now` waits (CrashLoopBackOff) before its next start, per its back-off entry. */
export function inBackoff(entry: Backoff | undefined, now: number): entry is Backoff {
  return entry !== undefined && now - entry.lastUpdate <= 2 * MAX_BACKOFF_MS && now - entry.lastUpdate < entry.delayMs;
}

export class LogBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  append(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.limit && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** `sleep N`, `/bin/sleep N`, `sh -c "sleep N"`: a preStop that only waits, in seconds; null for anything else. */
export function sleepSeconds(command: readonly string[]): number | null {
  const line = command.length === 3 && /(^|\/)(ba)?sh$/.test(command[0]!) && command[1] === '-c' ? command[2]!.trim().split(/\s+/) : [...command];
  if (line.length === 2 && /(^|\/)sleep$/.test(line[0]!) && /^\d+(\.\d+)?$/.test(line[1]!)) return Number(line[1]);
  return null;
}

export interface PreStopContext {
  container: Container;
  podIP: string;
  /** Waits kubelet milliseconds. */
  wait(ms: number): Promise<void>;
  /** An exec command as a local process line with the container's environment. */
  exec(command: readonly string[]): { line: string[]; env: Record<string, string>; cwd: string };
}

export async function runPreStop(hook: Record<string, unknown>, context: PreStopContext): Promise<void> {
  const sleep = hook.sleep as { seconds?: number } | undefined;
  if (sleep !== undefined) return context.wait((sleep.seconds ?? 0) * 1000);
  const exec = hook.exec as { command?: string[] } | undefined;
  if (exec?.command !== undefined) {
    const seconds = sleepSeconds(exec.command);
    if (seconds !== null) return context.wait(seconds * 1000);
    const { line, env, cwd } = context.exec(exec.command);
    await new Promise<void>((resolve) => {
      const child = spawn(line[0]!, line.slice(1), { env, cwd, stdio: 'ignore' });
      child.on('error', () => resolve());
      child.on('exit', () => resolve());
    });
    return;
  }
  const httpGet = hook.httpGet as { port: number | string; path?: string; host?: string } | undefined;
  if (httpGet === undefined) return;
  const port = typeof httpGet.port === 'number' ? httpGet.port : context.container.ports?.find((p) => p.name === httpGet.port)?.containerPort;
  if (port === undefined) return;
  await new Promise<void>((resolve) => {
    const request = http.get({ host: httpGet.host ?? context.podIP, port, path: httpGet.path ?? '/', agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve());
    });
    request.on('error', () => resolve());
  });
}
