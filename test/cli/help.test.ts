import type { Command } from 'commander';
import { describe, expect, test } from 'vitest';
import { EXIT_CODES, ExitCode } from '../../cli/exit-codes.ts';
import { buildProgram } from '../../cli/program.ts';
import { ManualClock } from '../../orchestrator/index.ts';
import { VERSION } from '../../relay/version.ts';
import { CliHarness, memoryIo } from './helpers.ts';

const GLOBAL_FLAGS = ['--platform', '--namespace', '--context', '--kubeconfig', '--timeout', '--dry-run', '--output', '--state-dir', '--name', '--no-color'];
const COMMANDS: Record<string, string[]> = {
  update: ['--image', '--max-parallel', '--drain-quiet', '--drain-timeout', '--no-rollback', '--force'],
  status: ['--watch'],
  abort: [],
  rollback: [],
  deploy: ['--replicas', '--image', '--service-port', '--affinity'],
  teardown: [],
  demo: ['--devices', '--replicas', '--request-interval'],
  bench: ['--clients', '--payload', '--rate', '--handshake-rate', '--interval', '--duration', '--workers', '--target', '--server-key'],
};
const OPTIONS_POINTER = 'Use "relayctl options" for a list of global command-line options (applies to all commands).';

/** Whether the help lists `flag` as an option (a line starting with it), not just mentions it. */
function listsOption(text: string, flag: string): number {
  return text.split('\n').filter((line) => new RegExp(`^  (-[a-zA-Z], )?${flag}\\b`).test(line)).length;
}

function expectExitCodeTable(text: string): void {
  expect(text).toContain('Exit codes:');
  for (const { code, meaning } of EXIT_CODES) expect(text).toContain(`${String(code).padStart(3)}  ${meaning}`);
}

describe('help and version', () => {
  test('--help lists every command and the exit codes, and points to "relayctl options" instead of listing global flags', async () => {
    const { code, io } = await new CliHarness().run(['--help']);
    expect(code).toBe(ExitCode.Success);
    for (const command of [...Object.keys(COMMANDS), 'options']) expect(io.stdout.text).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    for (const flag of GLOBAL_FLAGS) expect(listsOption(io.stdout.text, flag), flag).toBe(0);
    expect(listsOption(io.stdout.text, '--version')).toBe(1);
    expect(io.stdout.text).toContain(OPTIONS_POINTER);
    expectExitCodeTable(io.stdout.text);
    expect(io.stderr.text).toBe('');
  });

  test.each(Object.entries(COMMANDS))('%s --help shows its own flags, the exit codes and the pointer, not the global flags', async (command, flags) => {
    const { code, io } = await new CliHarness().run([command, '--help']);
    expect(code).toBe(ExitCode.Success);
    expect(io.stdout.text).toContain(`Usage: relayctl ${command}`);
    for (const flag of flags) expect(listsOption(io.stdout.text, flag), flag).toBe(1);
    for (const flag of GLOBAL_FLAGS) expect(listsOption(io.stdout.text, flag), flag).toBe(0);
    expect(io.stdout.text).toContain(OPTIONS_POINTER);
    expectExitCodeTable(io.stdout.text);
  });

  test('"relayctl options" lists every global flag once, with its default', async () => {
    const { code, io } = await new CliHarness().run(['options']);
    expect(code).toBe(ExitCode.Success);
    expect(io.stdout.text).toMatch(/^The following options can be passed to any command:/);
    for (const flag of GLOBAL_FLAGS) expect(listsOption(io.stdout.text, flag), flag).toBe(1);
    expect(io.stdout.text).toMatch(/--state-dir <dir> +state directory of the local platform \(default: "\.\/\.relayctl"\)/);
    expect(io.stdout.text).toContain('--dry-run[=client|server]');
    expect(io.stdout.text).toMatch(/--name <name>[^]*\(default: the fleet in --state-dir, else\s+"relay"\)/);
  });

  test('NAME is an argument of every command that acts on a fleet', async () => {
    for (const command of ['update', 'status', 'abort', 'rollback', 'deploy', 'teardown']) {
      const { io } = await new CliHarness().run([command, '--help']);
      expect(io.stdout.text, command).toMatch(new RegExp(`Usage: relayctl ${command} (\\[options\\] )?\\[NAME\\]`));
    }
  });

  test('defaults come from the option definitions, Go-style durations, never from the descriptions', async () => {
    const program = buildProgram(memoryIo(new ManualClock()));
    const commands: Command[] = [program, ...program.commands];
    for (const command of commands) {
      for (const option of command.options) expect(option.description, `${command.name()} ${option.flags}`).not.toMatch(/default/i);
    }
    const { io } = await new CliHarness().run(['update', '--help']);
    expect(io.stdout.text).toMatch(/--drain-quiet <duration> .*\n? *.*\(default: 10s\)/);
    expect(io.stdout.text).toMatch(/--drain-timeout <duration> [^]*?\(default: 1m\)/);
    expect(io.stdout.text).toContain('--timeout: the whole update, default 30m; an automatic rollback gets 10m more');
    const deploy = (await new CliHarness().run(['deploy', '--help'])).io.stdout.text.replace(/\s+/g, ' ');
    expect(deploy).toMatch(/--affinity <duration> [^(]*\(default: 30s, or that of the deployed cluster\)/);
    expect(deploy).toMatch(/--service-port <port> [^(]*\(default: 5684, or the port of the deployed cluster\)/);
  });

  test('the exit codes are the documented ones', () => {
    expect(ExitCode).toMatchObject({ Success: 0, Unexpected: 1, NotFound: 1, Usage: 2, TimedOut: 3, RolledBack: 4, Failed: 5, LockHeld: 6, Interrupted: 130 });
  });

  test('--version prints the package version', async () => {
    const { code, io } = await new CliHarness().run(['--version']);
    expect(code).toBe(ExitCode.Success);
    expect(io.stdout.text.trim()).toBe(VERSION);
  });

  test('no command is a usage error with the help on stderr', async () => {
    const { code, io } = await new CliHarness().run([]);
    expect(code).toBe(ExitCode.Usage);
    expect(io.stderr.text).toContain('Usage: relayctl');
    expect(io.stdout.text).toBe('');
  });
});
