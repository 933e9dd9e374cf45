/**
 * Readiness, liveness and startup probes as the kubelet's prober runs them: first after initialDelaySeconds, then
 * every periodSeconds (the next one starts a period after the previous finished); a result flips after
 * successThreshold consecutive successes or failureThreshold consecutive failures. Readiness and startup start
 * failed, liveness starts healthy. Handlers: httpGet (HTTP, or HTTPS without verifying the certificate, as the
 * kubelet; 200-399 is a success), tcpSocket (a connection is a success) and exec (the command as a local process with
 * the container's environment; exit 0 is a success). gRPC probes fail with a message saying they are not supported.
 * The probe timeout (timeoutSeconds) is real time.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Container, Probe } from '../kinds/pod-spec.ts';
import type { KubeletClock } from './clock.ts';

export type ProbeKind = 'Readiness' | 'Liveness' | 'Startup';

export interface ProbeResult {
  ok: boolean;
  message: string;
}

export interface ProbeTarget {
  ip: string;
  container: Container;
  /** The command line of an exec probe, with mount paths rewritten, and the environment to run it in. */
  exec(command: readonly string[]): { line: string[]; env: Record<string, string>; cwd: string };
}

function port(target: ProbeTarget, value: number | string): number | undefined {
  if (typeof value === 'number') return value;
  if (/^\d+$/.test(value)) return Number(value);
  return target.container.ports?.find((p) => p.name === value)?.containerPort;
}

function httpCheck(probe: NonNullable<Probe['httpGet']>, target: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  const to = port(target, probe.port);
  const host = probe.host ?? target.ip;
  const scheme = (probe.scheme ?? 'HTTP').toLowerCase();
  const url = `${scheme}://${host}:${to}${probe.path ?? '/'}`;
  if (to === undefined) return Promise.resolve({ ok: false, message: `Get "${url}": unknown port ${JSON.stringify(probe.port)}` });
  const headers: Record<string, string> = { 'User-Agent': 'kube-probe/1.35', Accept: '*/*' };
  for (const header of probe.httpHeaders ?? []) headers[header.name] = header.value;
  return new Promise((resolve) => {
    const request = (scheme === 'https' ? https : http).request(
      { host, port: to, path: probe.path ?? '/', method: 'GET', headers, timeout: timeoutMs, rejectUnauthorized: false, agent: false },
      (response) => {
        response.resume();
        const code = response.statusCode ?? 0;
        resolve(code >= 200 && code < 400 ? { ok: true, message: '' } : { ok: false, message: `HTTP probe failed with statuscode: ${code}` });
      },
    );
    request.on('timeout', () => request.destroy(new Error('context deadline exceeded (Client.Timeout exceeded while awaiting headers)')));
    request.on('error', (error: NodeJS.ErrnoException) => {
      const why = error.code === 'ECONNREFUSED' ? `dial tcp ${host}:${to}: connect: connection refused` : error.message;
      resolve({ ok: false, message: `Get "${url}": ${why}` });
    });
    request.end();
  });
}

function tcpCheck(probe: NonNullable<Probe['tcpSocket']>, target: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  const to = port(target, probe.port);
  const host = probe.host ?? target.ip;
  if (to === undefined) return Promise.resolve({ ok: false, message: `unknown port ${JSON.stringify(probe.port)}` });
  return new Promise((resolve) => {
    const socket = net.connect({ host, port: to, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ ok: true, message: '' });
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve({ ok: false, message: `dial tcp ${host}:${to}: i/o timeout` });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ ok: false, message: `dial tcp ${host}:${to}: ${error.code === 'ECONNREFUSED' ? 'connect: connection refused' : error.message}` }));
  });
}

function execCheck(command: readonly string[], target: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  const { line, env, cwd } = target.exec(command);
  return new Promise((resolve) => {
    let output = '';
    const child = spawn(line[0]!, line.slice(1), { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    child.stdout.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-1024)));
    child.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-1024)));
    child.on('error', (error) => resolve({ ok: false, message: error.message }));
    child.on('close', (code, signal) => {
      if (code === 0) resolve({ ok: true, message: '' });
      else resolve({ ok: false, message: signal !== null ? `command timed out` : `command ${JSON.stringify(command)} exited with ${code}: ${output.trim()}` });
    });
  });
}

export function runProbe(probe: Probe, target: ProbeTarget): Promise<ProbeResult> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  if (probe.httpGet !== undefined) return httpCheck(probe.httpGet, target, timeoutMs);
  if (probe.tcpSocket !== undefined) return tcpCheck(probe.tcpSocket, target, timeoutMs);
  if (probe.exec?.command !== undefined) return execCheck(probe.exec.command, target, timeoutMs);
  return Promise.resolve({ ok: false, message: 'gRPC probes are not supported by the stand-in kubelet' });
}

/** One probe of one container, reporting each result and every change of its state. */
export class Prober {
  readonly kind: ProbeKind;
  private readonly probe: Probe;
  private readonly target: ProbeTarget;
  private readonly clock: KubeletClock;
  private readonly onResult: (result: ProbeResult, state: boolean, changed: boolean) => void;
  private state: boolean;
  private successes = 0;
  private failures = 0;
  private cancel: (() => void) | undefined;
  private stopped = false;

  constructor(kind: ProbeKind, probe: Probe, target: ProbeTarget, clock: KubeletClock, onResult: (result: ProbeResult, state: boolean, changed: boolean) => void) {
    this.kind = kind;
    this.probe = probe;
    this.target = target;
    this.clock = clock;
    this.onResult = onResult;
    this.state = kind === 'Liveness';
  }

  start(): void {
    this.schedule((this.probe.initialDelaySeconds ?? 0) * 1000);
  }

  stop(): void {
    this.stopped = true;
    this.cancel?.();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.cancel = this.clock.after(delayMs, () => void this.run());
  }

  private async run(): Promise<void> {
    const result = await runProbe(this.probe, this.target);
    if (this.stopped) return;
    if (result.ok) {
      this.successes++;
      this.failures = 0;
    } else {
      this.failures++;
      this.successes = 0;
    }
    let changed = false;
    if (!this.state && result.ok && this.successes >= (this.probe.successThreshold ?? 1)) {
      this.state = true;
      changed = true;
    } else if (this.state && !result.ok && this.failures >= (this.probe.failureThreshold ?? 3)) {
      this.state = false;
      changed = true;
      this.failures = 0;
    }
    this.onResult(result, this.state, changed);
    // A startup probe is done once it succeeded.
    if (this.kind === 'Startup' && this.state) return;
    this.schedule((this.probe.periodSeconds ?? 10) * 1000);
  }
}
