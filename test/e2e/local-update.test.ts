import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ManagementClient } from '../../api/management-client.ts';
import { ExitCode } from '../../cli/exit-codes.ts';
import { DeviceFleet } from '../../loadgen/fleet.ts';
import { readStatus, type RunResult, type UpdateEvent } from '../../orchestrator/index.ts';
import { openLocalPlatform, teardownLocal, type LocalPlatform } from '../../orchestrator/platform/local/index.ts';
import { operatorClientTlsOptions } from '../../orchestrator/platform/local/pki.ts';
import { RESTORE_LABEL } from '../../orchestrator/platform/platform.ts';
import { eventually } from '../support/eventually.ts';
import { metricValue } from '../support/relayd.ts';

/**
 * The end-to-end tests of an update: relayctl (each command its own process, as an operator runs it) against a real
 * local cluster (relayd processes, the UDP front, the upstream echo) in its default network mode, with simulated
 * devices talking through it the whole time. One per scenario: the update (with a second update started meanwhile,
 * refused by the lock), and an update aborted midway. Variants (output formats, exit codes, faults at every step,
 * the demo) run on the platform double in test/cli and test/orchestrator.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NAME = 'relay';
const REPLICAS = 3;
const DEVICES = 60;
/** No relayctl in these tests may run longer than this; it is interrupted, then killed. */
const COMMAND_LIMIT_MS = 45_000;

interface Relayctl {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** The JSON events printed so far (-o json). */
  events(): UpdateEvent[];
  /** Resolves once `test` holds for the output so far; rejects if the command exits first. */
  waitFor(what: string, test: (command: Relayctl) => boolean): Promise<void>;
}

const running = new Set<ChildProcess>();

function relayctl(stateDir: string, args: string[]): Relayctl {
  const child = spawn(process.execPath, ['bin/relayctl.js', '--state-dir', stateDir, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const waiters: { test: (command: Relayctl) => boolean; resolve: () => void }[] = [];
  const check = (): void => {
    for (const waiter of waiters.filter((candidate) => candidate.test(result))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };
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
    events: () => result.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as UpdateEvent),
    waitFor: (what, test) =>
      new Promise((resolve, reject) => {
        if (test(result)) return resolve();
        waiters.push({ test, resolve });
        void result.exited.then(() => reject(new Error(`relayctl ${args.join(' ')} exited before ${what}:\n${result.stdout}\n${result.stderr}`)));
      }),
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    result.stdout += chunk.toString();
    check();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    result.stderr += chunk.toString();
    check();
  });
  return result;
}

async function finished(stateDir: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const command = relayctl(stateDir, args);
  const code = await command.exited;
  return { code, stdout: command.stdout, stderr: command.stderr };
}

const stepFinished = (step: string) => (command: Relayctl): boolean => command.events().some((event) => event.type === 'step-finished' && event.step === step);

describe('relayctl on the local platform, under live device traffic', () => {
  let stateDir: string;
  let platform: LocalPlatform;
  let mgmt: ManagementClient;
  let fleet: DeviceFleet;

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'relayctl-e2e-'));
    const deployed = await finished(stateDir, ['-o', 'json', 'deploy', '--replicas', String(REPLICAS), '--image', 'relay:1', '--service-port', '0']);
    expect(deployed.code, deployed.stderr).toBe(ExitCode.Success);
    const info = JSON.parse(deployed.stdout) as { service: { address: string; port: number }; serverPublicKey: string };
    platform = await openLocalPlatform({ stateDir });
    mgmt = new ManagementClient(operatorClientTlsOptions(platform.pki));
    fleet = new DeviceFleet({ host: info.service.address, port: info.service.port, serverPublicKey: Buffer.from(info.serverPublicKey, 'base64'), devices: DEVICES, requestIntervalMs: 500 });
    await fleet.connect();
  }, 60_000);

  afterAll(async () => {
    for (const child of running) child.kill('SIGKILL');
    await fleet?.close();
    await mgmt?.close();
    await platform?.close();
    await teardownLocal({ stateDir }).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  }, 60_000);

  /** Devices talk until every one of them was answered `times` more on its current session. */
  async function everyDeviceAnswered(what: string, times: number): Promise<void> {
    const from = fleet.sessions().map((session) => session?.recordsIn ?? 0);
    await eventually(`every device answered ${times} more times ${what}`, async () => fleet.sessions().every((session, i) => (session?.recordsIn ?? 0) >= from[i]! + times));
  }

  /** The fleet is whole on `set`: the only set, every pod ready and serving, DEVICES sessions in all, no restore labels, lock free. */
  async function expectServingOn(set: string, image: string): Promise<void> {
    const status = await readStatus(NAME, platform, { relays: true });
    expect(status.sets.map((entry) => `${entry.set.name} ${entry.set.image}`)).toEqual([`${set} ${image}`]);
    const [only] = status.sets;
    for (const pod of only!.pods) {
      expect(pod.ready, pod.name).toBe(true);
      expect(pod.labels[RESTORE_LABEL], pod.name).toBeUndefined();
      expect(only!.relays?.[pod.name]?.state, pod.name).toBe('serving');
    }
    expect(only!.pods.reduce((sum, pod) => sum + (only!.relays?.[pod.name]?.sessions ?? 0), 0)).toBe(DEVICES);
    expect(status.inProgress).toBe(false);
    expect(status.lock).toBeNull();
  }

  /** What the devices saw over a scenario: nobody handshook, nothing was lost, nothing is left unanswered. */
  async function expectNobodyNoticed(during: () => Promise<void>): Promise<void> {
    fleet.start();
    await everyDeviceAnswered('before', 1);
    const window = fleet.openWindow();
    await during();
    const seen = window.close();
    const { unanswered } = await fleet.stop(8_000);
    expect(seen.answered).toBeGreaterThanOrEqual(DEVICES);
    expect({ handshakes: seen.handshakes, failures: seen.handshakeFailures, errors: seen.transmissionErrors, lost: seen.sessionsLost, unanswered }).toEqual({
      handshakes: 0,
      failures: 0,
      errors: 0,
      lost: 0,
      unanswered: 0,
    });
    expect(fleet.sessions().every((session) => session!.handshakes === 1 && session!.replaysDropped === 0 && session!.badRecordsDropped === 0)).toBe(true);
  }

  test('update: every session moves to set b, stragglers tunnelled, flows re-pinned by the front claimed; no device notices; a concurrent update is refused and touches nothing', async () => {
    let result: RunResult | undefined;
    let events: UpdateEvent[] = [];
    await expectNobodyNoticed(async () => {
      const update = relayctl(stateDir, ['-o', 'json', 'update', '--image', 'relay:2', '--drain-quiet', '1s', '--drain-timeout', '3s']);
      await update.waitFor('the lock was taken', stepFinished('lock'));
      const second = await finished(stateDir, ['update', '--image', 'relay:3']);
      expect(second.code, second.stderr).toBe(ExitCode.LockHeld);
      expect(second.stdout).toMatch(/lock held: another run holds the update lock of relay: .*; nothing was touched/);
      expect(await update.exited, `${update.stdout}\n${update.stderr}`).toBe(ExitCode.Success);
      events = update.events();
      const last = events.at(-1);
      result = last?.type === 'run-finished' ? last.result : undefined;
      // The moved sessions keep working on the new set.
      await everyDeviceAnswered('after the update', 2);
    });
    expect(result).toMatchObject({ code: 'succeeded', outcome: 'updated', from: 'relay-a', to: 'relay-b' });
    const moved = result!.code === 'succeeded' ? result!.moved : [];
    expect(moved.map((entry) => [entry.ordinal, entry.source, entry.target, entry.skipped])).toEqual([0, 1, 2].map((ordinal) => [ordinal, `relay-a-${ordinal}`, `relay-b-${ordinal}`, 0]));
    expect(moved.reduce((sum, entry) => sum + (entry.sessions ?? 0), 0)).toBe(DEVICES);
    // Devices that kept talking stayed on their old relay (conntrack) until it went: it tunnelled them.
    expect(events.some((event) => event.type === 'drain-progress' && event.forwardedDatagrams > 0)).toBe(true);
    // Deleting the old set re-pinned those flows on the new relays, fewest flows first: a third of them land on
    // the relay holding their session, the rest on a sibling that claims it (60 devices: never none).
    const pods = await platform.listPods('relay-b');
    const claimed = await Promise.all(pods.map(async (pod) => metricValue(await mgmt.metrics(pod.mgmtUrl!), 'relay_session_claims_total{result="claimed"}')));
    expect(claimed.reduce((sum, count) => sum + count, 0)).toBeGreaterThan(0);
    await expectServingOn('relay-b', 'relay:2');
  }, 120_000);

  test('abort mid-update (interrupted before any handover) leaves the serving set with every session', async () => {
    await expectNobodyNoticed(async () => {
      const update = relayctl(stateDir, ['-o', 'json', 'update', '--image', 'relay:3']);
      // The new set exists and its relays are starting: stop the update there, as an operator's Ctrl-C would.
      await update.waitFor('the new set was created', stepFinished('create'));
      update.child.kill('SIGINT');
      expect(await update.exited, update.stderr).toBe(ExitCode.Interrupted);
      expect(update.events().at(-1)).toMatchObject({ type: 'run-finished', result: { code: 'failed', error: { code: 'ERR_INTERRUPTED' } } });

      const abort = await finished(stateDir, ['abort']);
      expect(abort.code, `${abort.stdout}\n${abort.stderr}`).toBe(ExitCode.Success);
      expect(abort.stdout).toContain('aborted the update of relay: relay-a removed, relay-b unchanged');
      await everyDeviceAnswered('after the abort', 1);
    });
    await expectServingOn('relay-b', 'relay:2');
  }, 120_000);
});
