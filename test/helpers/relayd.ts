import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ManagementClient } from '../../api/management-client.ts';
import { RELAYD_NODE_FLAGS } from '../../relay/runtime-flags.ts';
import { ensureLocalPki, operatorClientTlsOptions, type LocalPki } from '../../orchestrator/platform/local/pki.ts';

const RELAYD = new URL('../../relay/main.ts', import.meta.url).pathname;

export interface RelayProcess {
  name: string;
  child: ChildProcess;
  dtlsPort: number;
  mgmtUrl: string;
  tunnelPort: number;
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
    logs,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
