import { describe, expect, test } from 'vitest';
import { ExitCode } from '../../cli/exit-codes.ts';
import { ANSI, CliHarness, memoryIo } from './helpers.ts';

const CURSOR_UP = /\u001b\[\d+A/;
const COLOUR = /\u001b\[(3\d|2|1|22|39)m/;

describe('-o json', () => {
  test('one JSON event per stdout line, each with a type and a timestamp, ending with run-finished', async () => {
    const h = new CliHarness();
    const { code, io } = await h.run(['-o', 'json', 'update', '--image', 'relay:2']);
    expect(code).toBe(ExitCode.Success);
    const lines = io.stdout.text.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(20);
    const events = lines.map((line) => JSON.parse(line) as { type: string; at: number; time: string; result?: { code: string } });
    for (const event of events) {
      expect(typeof event.type).toBe('string');
      expect(Number.isFinite(event.at)).toBe(true);
      expect(new Date(event.time).getTime()).toBe(event.at);
    }
    expect(events[0]?.type).toBe('run-started');
    expect(events.at(-1)).toMatchObject({ type: 'run-finished', result: { code: 'succeeded' } });
    expect(new Set(events.map((event) => event.type))).toEqual(expect.objectContaining({}));
    expect(events.some((event) => event.type === 'ordinal-moved')).toBe(true);
    // Progress went to stdout as JSON: nothing human on stderr.
    expect(io.stderr.text).toBe('');
  });

  test('a run that stops early still ends with run-finished carrying the result', async () => {
    const h = new CliHarness();
    h.s.cluster.holdLock('relay', 'bob@ci', 60_000);
    const { code, io } = await h.run(['update', '--image', 'relay:2', '--output', 'json']);
    expect(code).toBe(ExitCode.LockHeld);
    const events = io.stdout.lines().map((line) => JSON.parse(line) as { type: string; result?: unknown });
    expect(events.at(-1)).toMatchObject({ type: 'run-finished', result: { code: 'lock-held', holder: 'bob@ci' } });
  });

  test('status -o json is one parseable document', async () => {
    const h = new CliHarness();
    const { code, io } = await h.run(['status', '-o', 'json']);
    expect(code).toBe(ExitCode.Success);
    expect(JSON.parse(io.stdout.text)).toMatchObject({ name: 'relay', platform: 'fake', inProgress: false, sets: [{ set: { name: 'relay-a' } }] });
  });
});

describe('off a terminal', () => {
  test('plain progress lines with elapsed seconds on stderr, the result on stdout, no escape codes anywhere', async () => {
    const h = new CliHarness();
    const { code, io } = await h.run(['update', '--image', 'relay:2']);
    expect(code).toBe(ExitCode.Success);
    expect(io.stdout.text).not.toMatch(ANSI);
    expect(io.stderr.text).not.toMatch(ANSI);
    const lines = io.stderr.lines();
    for (const line of lines) expect(line).toMatch(/^ *\d+s {2}\S/);
    expect(lines).toContainEqual(expect.stringMatching(/^ *\d+s {2}a: 2 of 3 ready {2}b: 1 ready {2}sessions handed over 100\/300$/));
    expect(lines).toContainEqual(expect.stringMatching(/sessions handed over 300\/300/));
    // Only changes are printed: the same summary never twice in a row.
    const summaries = lines.filter((line) => /  a: |  b: /.test(line)).map((line) => line.replace(/^ *\d+s {2}/, ''));
    for (let index = 1; index < summaries.length; index++) expect(summaries[index]).not.toBe(summaries[index - 1]);
    expect(io.stdout.lines()[0]).toMatch(/^updated relay: relay-a -> relay-b, image relay:2, in \d/);
  });

  test('status --watch follows an update in progress, printing a line only when it changes, and exits with its outcome', async () => {
    const h = new CliHarness();
    const update = h.run(['update', '--image', 'relay:2']);
    // Start watching once the update holds the lock and wrote its record.
    await new Promise<void>((resolve) => {
      h.s.cluster.beforeCall = (call) => {
        if (call.method === 'createSet') resolve();
      };
    });
    const watch = await h.run(['status', '--watch']);
    expect((await update).code).toBe(ExitCode.Success);
    expect(watch.code).toBe(ExitCode.Success);
    const lines = watch.io.stdout.lines();
    expect(lines.length).toBeGreaterThan(2);
    expect(lines[0]).toMatch(/^ *0s {2}a: 3 ready, 300 sessions {2}.*update Progressing: forward at step create {2}lock held by alice@test$/);
    expect(lines.at(-1)).toMatch(/b: 3 ready, 300 sessions {2}last update Completed$/);
    for (let index = 1; index < lines.length; index++) expect(lines[index]?.replace(/^ *\d+s/, '')).not.toBe(lines[index - 1]?.replace(/^ *\d+s/, ''));
  });
});

describe('on a terminal', () => {
  test('the live view is redrawn in place with colour, and the result is coloured on a terminal stdout', async () => {
    const h = new CliHarness();
    const { code, io } = await h.run(['update', '--image', 'relay:2'], { stderrTTY: true, stdoutTTY: true });
    expect(code).toBe(ExitCode.Success);
    expect(io.stderr.text).toMatch(CURSOR_UP);
    expect(io.stderr.text).toMatch(COLOUR);
    expect(io.stdout.text).toMatch(COLOUR);
    // The last frame shows every step done and a row per pod.
    const last = io.stderr.text.split(CURSOR_UP).at(-1) ?? '';
    expect(last.match(/✓/g)).toHaveLength(9);
    expect(last).toMatch(/relay-b-2 .*serving .*300|relay-b-2 .*serving +\S*100/);
    expect(last).toMatch(/relay-a-2 .*gone/);
  });

  test.each([
    ['NO_COLOR set', ['update', '--image', 'relay:2'], { NO_COLOR: '1' }],
    ['--no-color', ['--no-color', 'update', '--image', 'relay:2'], {}],
  ])('%s: no colour, still redrawn in place', async (_label, argv, env) => {
    const h = new CliHarness();
    const { code, io } = await h.run(argv, { stderrTTY: true, stdoutTTY: true, env });
    expect(code).toBe(ExitCode.Success);
    expect(io.stderr.text).toMatch(CURSOR_UP);
    expect(io.stderr.text).not.toMatch(COLOUR);
    expect(io.stdout.text).not.toMatch(ANSI);
  });

  test('an empty NO_COLOR does not turn colour off', async () => {
    const h = new CliHarness();
    const { io } = await h.run(['update', '--image', 'relay:2'], { stderrTTY: true, env: { NO_COLOR: '' } });
    expect(io.stderr.text).toMatch(COLOUR);
  });

  test('TERM=dumb gets plain lines', async () => {
    const h = new CliHarness();
    const { io } = await h.run(['update', '--image', 'relay:2'], { stderrTTY: true, env: { TERM: 'dumb' } });
    expect(io.stderr.text).not.toMatch(ANSI);
    expect(io.stderr.lines()[0]).toMatch(/^ {4}0s {2}update relay on fake as alice@test$/);
  });
});

describe('--dry-run', () => {
  test('says what an update would do and changes nothing', async () => {
    const h = new CliHarness();
    const { code, io } = await h.run(['--dry-run', 'update', '--image', 'relay:2', '--max-parallel', '2']);
    expect(code).toBe(ExitCode.Success);
    expect(io.stdout.text).toContain('dry run: update relay would run: would update relay-a (3 relays, image relay:1, 300 sessions) to relay-b (image relay:2)');
    expect(io.stdout.text).toContain('2 at a time');
    expect(h.s.cluster.log({ writesOnly: true })).toEqual([]);
  });

  test('an update that would be refused exits 2, one blocked by the lock 6', async () => {
    const h = new CliHarness();
    const unchanged = await h.run(['--dry-run', 'update', '--image', 'relay:1']);
    expect(unchanged.code).toBe(ExitCode.Usage);
    expect(unchanged.io.stdout.text).toContain('relay-a already runs relay:1 (use --force');
    h.s.cluster.holdLock('relay', 'bob@ci', 60_000);
    const locked = await h.run(['--dry-run', '-o', 'json', 'update', '--image', 'relay:2']);
    expect(locked.code).toBe(ExitCode.LockHeld);
    expect(JSON.parse(locked.io.stdout.text)).toMatchObject({ dryRun: 'client', verdict: 'lock-held' });
  });

  test('abort and rollback with nothing in progress would be refused', async () => {
    const h = new CliHarness();
    const { code, io } = await h.run(['--dry-run', 'rollback']);
    expect(code).toBe(ExitCode.Usage);
    expect(io.stdout.text).toContain('no update in progress');
  });
});

describe('Ctrl-C', () => {
  test('stops the update at its next call, keeps the record, exits 130 (not 5: nothing failed); a rerun continues it', async () => {
    const h = new CliHarness();
    const io = memoryIo(h.s.clock);
    h.s.cluster.beforeCall = (call) => {
      if (call.method === 'relay.restore' && call.target === 'relay-b-1') io.interrupt();
    };
    const { code } = await h.run(['update', '--image', 'relay:2'], { io });
    expect(code).toBe(ExitCode.Interrupted);
    expect(io.stderr.text).toContain('interrupted: stopping');
    expect(io.stdout.lines()).toEqual([
      'interrupted: update relay stopped at step handover, at a safe point; nothing was rolled back',
      'the record keeps the progress: run "relayctl update --image relay:2" again to continue, or "relayctl rollback"',
    ]);
    const status = await h.run(['status', '-o', 'json']);
    expect(JSON.parse(status.io.stdout.text)).toMatchObject({ inProgress: true, update: { direction: 'forward', step: 'handover' } });
    h.s.cluster.beforeCall = null;
    const rerun = await h.run(['update', '--image', 'relay:2']);
    expect(rerun.code).toBe(ExitCode.Success);
    h.s.expectCleanOn('relay-b', 'relay:2');
  });
});
