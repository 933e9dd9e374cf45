import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { DeviceFleet, diffCounters, type FleetCounters } from '../../cli/devices/fleet.ts';
import { ExitCode } from '../../cli/exit-codes.ts';
import { teardownLocal } from '../../orchestrator/platform/local/index.ts';

/**
 * relayctl against a real local cluster (relayd processes, the UDP front, the echo), with simulated devices
 * talking through it the whole time. Each relayctl is its own process, as an operator runs it.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEVICES = 60;
/** No relayctl in these tests may run longer than this; it is interrupted, then killed. */
const COMMAND_LIMIT_MS = 45_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Relayctl {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Resolves once stderr contains `text`. */
  waitFor(text: string): Promise<void>;
}

const running = new Set<ChildProcess>();

function relayctl(stateDir: string, args: string[]): Relayctl {
  const child = spawn(process.execPath, ['bin/relayctl.js', '--state-dir', stateDir, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const waiters: { text: string; resolve: () => void }[] = [];
  const result: Relayctl = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => {
      const interrupt = setTimeout(() => child.kill('SIGINT'), COMMAND_LIMIT_MS);
      const kill = setTimeout(() => child.kill('SIGKILL'), COMMAND_LIMIT_MS + 10_000);
      child.on('exit', (code) => {
        clearTimeout(interrupt);
        clearTimeout(kill);
        running.delete(child);
        resolve(code);
      });
    }),
    waitFor: (text) =>
      new Promise((resolve, reject) => {
        if (result.stderr.includes(text)) return resolve();
        waiters.push({ text, resolve });
        void result.exited.then(() => reject(new Error(`relayctl ${args.join(' ')} exited before printing "${text}":\n${result.stderr}`)));
      }),
  };
  child.stdout!.on('data', (chunk: Buffer) => (result.stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => {
    result.stderr += chunk.toString();
    for (const waiter of waiters.filter((candidate) => result.stderr.includes(candidate.text))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  return result;
}

async function finished(stateDir: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const command = relayctl(stateDir, args);
  const code = await command.exited;
  return { code, stdout: command.stdout, stderr: command.stderr };
}

interface StatusJson {
  sets: { set: { name: string; image: string }; pods: { name: string; ready: boolean; labels: Record<string, string> }[]; relays: Record<string, { state: string; sessions: number } | null> }[];
  update: { phase: string } | null;
  inProgress: boolean;
  lock: unknown;
}

async function status(stateDir: string): Promise<StatusJson> {
  const { code, stdout, stderr } = await finished(stateDir, ['status', '-o', 'json']);
  expect(code, stderr).toBe(ExitCode.Success);
  return JSON.parse(stdout) as StatusJson;
}

/** The fleet is whole on `set`: the only set, every pod ready and serving, `sessions` in all, no restore labels, lock free. */
async function expectServingOn(stateDir: string, set: string, sessions: number): Promise<void> {
  const fleet = await status(stateDir);
  expect(fleet.sets.map((entry) => entry.set.name)).toEqual([set]);
  const [only] = fleet.sets;
  for (const pod of only!.pods) {
    expect(pod.ready, pod.name).toBe(true);
    expect(pod.labels['restore'], pod.name).toBeUndefined();
    expect(only!.relays[pod.name]?.state, pod.name).toBe('serving');
  }
  expect(only!.pods.reduce((sum, pod) => sum + (only!.relays[pod.name]?.sessions ?? 0), 0)).toBe(sessions);
  expect(fleet.inProgress).toBe(false);
  expect(fleet.lock).toBeNull();
}

describe('relayctl on the local platform, under live device traffic', () => {
  let stateDir: string;
  let fleet: DeviceFleet | null = null;
  let baseline: FleetCounters;

  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'relayctl-e2e-'));
    const deployed = await finished(stateDir, ['-o', 'json', 'deploy', '--replicas', '3', '--image', 'relay:1', '--service-port', '0']);
    expect(deployed.code, deployed.stderr).toBe(ExitCode.Success);
    const info = JSON.parse(deployed.stdout) as { service: { address: string; port: number }; serverPublicKey: string };
    fleet = new DeviceFleet({
      host: info.service.address,
      port: info.service.port,
      serverPublicKey: Buffer.from(info.serverPublicKey, 'base64'),
      devices: DEVICES,
      requestIntervalMs: 500,
    });
    await fleet.connect();
    fleet.start();
    await sleep(1500);
    baseline = fleet.snapshot();
  }, 60_000);

  afterEach(async () => {
    for (const child of running) child.kill('SIGKILL');
    await fleet?.close();
    fleet = null;
    await teardownLocal({ stateDir }).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  }, 60_000);

  /** What the devices saw since the update began; stops them. */
  async function devicesSaw(): Promise<FleetCounters & { unanswered: number }> {
    const { unanswered } = await fleet!.stop(8000);
    return { ...diffCounters(fleet!.snapshot(), baseline), unanswered };
  }

  test('update: sessions move to set b with no new handshake and no unanswered request; set a gone, lock released', async () => {
    const update = await finished(stateDir, ['update', '--image', 'relay:2', '--drain-quiet', '1s', '--drain-timeout', '3s']);
    expect(update.code, `${update.stdout}\n${update.stderr}`).toBe(ExitCode.Success);
    expect(update.stdout).toMatch(/^updated relay: relay-a -> relay-b, image relay:2/m);
    // The devices keep talking to the new set for a while: the moved sessions must keep working there.
    await sleep(4000);
    const saw = await devicesSaw();
    expect(saw.answered).toBeGreaterThan(DEVICES * 3);
    expect({ handshakes: saw.handshakes, errors: saw.transmissionErrors, lost: saw.sessionsLost, unanswered: saw.unanswered }).toEqual({
      handshakes: 0,
      errors: 0,
      lost: 0,
      unanswered: 0,
    });
    await expectServingOn(stateDir, 'relay-b', DEVICES);
  }, 90_000);

  test('abort mid-update (interrupted before any handover) leaves set a serving every session', async () => {
    const update = relayctl(stateDir, ['update', '--image', 'relay:2']);
    // The new set exists and its relays are starting: stop the update there, as an operator's Ctrl-C would.
    await update.waitFor('create: done');
    update.child.kill('SIGINT');
    expect(await update.exited, update.stderr).toBe(ExitCode.Interrupted);
    expect(update.stdout).toContain('interrupted: update relay stopped at step');

    const abort = await finished(stateDir, ['abort']);
    expect(abort.code, `${abort.stdout}\n${abort.stderr}`).toBe(ExitCode.Success);
    expect(abort.stdout).toContain('aborted the update of relay: relay-b removed, relay-a unchanged');
    await sleep(2000);
    const saw = await devicesSaw();
    expect({ handshakes: saw.handshakes, errors: saw.transmissionErrors, unanswered: saw.unanswered }).toEqual({ handshakes: 0, errors: 0, unanswered: 0 });
    await expectServingOn(stateDir, 'relay-a', DEVICES);
  }, 90_000);

  test('two concurrent updates: the second exits with the lock-held code and touches nothing', async () => {
    const first = relayctl(stateDir, ['update', '--image', 'relay:2', '--drain-quiet', '1s', '--drain-timeout', '3s']);
    await first.waitFor('lock: done');
    const second = await finished(stateDir, ['update', '--image', 'relay:3']);
    expect(second.code, second.stderr).toBe(ExitCode.LockHeld);
    expect(second.stdout).toMatch(/lock held: another run holds the update lock of relay: .*; nothing was touched/);
    expect(await first.exited, first.stderr).toBe(ExitCode.Success);
    const fleetStatus = await status(stateDir);
    expect(fleetStatus.sets.map((entry) => `${entry.set.name} ${entry.set.image}`)).toEqual(['relay-b relay:2']);
    expect(fleetStatus.lock).toBeNull();
  }, 90_000);
});
