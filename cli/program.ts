import { hostname, userInfo } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { isOrchestratorError } from '../orchestrator/index.ts';
import { VERSION } from '../relay/version.ts';
import { BENCH_DEFAULTS, benchCommand, type BenchFlags } from './commands/bench.ts';
import type { CommandContext } from './commands/context.ts';
import { controlCommand } from './commands/control.ts';
import { DEFAULT_IMAGE, DEFAULT_REPLICAS, deployCommand, teardownCommand, type DeployFlags } from './commands/deploy.ts';
import { DEMO_DEFAULTS, demoCommand, type DemoFlags } from './commands/demo.ts';
import { statusCommand, type StatusFlags } from './commands/status.ts';
import { DEFAULT_DRAIN_QUIET_MS, updateCommand, type UpdateFlags } from './commands/update.ts';
import { isUsageError } from './errors.ts';
import { ExitCode, exitCodesHelp } from './exit-codes.ts';
import type { Io } from './io.ts';
import { DEFAULT_NAME, DEFAULT_STATE_DIR, OUTPUTS, PLATFORMS, durationArg, portArg, positiveIntegerArg, resolveGlobals, type RawGlobals } from './options.ts';
import { defaultPlatforms, type PlatformProvider } from './platforms.ts';

/** What tests swap: where platforms come from, who runs, how update ids are made. */
export interface RunDependencies {
  platforms?: PlatformProvider;
  owner?: string;
  newUpdateId?: () => string;
}

/**
 * Parses `argv` (without node and the script), runs the command and returns its exit code. Never calls
 * process.exit and never throws: every failure is reported on io.stderr and mapped to a code (exit-codes.ts).
 */
export async function run(argv: readonly string[], io: Io, dependencies: RunDependencies = {}): Promise<number> {
  let exitCode: number = ExitCode.Success;
  const program = buildProgram(io, dependencies, (code) => (exitCode = code));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    return reportError(io, error);
  }
}

function reportError(io: Io, error: unknown): number {
  if (error instanceof CommanderError) {
    // Commander printed its message (or the help/version) already; its own failures are usage errors.
    return error.exitCode === 0 ? ExitCode.Success : ExitCode.Usage;
  }
  if (isUsageError(error)) {
    io.stderr.write(`relayctl: ${error.message}\n`);
    return ExitCode.Usage;
  }
  const message = error instanceof Error ? error.message : String(error);
  const code = isOrchestratorError(error) || (typeof error === 'object' && error !== null && 'code' in error) ? ` (${String((error as { code: unknown }).code)})` : '';
  io.stderr.write(`relayctl: unexpected error: ${message}${code}\n`);
  if (io.env['RELAYCTL_DEBUG'] && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
  return ExitCode.Unexpected;
}

function defaultOwner(io: Io): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers).
    user = io.env['USER'] ?? 'unknown';
  }
  return `${user}@${hostname()}:${process.pid}`;
}

function buildProgram(io: Io, dependencies: RunDependencies, setExitCode: (code: number) => void): Command {
  const program = new Command('relayctl');
  program
    .description('Upgrade a fleet of DTLS relays blue/green without any device noticing: sessions move to the new relays, no device handshakes again.')
    .version(VERSION, '-V, --version', 'print the relayctl version')
    .addOption(new Option('--platform <platform>', 'where the fleet runs (kubernetes is not available in this build)').choices(PLATFORMS).default('local'))
    .option('-n, --namespace <namespace>', 'Kubernetes namespace (--platform kubernetes only)')
    .option('--context <context>', 'kubeconfig context (--platform kubernetes only)')
    .option('--kubeconfig <file>', 'kubeconfig file (--platform kubernetes only)')
    .option('--timeout <duration>', 'overall deadline of the command, Go-style: 90s, 5m, 1h30m (update default 30m)', durationArg())
    .option('--dry-run', 'say what the command would do; change nothing')
    .addOption(new Option('-o, --output <format>', 'text, or json: one JSON event per line on stdout').choices(OUTPUTS).default('text'))
    .option('--state-dir <dir>', 'state directory of the local platform', DEFAULT_STATE_DIR)
    .option('--name <name>', 'fleet name: its sets are <name>-a and <name>-b', DEFAULT_NAME)
    .option('--no-color', 'no colour (also NO_COLOR=1; never colour off a terminal)')
    .configureHelp({ showGlobalOptions: true, helpWidth: io.stdout.columns ?? 100 })
    .configureOutput({
      writeOut: (text) => void io.stdout.write(text),
      writeErr: (text) => void io.stderr.write(text),
      getOutHelpWidth: () => io.stdout.columns ?? 100,
      getErrHelpWidth: () => io.stderr.columns ?? 100,
    })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      `\nProgress goes to stderr (a live view on a terminal, a line per change otherwise), results to stdout.\n${exitCodesHelp()}`,
    );

  const act = <Flags>(command: (ctx: CommandContext, flags: Flags) => Promise<number>) =>
    async (flags: Flags, cmd: Command): Promise<void> => {
      const raw = cmd.optsWithGlobals<RawGlobals>();
      const globals = resolveGlobals(raw, io, { stateDirGiven: cmd.getOptionValueSourceWithGlobals('stateDir') === 'cli' });
      const ctx: CommandContext = {
        io,
        globals,
        platforms: dependencies.platforms ?? defaultPlatforms,
        owner: dependencies.owner ?? defaultOwner(io),
        ...(dependencies.newUpdateId === undefined ? {} : { newUpdateId: dependencies.newUpdateId }),
      };
      setExitCode(await command(ctx, flags));
    };

  program
    .command('update')
    .description('update the fleet to a new image: start the other set, hand every session over, drain, delete the old set; a failure rolls back')
    .requiredOption('--image <tag>', 'image to run (local platform: a version label; the new set runs the same code)')
    .option('--max-parallel <n>', 'ordinals handed over at the same time (default 1)', positiveIntegerArg)
    .addOption(new Option('--drain-quiet <duration>', 'an old relay counts as drained once it forwarded nothing for this long').argParser(durationArg({ allowZero: true })).default(DEFAULT_DRAIN_QUIET_MS, '10s'))
    .option('--drain-timeout <duration>', 'stop waiting for stragglers after this long and delete the old set anyway (default 1m)', durationArg())
    .option('--no-rollback', 'on failure stop where it failed instead of rolling back (run again to continue)')
    .option('--force', 'update even when the image is unchanged (restarts every relay, keeping its sessions)')
    .addHelpText('after', exitCodesHelp())
    .action(act<UpdateFlags>(updateCommand));

  program
    .command('status')
    .description('show the sets, pods, relays, the update record and the lock; --watch follows an update in progress until it ends')
    .option('-w, --watch', 'follow the update in progress until it ends, then exit with its outcome', false)
    .addHelpText('after', `${exitCodesHelp()}  status: 5 when the recorded update failed; with --watch, 4 when the watched update was rolled back or aborted.\n`)
    .action(act<StatusFlags>(statusCommand));

  program
    .command('abort')
    .description('abort the update in progress before any session moved: remove the new set, unlabel the old pods')
    .addHelpText('after', exitCodesHelp())
    .action(act<Record<string, never>>((ctx) => controlCommand(ctx, 'abort')));

  program
    .command('rollback')
    .description('roll the update in progress back from wherever it is (before it deletes the old set), handing sessions back to the old relays')
    .addHelpText('after', exitCodesHelp())
    .action(act<Record<string, never>>((ctx) => controlCommand(ctx, 'rollback')));

  program
    .command('deploy')
    .description('start a local fleet in --state-dir: an upstream echo and set <name>-a of relays behind a UDP front (local platform)')
    .option('--replicas <n>', 'relays in the set', positiveIntegerArg, DEFAULT_REPLICAS)
    .option('--image <tag>', 'version label of the set', DEFAULT_IMAGE)
    .option('--service-port <port>', 'UDP port devices connect to (default: chosen by the platform)', portArg)
    .option('--affinity <duration>', "how long an idle device flow stays on its relay, like kube-proxy's UDP conntrack timeout (default 30s)", durationArg())
    .addHelpText('after', exitCodesHelp())
    .action(act<DeployFlags>(deployCommand));

  program
    .command('teardown')
    .description('stop a local fleet started with deploy and its processes (local platform)')
    .addHelpText('after', exitCodesHelp())
    .action(act<Record<string, never>>((ctx) => teardownCommand(ctx)));

  program
    .command('demo')
    .description('run a local fleet, connect simulated devices, update it under their traffic and show what the devices saw; tears everything down at the end')
    .option('--devices <n>', 'simulated devices', positiveIntegerArg, DEMO_DEFAULTS.devices)
    .option('--replicas <n>', 'relays per set', positiveIntegerArg, DEMO_DEFAULTS.replicas)
    .addOption(new Option('--request-interval <duration>', 'pause between an answer and the next request of a device').argParser(durationArg({ allowZero: true })).default(DEMO_DEFAULTS.requestIntervalMs, '1s'))
    .addHelpText(
      'after',
      `${exitCodesHelp()}  demo: 0 only when the update succeeded and the devices saw no error, no handshake during the update and\n  no unanswered request; 1 when the update succeeded but the devices noticed.\n`,
    )
    .action(act<DemoFlags>(demoCommand));

  program
    .command('bench')
    .description('load a fleet with simulated devices (one DTLS session each, CoAP-style confirmable requests and retransmissions) and report what they saw: a line every interval, round-trip percentiles at the end')
    .option('--clients <n>', 'simulated devices', positiveIntegerArg, BENCH_DEFAULTS.clients)
    .option('--payload <bytes>', 'request size (the echo answers with the same bytes), 16 to 800', positiveIntegerArg, BENCH_DEFAULTS.payloadBytes)
    .option('--rate <n>', 'at most this many requests per second over all devices (default: no cap; each device sends its next request when the answer came)', positiveIntegerArg)
    .option('--handshake-rate <n>', 'start-up handshakes per second, so that connecting does not swamp the relays', positiveIntegerArg, BENCH_DEFAULTS.handshakeRate)
    .addOption(new Option('--interval <duration>', 'one line on stderr every interval').argParser(durationArg()).default(BENCH_DEFAULTS.intervalMs, '10s'))
    .addOption(new Option('--duration <duration>', 'length of the measured run, after the start-up').argParser(durationArg()).default(BENCH_DEFAULTS.durationMs, '1m'))
    .option('--workers <n>', 'load-generator worker threads (default: one per core)', positiveIntegerArg)
    .option('--target <host:port>', 'benchmark this address instead of the local cluster in --state-dir (needs --server-key)')
    .option('--server-key <file>', "the relays' DTLS public key that devices pin, SPKI DER or PEM (with --target)")
    .addHelpText(
      'after',
      `\nEach line: N requests (R reqs/s, n retransmissions (x%), e transmission errors (y%), h handshakes, C clients)\n` +
        `  N requests answered in the interval; x and y are shares of N, as in Californium's benchmark client.\n${exitCodesHelp()}`,
    )
    .action(act<BenchFlags>(benchCommand));

  return program;
}
