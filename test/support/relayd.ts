import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { ManagementClient } from '../../api/management-client.ts';
import { relaydMain } from '../../relay/entry.ts';
import { RELAYD_NODE_FLAGS } from '../../relay/runtime-flags.ts';
import { ensureLocalPki, operatorClientTlsOptions, type LocalPki } from '../../orchestrator/platform/local/pki.ts';
import { UpstreamEcho } from '../../orchestrator/platform/local/upstream-echo.ts';

const RELAYD = relaydMain();

export interface RelayProcess {
  name: string;
  child: ChildProcess;
  dtlsPort: number;
  mgmtUrl: string;
  tunnelPort: number;
  /** http://127.0.0.1:port of the plain-HTTP health port (null when started with --health-port off). */
  healthUrl: string | null;
  logs: Record<string, unknown>[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A state folder with the local PKI, shared by the relays and clients of one test file. */
export async function testPki(): Promise<{ dir: string; pki: LocalPki; operator: ManagementClient; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'relayctl-test-'));
  const pki = await ensureLocalPki(dir);
  const operator = new ManagementClient(operatorClientTlsOptions(pki));
  return {
    dir,
    pki,
    operator,
    async cleanup() {
      await operator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Starts relayd as a child process on loopback with ephemeral ports and waits until it listens. */
export async function startRelay(pki: LocalPki, options: { name: string; upstream: string; args?: string[]; env?: Record<string, string>; nodeArgs?: string[] }): Promise<RelayProcess> {
  const args = [
    ...RELAYD_NODE_FLAGS,
    ...(options.nodeArgs ?? []),
    RELAYD,
    '--pod-name', options.name,
    '--dtls-host', '127.0.0.1', '--dtls-port', '0',
    '--mgmt-host', '127.0.0.1', '--mgmt-port', '0',
    '--tunnel-host', '127.0.0.1', '--tunnel-port', '0',
    '--health-port', '0',
    '--dtls-key', pki.paths.dtlsKey,
    '--tls-cert', pki.paths.relayCert, '--tls-key', pki.paths.relayKey, '--tls-ca', pki.paths.ca,
    '--peer-servername', pki.servername,
    '--upstream', options.upstream,
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const started = new Promise<Record<string, unknown>>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        entry = { msg: line, unparsed: true };
      }
      logs.push(entry);
      if (entry.msg === 'relay serving') resolve(entry);
    });
    child.once('exit', (code) => reject(new Error(`relayd ${options.name} exited with ${code} before serving: ${stderr}${logs.map((l) => JSON.stringify(l)).join('\n')}`)));
  });
  const ready = await started;
  const port = (text: unknown): number => Number(String(text).split(':').pop());
  child.once('exit', (code, signal) => { if (code !== 0 && code !== null || (signal !== null && signal !== 'SIGTERM' && signal !== 'SIGKILL')) process.stderr.write(`relayd ${options.name} exited code=${code} signal=${signal}: ${stderr}\n`); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    name: options.name,
    child,
    dtlsPort: port(ready.dtls),
    mgmtUrl: `https://127.0.0.1:${port(ready.mgmt)}`,
    tunnelPort: Number(ready.tunnelPort),
    healthUrl: ready.health === 'off' ? null : `http://127.0.0.1:${port(ready.health)}`,
    logs,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * The fixture of the relay e2e files: a PKI and an upstream echo for the file, and relays that are
 * stopped after each test.
 */
export function relayFixture() {
  let env: Awaited<ReturnType<typeof testPki>> | undefined;
  let echo: UpstreamEcho | undefined;
  let upstream = '';
  const relays: RelayProcess[] = [];
  beforeAll(async () => {
    env = await testPki();
    echo = new UpstreamEcho();
    upstream = `127.0.0.1:${(await echo.listen()).port}`;
  });
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((relay) => relay.stop()));
  });
  afterAll(async () => {
    await echo?.close();
    await env?.cleanup();
  });
  return {
    get env() {
      return env!;
    },
    get echo() {
      return echo!;
    },
    get upstream() {
      return upstream;
    },
    /** Starts a relay with this file's PKI and upstream; it is stopped after the test. */
    async relay(name: string, args: string[] = []): Promise<RelayProcess> {
      return this.track(await startRelay(env!.pki, { name, upstream, args }));
    },
    /** Stops this relay after the test too. */
    track(relay: RelayProcess): RelayProcess {
      relays.push(relay);
      return relay;
    },
  };
}

/** The value of one Prometheus series (`name` or `name{labels}`) in a /metrics text; 0 when absent. */
export function metricValue(metrics: string, series: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}
