import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultBinds, loadConfig, relaydCommand, type RelaydOptions } from '../../relay/config.ts';
import { ensureLocalPki, type LocalPki } from '../../orchestrator/platform/local/pki.ts';

/** Parses relayd's command line with exactly `env` as its RELAY_* environment. */
function parse(args: string[], env: Record<string, string> = {}): RelaydOptions {
  const saved = Object.entries(process.env).filter(([key]) => key.startsWith('RELAY_'));
  for (const [key] of saved) delete process.env[key];
  Object.assign(process.env, env);
  try {
    const command = relaydCommand().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    command.parse(['node', 'relayd', ...args]);
    return command.opts<RelaydOptions>();
  } finally {
    for (const key of Object.keys(env)) delete process.env[key];
    Object.assign(process.env, Object.fromEntries(saved));
  }
}

describe('relayd flags for a pod', () => {
  let dir: string;
  let pki: LocalPki;
  let required: string[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relayctl-config-'));
    pki = await ensureLocalPki(dir);
    required = ['--dtls-key', pki.paths.dtlsKey, '--tls-cert', pki.paths.relayCert, '--tls-key', pki.paths.relayKey, '--tls-ca', pki.paths.ca, '--upstream', '127.0.0.1:5683', '--kubernetes-api', 'off'];
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads the downward-API environment; the pod IP becomes the default of the binds', async () => {
    const options = parse(required, { RELAY_POD_NAME: 'relay-b-2', RELAY_POD_NAMESPACE: 'relays', RELAY_POD_IP: '10.244.1.7' });
    const config = await loadConfig(options);
    expect({ pod: config.podName, ns: config.podNamespace, ip: config.podIp }).toEqual({ pod: 'relay-b-2', ns: 'relays', ip: '10.244.1.7' });
    expect({ dtls: config.dtls.host, tunnel: config.tunnel.host, mgmt: config.mgmt.host, health: config.health }).toEqual({
      dtls: '10.244.1.7', tunnel: '10.244.1.7', mgmt: '0.0.0.0', health: { host: '0.0.0.0', port: 8080 },
    });
    // Explicit addresses win.
    const explicit = await loadConfig(parse([...required, '--tunnel-host', '0.0.0.0', '--mgmt-host', '10.244.1.7'], { RELAY_POD_IP: '10.244.1.7' }));
    expect({ tunnel: explicit.tunnel.host, mgmt: explicit.mgmt.host, health: explicit.health?.host }).toEqual({ tunnel: '0.0.0.0', mgmt: '10.244.1.7', health: '10.244.1.7' });
  });

  it('binds TCP to the pod IP only when it is a loopback address (kubectl port-forward dials localhost in the pod)', () => {
    expect(defaultBinds(null)).toEqual({ udp: '0.0.0.0', tcp: '0.0.0.0' });
    expect(defaultBinds('10.1.2.3')).toEqual({ udp: '10.1.2.3', tcp: '0.0.0.0' });
    expect(defaultBinds('fd00::3')).toEqual({ udp: 'fd00::3', tcp: '::' });
    expect(defaultBinds('127.4.0.2')).toEqual({ udp: '127.4.0.2', tcp: '127.4.0.2' });
    expect(defaultBinds('::1')).toEqual({ udp: '::1', tcp: '::1' });
  });

  it('--health-port: 8080 by default, 0 for any, off for none; the restore wait defaults to 2 minutes', async () => {
    expect(parse(required).healthPort).toBe(8080);
    expect(parse(required, { RELAY_HEALTH_PORT: '0' }).healthPort).toBe(0);
    expect((await loadConfig(parse([...required, '--health-port', 'off']))).health).toBeNull();
    expect(parse(required).restoreWait).toBe(120_000);
    expect(parse(required, { RELAY_RESTORE_WAIT: '30s' }).restoreWait).toBe(30_000);
    expect(() => parse([...required, '--health-port', 'http'])).toThrow('expected a port number 0-65535, got "http"');
  });

  it('boolean variables are read by value: RELAY_AWAIT_RESTORE=false is off', () => {
    expect(parse(required).awaitRestore).toBe(false);
    expect(parse([...required, '--await-restore']).awaitRestore).toBe(true);
    expect(parse(required, { RELAY_AWAIT_RESTORE: 'true' }).awaitRestore).toBe(true);
    expect(parse(required, { RELAY_AWAIT_RESTORE: 'false' }).awaitRestore).toBe(false);
    expect(parse([...required, '--await-restore', 'false']).awaitRestore).toBe(false);
    expect(() => parse(required, { RELAY_AWAIT_RESTORE: 'maybe' })).toThrow('expected true or false, got "maybe"');
  });

  it('checks the pod IP and the Kubernetes API setting', () => {
    expect(() => parse([...required, '--pod-ip', 'relay-a-0'])).toThrow('expected an IPv4 or IPv6 address, got "relay-a-0"');
    expect(() => parse([...required, '--kubernetes-api', 'http://10.96.0.1'])).toThrow('expected auto, off or an https URL');
    expect(parse([...required, '--kubernetes-api', 'https://10.96.0.1:6443/ignored']).kubernetesApi).toBe('https://10.96.0.1:6443');
  });
});
