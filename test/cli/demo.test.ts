import { existsSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { ExitCode } from '../../cli/exit-codes.ts';
import type { LocalClusterInfo, LocalPlatformModule, PlatformProvider } from '../../cli/platforms.ts';
import { run } from '../../cli/program.ts';
import { generateDtlsKeyPair } from '../../pki/certificates.ts';
import { VERSION } from '../../relay/version.ts';
import { Scenario } from '../fakes/platform.ts';
import { adapterOnLoopback } from '../support/adapter-harness.ts';
import { memoryIo, scenarioPlatforms } from './helpers.ts';

/**
 * `relayctl demo` without a fleet update of real relays: the demo's own work (deploy a cluster in a fresh folder,
 * connect the devices, drive the update while they talk, report what they saw, tear everything down, exit with
 * the right code) against a stand-in for the local platform. The stand-in's cluster is the platform double on a
 * virtual clock (the update runs in milliseconds), its service a DTLS echo in this process, so the devices are real
 * DTLS clients. The update of real relays under live devices is test/e2e/local-update.test.ts.
 */

interface StandIn {
  platforms: PlatformProvider;
  deployed: { stateDir: string; replicas: number; image: string }[];
  tornDown: string[];
}

/** The local platform module the demo loads, standing in with `scenario`'s cluster and an in-process DTLS echo. */
function standInLocal(scenario: Scenario): StandIn {
  let echo: Awaited<ReturnType<typeof adapterOnLoopback>> | null = null;
  let info: LocalClusterInfo | null = null;
  const deployed: StandIn['deployed'] = [];
  const tornDown: string[] = [];
  const local: LocalPlatformModule = {
    async deployLocal(options) {
      deployed.push({ stateDir: options.stateDir, replicas: options.replicas, image: options.image });
      const keys = await generateDtlsKeyPair();
      echo = await adapterOnLoopback(Buffer.from(keys.privateKeyPkcs8Pem), { echo: true });
      info = {
        stateDir: options.stateDir,
        name: scenario.name,
        service: { address: '127.0.0.1', port: echo.port },
        upstream: { address: '127.0.0.1', port: 9 },
        serverPublicKey: keys.publicKeySpkiDer,
        sets: [`${scenario.name}-a`],
        serviceRunning: true,
        logs: `${options.stateDir}/local/logs`,
        network: 'shared',
      };
      return info;
    },
    openLocalPlatform: async () => Object.assign(scenario.cluster.process(), { close: async () => undefined }),
    localClusterInfo: async () => info,
    async teardownLocal(options) {
      tornDown.push(options.stateDir);
      echo?.close();
    },
  };
  return {
    platforms: { ...scenarioPlatforms(scenario), local: async () => local },
    deployed,
    tornDown,
  };
}

const IMAGE = `relay:${VERSION}`;

/**
 * The demo with `replicas` relays (what the stand-in's cluster is seeded with) on the virtual clock of that cluster:
 * its warm-up, cool-down and the update take no real time; the devices send as fast as they are answered.
 */
async function demo(options: { devices: number; replicas: number; args?: string[]; arrange?: (s: Scenario) => void }) {
  const scenario = new Scenario({ seed: { replicas: options.replicas, image: IMAGE } });
  options.arrange?.(scenario);
  const local = standInLocal(scenario);
  const io = memoryIo(scenario.clock);
  const argv = ['demo', ...(options.args ?? []), '--devices', String(options.devices), '--replicas', String(options.replicas), '--request-interval', '0s'];
  const code = await run(argv, io, { platforms: local.platforms, owner: 'alice@test', newUpdateId: () => 'upd-1' });
  return { code, io, local, scenario };
}

describe('relayctl demo', () => {
  test('deploys in a fresh folder, updates under the devices\' traffic, reports that no device noticed, tears down and removes the folder', async () => {
    const { code, io, local, scenario } = await demo({ devices: 12, replicas: 2 });
    const context = `exit ${code}\n--- stdout\n${io.stdout.text}\n--- stderr\n${io.stderr.text}`;
    expect(code, context).toBe(ExitCode.Success);
    expect(local.deployed).toEqual([{ stateDir: expect.stringMatching(/relayctl-demo-/), replicas: 2, image: IMAGE }]);
    const { stateDir } = local.deployed[0]!;
    expect(io.stderr.text).toContain(`state in ${stateDir}`);
    expect(io.stderr.text).toContain('connected 12 devices');
    // The update ran on the cluster, to the end.
    scenario.expectCleanOn('relay-b', `${IMAGE}-next`);
    expect(io.stdout.text).toMatch(/^updated relay: relay-a -> relay-b/m);
    expect(io.stdout.text).toMatch(/^what the devices saw +whole run +during the update$/m);
    expect(io.stdout.text).toContain('no device noticed: 0 handshakes and 0 errors during the update');
    expect(local.tornDown).toEqual([stateDir]);
    expect(io.stderr.text).toContain(`tore the cluster down and removed ${stateDir}`);
    expect(existsSync(stateDir)).toBe(false);
  });

  test('-o json: one demo-summary document on stdout, with what the devices saw', async () => {
    const { code, io } = await demo({ devices: 5, replicas: 1, args: ['-o', 'json'] });
    expect(code, io.stderr.text).toBe(ExitCode.Success);
    const summary = io.stdout.lines().map((line) => JSON.parse(line) as Record<string, any>).find((entry) => entry.type === 'demo-summary');
    expect(summary).toMatchObject({ type: 'demo-summary', updateCode: 'succeeded', devices: 5, devicesNoticed: false, unanswered: 0, whole: { handshakes: 5, transmissionErrors: 0 }, during: { handshakes: 0 } });
  });

  test('an update that fails is rolled back, the demo exits with its code and still tears down', async () => {
    const { code, io, local, scenario } = await demo({
      devices: 3,
      replicas: 2,
      arrange: (s) => s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-1', times: Infinity, effect: { kind: 'fail' } }),
    });
    expect(code, io.stdout.text).toBe(ExitCode.RolledBack);
    expect(io.stdout.text).toContain('the update did not succeed (rolled-back)');
    scenario.expectCleanOn('relay-a', IMAGE);
    expect(local.tornDown).toEqual([local.deployed[0]!.stateDir]);
    expect(existsSync(local.deployed[0]!.stateDir)).toBe(false);
  });

  test('refuses --state-dir and --dry-run before it deploys anything', async () => {
    for (const flag of [['--state-dir', '/tmp/x'], ['--dry-run']]) {
      const { code, io, local } = await demo({ devices: 1, replicas: 1, args: flag });
      expect(code).toBe(ExitCode.Usage);
      expect(io.stderr.text).toContain(`relayctl: error: ${flag[0]}: `);
      expect(local.deployed).toEqual([]);
    }
  });
});
