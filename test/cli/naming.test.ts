import { describe, expect, test } from 'vitest';
import { ExitCode } from '../../cli/exit-codes.ts';
import { resolveFleet } from '../../cli/fleet.ts';
import { resolveGlobals } from '../../cli/options.ts';
import { run } from '../../cli/program.ts';
import { CliHarness, memoryIo, scenarioPlatforms } from './helpers.ts';

/** The fleet as kubectl and the Argo Rollouts plugin take a name: NAME, or --name, or the current one. */
describe('naming the fleet', () => {
  test('without a name, the command acts on the current fleet (the only one there)', async () => {
    const h = new CliHarness({ seed: { name: 'edge' } });
    const { code, io } = await h.run(['update', '--image', 'relay:2']);
    expect(code).toBe(ExitCode.Success);
    expect(io.stdout.lines()[0]).toMatch(/^updated edge: edge-a -> edge-b, image relay:2/);
    expect(h.opened.map((globals) => globals.name)).toEqual(['edge']);
  });

  test.each([
    [['status', 'edge']],
    [['status', '--name', 'edge']],
    [['--name', 'edge', 'status']],
    [['status', 'edge', '--name', 'edge']],
  ])('%j: NAME and --name are the same thing', async (argv) => {
    const h = new CliHarness({ seed: { name: 'edge' } });
    const { code, io } = await h.run(argv);
    expect(code).toBe(ExitCode.Success);
    expect(io.stdout.lines()[0]).toBe('fleet edge on fake');
  });

  test('the advice after a failure names the fleet the way it was given', async () => {
    const h = new CliHarness({ seed: { name: 'edge' } });
    h.s.cluster.addFault({ method: 'relay.restore', target: 'edge-b-1', times: Infinity, effect: { kind: 'fail' } });
    const { code, io } = await h.run(['update', 'edge', '--image', 'relay:2', '--no-rollback']);
    expect(code).toBe(ExitCode.Failed);
    expect(io.stdout.text).toContain('run "relayctl update edge --image relay:2" again to continue, or "relayctl rollback edge"');
    h.s.cluster.clearFaults();
    expect((await h.run(['rollback', 'edge'])).code).toBe(ExitCode.Success);
  });

  test('several fleets and no name: a usage error listing them', async () => {
    const h = new CliHarness();
    const platforms = { ...scenarioPlatforms(h.s), fleets: async () => ({ names: ['relay', 'edge'], where: 'namespace prod', deployCommand: () => 'kubectl apply -k manifests' }) };
    const io = memoryIo(h.s.clock);
    expect(await run(['status'], io, { platforms })).toBe(ExitCode.Usage);
    expect(io.stderr.text).toBe(
      'relayctl: error: namespace prod holds 2 fleets ("relay", "edge"): name the one you mean, as NAME or --name\nRun \'relayctl status --help\' for usage.\n',
    );
    // Named, it is found among them.
    expect(await run(['status', 'relay'], memoryIo(h.s.clock), { platforms })).toBe(ExitCode.Success);
  });

  test('a fleet listed but with neither set is not found either, and status says what to deploy', async () => {
    const h = new CliHarness();
    const platforms = { ...scenarioPlatforms(h.s), fleets: async () => ({ names: ['relay', 'ghost'], where: 'the fake cluster', deployCommand: (name?: string) => `relayctl deploy ${name}` }) };
    const io = memoryIo(h.s.clock);
    expect(await run(['status', 'ghost'], io, { platforms })).toBe(ExitCode.NotFound);
    expect(io.stderr.text).toBe('relayctl: error: fleet "ghost" not found on fake (the fake cluster): neither ghost-a nor ghost-b exists\nDeploy it with "relayctl deploy ghost".\n');
  });
});

test('a state that cannot be read stops the commands that need the fleet, not teardown, which cleans it up', async () => {
  const h = new CliHarness();
  const broken = { ...scenarioPlatforms(h.s), fleets: () => Promise.reject(new Error('cluster.json: unexpected end of JSON input')) };
  const globals = resolveGlobals({}, memoryIo(h.s.clock), { stateDirGiven: false });
  await expect(resolveFleet(broken, globals, 'existing')).rejects.toThrow('unexpected end of JSON input');
  await expect(resolveFleet(broken, globals, 'known')).resolves.toBe('relay');
});

describe('--dry-run=client|server', () => {
  test.each([
    [['--dry-run', 'update', '--image', 'relay:2'], 'client'],
    [['update', '--image', 'relay:2', '--dry-run'], 'client'],
    [['--dry-run=client', 'update', '--image', 'relay:2'], 'client'],
    [['--dry-run=server', 'update', '--image', 'relay:2'], 'server'],
  ])('%j: the mode reaches the platform, nothing is written', async (argv, mode) => {
    const h = new CliHarness();
    const { code, io } = await h.run(argv);
    expect(code).toBe(ExitCode.Success);
    expect(h.opened.map((globals) => globals.dryRun)).toEqual([mode]);
    expect(io.stdout.lines()[0]).toMatch(new RegExp(`^dry run${mode === 'server' ? ' \\(server\\)' : ''}: update relay would run: would update relay-a`));
    expect(h.s.cluster.log({ writesOnly: true })).toEqual([]);
  });

  test('-o json carries the mode', async () => {
    const h = new CliHarness();
    const { io } = await h.run(['--dry-run=server', '-o', 'json', 'rollback']);
    expect(JSON.parse(io.stdout.text)).toMatchObject({ dryRun: 'server', command: 'rollback', verdict: 'refused', message: 'no update in progress' });
  });

  test('--dry-run=none runs for real', async () => {
    const h = new CliHarness();
    const { code } = await h.run(['--dry-run=none', 'update', '--image', 'relay:2']);
    expect(code).toBe(ExitCode.Success);
    expect(h.opened.map((globals) => globals.dryRun)).toEqual([null]);
    h.s.expectCleanOn('relay-b', 'relay:2');
  });
});
