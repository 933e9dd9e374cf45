import { describe, expect, test } from 'vitest';
import { ExitCode, exitCodeForResult } from '../../cli/exit-codes.ts';
import type { ResultCode } from '../../orchestrator/index.ts';
import { CliHarness } from './helpers.ts';

describe('exit codes of update, abort and rollback (in-memory platform, fake clock)', () => {
  test('maps every ResultCode to its own exit code', () => {
    const expected: Record<ResultCode, number> = {
      succeeded: 0,
      'timed-out': 3,
      'rolled-back': 4,
      failed: 5,
      'lock-held': 6,
      refused: 2,
    };
    for (const [code, exit] of Object.entries(expected)) expect(exitCodeForResult({ code: code as ResultCode })).toBe(exit);
  });

  test('succeeded -> 0, with the result on stdout', async () => {
    const h = new CliHarness();
    const started = performance.now();
    const { code, io } = await h.run(['update', '--image', 'relay:2']);
    expect(code).toBe(ExitCode.Success);
    expect(io.stdout.text).toContain('updated relay: relay-a -> relay-b, image relay:2');
    expect(io.stdout.text).toMatch(/ordinal 0: 100 sessions relay-a-0 -> relay-b-0/);
    expect(performance.now() - started).toBeLessThan(3000);
    h.s.expectCleanOn('relay-b', 'relay:2');
  });

  test('timed-out -> 3 (--timeout sets the overall deadline; the rollback says so)', async () => {
    const h = new CliHarness();
    const { code, io } = await h.run(['update', '--image', 'relay:2', '--timeout', '15s']);
    expect(code).toBe(ExitCode.TimedOut);
    expect(io.stdout.text).toContain('timed out');
    expect(io.stdout.text).toContain('rolled back: relay-a serves every session again');
    h.s.expectCleanOn('relay-a', 'relay:1');
  });

  test('rolled-back -> 4', async () => {
    const h = new CliHarness();
    h.s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-1', times: Infinity, effect: { kind: 'fail' } });
    const { code, io } = await h.run(['update', '--image', 'relay:2']);
    expect(code).toBe(ExitCode.RolledBack);
    expect(io.stdout.text).toMatch(/failed: update relay at step handover: .*ERR_RESTORE_FAILED/);
    h.s.expectCleanOn('relay-a', 'relay:1');
  });

  test('failed and not rolled back (--no-rollback) -> 5, telling how to continue', async () => {
    const h = new CliHarness();
    h.s.cluster.addFault({ method: 'relay.restore', target: 'relay-b-1', times: Infinity, effect: { kind: 'fail' } });
    const { code, io } = await h.run(['update', '--image', 'relay:2', '--no-rollback']);
    expect(code).toBe(ExitCode.Failed);
    expect(io.stdout.text).toContain('NOT rolled back');
    expect(io.stdout.text).toContain('relayctl update --image relay:2" again to continue, or "relayctl rollback"');
    h.s.cluster.clearFaults();
    // The record kept the progress: rollback finishes it.
    expect((await h.run(['rollback'])).code).toBe(ExitCode.Success);
    h.s.expectCleanOn('relay-a', 'relay:1');
  });

  test('lock held by another run -> 6, nothing touched', async () => {
    const h = new CliHarness();
    h.s.cluster.holdLock('relay', 'bob@ci', 60_000);
    const { code, io } = await h.run(['update', '--image', 'relay:2']);
    expect(code).toBe(ExitCode.LockHeld);
    expect(io.stdout.text).toContain('lock held: another run holds the update lock of relay: bob@ci');
    expect(h.s.cluster.log({ writesOnly: true })).toEqual(['lock.acquire relay alice@test !error']);
  });

  test('refused (image unchanged) -> 2', async () => {
    const h = new CliHarness();
    const { code, io } = await h.run(['update', '--image', 'relay:1']);
    expect(code).toBe(ExitCode.Usage);
    expect(io.stdout.text).toMatch(/refused: update relay: relay-a already runs relay:1.*nothing was touched/);
  });

  test('abort and rollback with no update in progress are refused -> 2', async () => {
    const h = new CliHarness();
    for (const command of ['abort', 'rollback']) {
      const { code, io } = await h.run([command]);
      expect(code).toBe(ExitCode.Usage);
      expect(io.stdout.text).toContain('no update in progress');
    }
  });

  test('abort of an update stopped before any handover -> 0, the new set removed', async () => {
    const h = new CliHarness({ world: { podStartMs: Infinity } });
    // Stops at the deadline of the new pods without rolling back, so there is something to abort.
    const first = await h.run(['update', '--image', 'relay:2', '--no-rollback', '--timeout', '30s']);
    expect(first.code).toBe(ExitCode.TimedOut);
    const { code, io } = await h.run(['abort']);
    expect(code).toBe(ExitCode.Success);
    expect(io.stdout.text).toContain('aborted the update of relay: relay-b removed, relay-a unchanged');
    h.s.expectCleanOn('relay-a', 'relay:1');
  });
});

describe('usage errors -> 2, naming what was wrong', () => {
  test.each([
    [['update', '--image', 'relay:2', '--timeout', '5x'], /--timeout <duration>' argument '5x' is invalid. expected a duration such as 500ms, 90s, 5m or 1h30m/],
    [['update', '--image', 'relay:2', '--drain-timeout', '0'], /--drain-timeout <duration>' argument '0' is invalid. expected a duration greater than 0/],
    [['update', '--image', 'relay:2', '--max-parallel', 'two'], /--max-parallel <n>' argument 'two' is invalid. expected a whole number/],
    [['--platform', 'nomad', 'status'], /argument 'nomad' is invalid. Allowed choices are local, kubernetes/],
    [['--platform', 'kubernetes', 'update', '--image', 'relay:2'], /the Kubernetes platform is not available in this build/],
    [['status', '--platform', 'kubernetes'], /the Kubernetes platform is not available in this build/],
    [['status', '-n', 'prod'], /--namespace: applies only to --platform kubernetes/],
    [['-o', 'yaml', 'status'], /argument 'yaml' is invalid. Allowed choices are text, json/],
    [['--name', 'Relay_1', 'status'], /--name: "Relay_1" is not a valid fleet name/],
    [['update'], /required option '--image <ref>' not specified/],
    [['update', '--image', 'Relay:2'], /"Relay:2" is not a valid image reference: the repository name "Relay" must be lowercase/],
    [['update', '--image', 'relay:2@sha256:abc'], /the digest "sha256:abc" is not <algorithm>:<hex>/],
    [['deploy', '--image', 'relay:'], /the tag after ":" is empty/],
    [['--dry-run=maybe', 'update', '--image', 'relay:2'], /argument 'maybe' is invalid. Allowed choices are none, client, server/],
    [['status', 'relay', '--name', 'other'], /the fleet is named twice, "relay" and --name "other": give one of them/],
    [['status', 'Relay'], /NAME: "Relay" is not a valid fleet name/],
    [['upgrade'], /unknown command 'upgrade'/],
    [['status', '--bogus'], /unknown option '--bogus'/],
    [['demo', '--state-dir', '/tmp/x'], /--state-dir: the demo always runs in a fresh temporary directory/],
  ])('%j', async (argv, message) => {
    const h = new CliHarness();
    const { code, io } = await h.run(argv);
    expect(code).toBe(ExitCode.Usage);
    expect(io.stderr.text).toMatch(message);
    // One format for commander's errors and ours: the error, maybe commander's suggestion, then where usage is.
    expect(io.stderr.text).toMatch(/^relayctl: error: [^\n]+\n(\(Did you mean [^\n]+\?\)\n)?Run 'relayctl( [a-z]+)? --help' for usage\.\n$/);
    expect(h.s.cluster.log({ writesOnly: true })).toEqual([]);
    expect(h.opened).toEqual([]);
  });

  test('a mistyped required flag is reported as the typo, with what was meant, not as the flag missing', async () => {
    const { code, io } = await new CliHarness().run(['update', '--imgae', 'relay:2']);
    expect(code).toBe(ExitCode.Usage);
    expect(io.stderr.text).toBe("relayctl: error: unknown option '--imgae'\n(Did you mean --image?)\nRun 'relayctl update --help' for usage.\n");
  });

  test('a mistyped global flag gets the same suggestion', async () => {
    const { io } = await new CliHarness().run(['status', '--stat-dir', '/tmp/x']);
    expect(io.stderr.text).toContain("unknown option '--stat-dir'\n(Did you mean --state-dir?)");
  });
});

describe('the fleet does not exist -> 1, as kubectl exits for NotFound, saying what to deploy', () => {
  test.each([
    [['status', 'edge']],
    [['update', 'edge', '--image', 'relay:2']],
    [['abort', 'edge']],
    [['rollback', 'edge']],
    [['--dry-run', 'update', 'edge', '--image', 'relay:2']],
    [['--name', 'edge', 'status']],
  ])('%j: a fleet named but not there', async (argv) => {
    const h = new CliHarness();
    const { code, io } = await h.run(argv);
    expect(code).toBe(ExitCode.NotFound);
    expect(io.stderr.text).toBe('relayctl: error: fleet "edge" not found: the fake cluster holds "relay"\nName one of them (NAME or --name), or deploy "edge" first.\n');
    expect(h.opened).toEqual([]);
  });

  test('status with nothing deployed at all', async () => {
    const h = new CliHarness({ seed: { name: 'relay', set: 'elsewhere-a' } });
    const { code, io } = await h.run(['status']);
    expect(code).toBe(ExitCode.NotFound);
    expect(io.stderr.text).toBe('relayctl: error: no fleet found: nothing is deployed in the fake cluster\nDeploy one with "relayctl deploy".\n');
  });
});
