import { describe, expect, test } from 'vitest';
import { EXIT_CODES, ExitCode } from '../../cli/exit-codes.ts';
import { VERSION } from '../../relay/version.ts';
import { CliHarness } from './helpers.ts';

const GLOBAL_FLAGS = ['--platform', '--namespace', '--context', '--kubeconfig', '--timeout', '--dry-run', '--output', '--state-dir', '--name', '--no-color'];
const COMMANDS: Record<string, string[]> = {
  update: ['--image', '--max-parallel', '--drain-quiet', '--drain-timeout', '--no-rollback', '--force'],
  status: ['--watch'],
  abort: [],
  rollback: [],
  deploy: ['--replicas', '--image', '--service-port', '--affinity'],
  teardown: [],
  demo: ['--devices', '--replicas', '--request-interval'],
};

function expectExitCodeTable(text: string): void {
  expect(text).toContain('Exit codes:');
  for (const { code, meaning } of EXIT_CODES) expect(text).toMatch(new RegExp(`\\b${code}  ${meaning.slice(0, 20).replace(/[()]/g, '\\$&')}`));
}

describe('help and version', () => {
  test('--help lists every command, the global flags and the exit codes, on stdout with exit 0', async () => {
    const { code, io } = await new CliHarness().run(['--help']);
    expect(code).toBe(ExitCode.Success);
    for (const command of Object.keys(COMMANDS)) expect(io.stdout.text).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    for (const flag of GLOBAL_FLAGS) expect(io.stdout.text).toContain(flag);
    expectExitCodeTable(io.stdout.text);
    expect(io.stderr.text).toBe('');
  });

  test.each(Object.entries(COMMANDS))('%s --help shows its flags, the global flags and the exit codes', async (command, flags) => {
    const { code, io } = await new CliHarness().run([command, '--help']);
    expect(code).toBe(ExitCode.Success);
    expect(io.stdout.text).toContain(`Usage: relayctl ${command}`);
    for (const flag of [...flags, ...GLOBAL_FLAGS]) expect(io.stdout.text).toContain(flag);
    expectExitCodeTable(io.stdout.text);
  });

  test('the exit codes are the documented ones', () => {
    expect(ExitCode).toMatchObject({ Success: 0, Unexpected: 1, Usage: 2, TimedOut: 3, RolledBack: 4, Failed: 5, LockHeld: 6 });
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
