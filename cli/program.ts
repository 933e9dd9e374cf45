import { hostname, userInfo } from 'node:os';
import { Command, CommanderError, Help, Option } from 'commander';
import { formatDuration } from '../lib/duration.ts';
import { DEFAULT_TIMEOUTS } from '../orchestrator/index.ts';
import { DEFAULT_AFFINITY_MS, DEFAULT_SERVICE_PORT } from '../orchestrator/platform/local/defaults.ts';
import { VERSION } from '../relay/version.ts';
import { BENCH_DEFAULTS, benchCommand, type BenchFlags } from './commands/bench.ts';
import type { CommandContext } from './commands/context.ts';
import { controlCommand } from './commands/control.ts';
import { DEFAULT_IMAGE, DEFAULT_REPLICAS, deployCommand, teardownCommand, type DeployFlags } from './commands/deploy.ts';
import { DEMO_DEFAULTS, DEMO_UPDATE_TIMEOUT_MS, demoCommand, type DemoFlags } from './commands/demo.ts';
import { statusCommand, type StatusFlags } from './commands/status.ts';
import { DEFAULT_DRAIN_QUIET_MS, DEFAULT_MAX_PARALLEL, updateCommand, type UpdateFlags } from './commands/update.ts';
import { UsageError, codeOf, errorText, isNotFoundError, isUsageError, usageHint } from './errors.ts';
import { ExitCode, exitCodesHelp } from './exit-codes.ts';
import { resolveFleet, type FleetNeed } from './fleet.ts';
import type { Io } from './io.ts';
import {
  DEFAULT_NAME,
  DEFAULT_STATE_DIR,
  DRY_RUN_MODES,
  OUTPUTS,
  PLATFORMS,
  durationArg,
  imageArg,
  normalizeArgv,
  portArg,
  positiveIntegerArg,
  resolveGlobals,
  type RawGlobals,
} from './options.ts';
import { defaultPlatforms, type PlatformProvider } from './platforms.ts';

/** What tests swap: where platforms come from, who runs, how update ids are made. */
export interface RunDependencies {
  platforms?: PlatformProvider;
  owner?: string;
  newUpdateId?: () => string;
}

/**
 * Parses `argv` (without node and the script), runs the command and returns its exit code. Never calls
 * process.exit and never throws: every failure is reported on io.stderr in one format (errors.ts) and mapped to
 * a code (exit-codes.ts).
 */
export async function run(argv: readonly string[], io: Io, dependencies: RunDependencies = {}): Promise<number> {
  let exitCode: number = ExitCode.Success;
  const program = buildProgram(io, dependencies, (code) => (exitCode = code));
  let active: Command = program;
  program.hook('preSubcommand', (_program, subcommand) => void (active = subcommand));
  try {
    await program.parseAsync(normalizeArgv(argv), { from: 'user' });
    return exitCode;
  } catch (error) {
    return reportError(io, error, commandPath(active));
  }
}

function commandPath(command: Command): string {
  return command.parent === null ? command.name() : `${commandPath(command.parent)} ${command.name()}`;
}

function reportError(io: Io, error: unknown, path: string): number {
  if (error instanceof CommanderError) {
    // Commander printed its message (through outputError) or the help/version already; its failures are usage errors.
    return error.exitCode === 0 ? ExitCode.Success : ExitCode.Usage;
  }
  if (isNotFoundError(error)) {
    io.stderr.write(errorText(error.message, error.hint));
    return ExitCode.NotFound;
  }
  if (isUsageError(error)) {
    io.stderr.write(errorText(error.message, usageHint(path)));
    return ExitCode.Usage;
  }
  const message = error instanceof Error ? error.message : String(error);
  const code = codeOf(error);
  const debug = Boolean(io.env['RELAYCTL_DEBUG']) && error instanceof Error && error.stack !== undefined;
  io.stderr.write(errorText(`${message}${code === null ? '' : ` (${code})`}`, debug ? (error as Error).stack ?? null : 'Run with RELAYCTL_DEBUG=1 for the stack trace.'));
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

/** A default that is not a value (it depends on what is deployed): printed in the help like commander's own. */
function describedDefault(option: Option, description: string): Option {
  option.defaultValueDescription = description;
  return option;
}

/**
 * Options whose absence the command checks itself, after commander refused unknown options: commander checks
 * mandatory options first, so a typo (--imgae x) was reported as --image missing instead of as the typo.
 */
const REQUIRED = new WeakSet<Option>();

function required(option: Option): Option {
  REQUIRED.add(option);
  option.description = `${option.description} (required)`;
  return option;
}

function checkRequired(command: Command): void {
  for (const option of command.options) {
    if (REQUIRED.has(option) && command.getOptionValue(option.attributeName()) === undefined) {
      throw new UsageError(`required option '${option.flags}' not specified`);
    }
  }
}

const OPTIONS_POINTER = `\nUse "relayctl options" for a list of global command-line options (applies to all commands).\n`;

/**
 * Help and errors in one style. Global options are listed once, by `relayctl options` (like `kubectl
 * options`), not in every help; defaults come from the option definitions.
 */
function configureHelpAndErrors(program: Command, io: Io): void {
  const isGlobal = (option: Option): boolean => program.options.includes(option) && option.long !== '--version';
  program
    .configureHelp({
      helpWidth: io.stdout.columns ?? 100,
      optionTerm(option: Option): string {
        // Shown as kubectl spells it: a bare --dry-run means client.
        return option.long === '--dry-run' ? '--dry-run[=client|server]' : Help.prototype.optionTerm.call(this, option);
      },
      optionDescription(option: Option): string {
        const text = Help.prototype.optionDescription.call(this, option);
        return option.defaultValue === undefined && option.defaultValueDescription !== undefined ? `${text} (default: ${option.defaultValueDescription})` : text;
      },
      formatHelp(command: Command, helper: Help): string {
        if (command === program) {
          const visible = helper.visibleOptions.bind(helper);
          helper.visibleOptions = (of: Command) => (of === program ? visible(of).filter((option) => !isGlobal(option)) : visible(of));
        }
        return Help.prototype.formatHelp.call(this, command, helper);
      },
    })
    .configureOutput({
      writeOut: (text) => void io.stdout.write(text),
      writeErr: (text) => void io.stderr.write(text),
      outputError: (text, write) => write(errorText(text, null)),
      getOutHelpWidth: () => io.stdout.columns ?? 100,
      getErrHelpWidth: () => io.stderr.columns ?? 100,
    })
    .exitOverride();
}

/** `relayctl options`: the global options with their defaults. */
function globalOptionsText(program: Command, width: number): string {
  const helper = program.createHelp();
  helper.prepareContext({ helpWidth: width });
  const options = program.options.filter((option) => option.long !== '--version');
  const termWidth = Math.max(...options.map((option) => helper.displayWidth(helper.optionTerm(option))));
  const items = options.map((option) => helper.formatItem(helper.optionTerm(option), termWidth, helper.optionDescription(option), helper));
  return ['The following options can be passed to any command:', '', ...items, ''].join('\n');
}

/** The commander program; run() is how it runs, tests read its option definitions. */
export function buildProgram(io: Io, dependencies: RunDependencies = {}, setExitCode: (code: number) => void = () => undefined): Command {
  const program = new Command('relayctl');
  program
    .description('Upgrade a fleet of DTLS relays blue/green without any device noticing: sessions move to the new relays, no device handshakes again.')
    .version(VERSION, '-V, --version', 'print the relayctl version')
    .addOption(new Option('--platform <platform>', 'where the fleet runs (kubernetes is not available in this build)').choices(PLATFORMS).default('local'))
    .option('-n, --namespace <namespace>', 'Kubernetes namespace (--platform kubernetes only)')
    .option('--context <context>', 'kubeconfig context (--platform kubernetes only)')
    .option('--kubeconfig <file>', 'kubeconfig file (--platform kubernetes only)')
    .addOption(new Option('--timeout <duration>', "overall deadline of the command, Go-style: 90s, 5m, 1h30m (see each command's help)").argParser(durationArg()))
    .addOption(
      new Option('--dry-run <mode>', 'say what the command would do and change nothing; client: from what relayctl reads, server: the API server also checks every write (Kubernetes)')
        .choices(DRY_RUN_MODES)
        .default('none'),
    )
    .addOption(new Option('-o, --output <format>', 'text, or json: one JSON event per line on stdout').choices(OUTPUTS).default('text'))
    .option('--state-dir <dir>', 'state directory of the local platform', DEFAULT_STATE_DIR)
    .addOption(describedDefault(new Option('--name <name>', 'fleet name (its sets are <name>-a and <name>-b); commands that take NAME take it there too'), `the fleet in --state-dir, else "${DEFAULT_NAME}"`))
    .option('--no-color', 'no colour (also NO_COLOR=1; never colour off a terminal)')
    .showHelpAfterError(usageHint('relayctl'))
    .addHelpText('after', `\nProgress goes to stderr (a live view on a terminal, a line per change otherwise), results to stdout.\n${exitCodesHelp()}${OPTIONS_POINTER}`);
  configureHelpAndErrors(program, io);

  const act = <Flags>(need: FleetNeed | null, command: (ctx: CommandContext, flags: Flags) => Promise<number>) =>
    async (...args: unknown[]): Promise<void> => {
      // (name?, flags, command): commander passes the NAME argument first when the command declares one.
      const cmd = args.at(-1) as Command;
      const flags = args.at(-2) as Flags;
      const positionalName = args.length > 2 ? (args[0] as string | undefined) : undefined;
      checkRequired(cmd);
      const raw = cmd.optsWithGlobals<RawGlobals>();
      let globals = resolveGlobals(raw, io, { stateDirGiven: cmd.getOptionValueSourceWithGlobals('stateDir') === 'cli', positionalName });
      const platforms = dependencies.platforms ?? defaultPlatforms;
      if (need !== null) {
        await platforms.check(globals);
        globals = Object.freeze({ ...globals, name: await resolveFleet(platforms, globals, need) });
      }
      const ctx: CommandContext = {
        io,
        globals,
        platforms,
        owner: dependencies.owner ?? defaultOwner(io),
        ...(dependencies.newUpdateId === undefined ? {} : { newUpdateId: dependencies.newUpdateId }),
      };
      setExitCode(await command(ctx, flags));
    };

  const CURRENT_FLEET = 'the current one, the fleet deployed in --state-dir';
  const subcommand = (name: string, description: string, options: { fleet?: string; timeout?: string; exitCodes?: string } = {}): Command => {
    const command = program.command(name).description(description).showHelpAfterError(usageHint(`relayctl ${name}`));
    if (options.fleet !== undefined) command.argument('[NAME]', `the fleet; --name works too (default: ${options.fleet})`);
    const timeout = options.timeout === undefined ? '' : `\n--timeout: ${options.timeout}\n`;
    command.addHelpText('after', `${timeout}${exitCodesHelp()}${options.exitCodes ?? ''}${OPTIONS_POINTER}`);
    return command;
  };

  subcommand('update', 'update the fleet to a new image: start the other set, hand every session over, drain, delete the old set; a failure rolls back', {
    fleet: CURRENT_FLEET,
    timeout: `the whole update, default ${formatDuration(DEFAULT_TIMEOUTS.overallMs)}; an automatic rollback gets ${formatDuration(DEFAULT_TIMEOUTS.rollbackMs)} more`,
  })
    .addOption(required(new Option('--image <ref>', 'image to run, a Docker/OCI reference (local platform: a version label; the new set runs the same code)').argParser(imageArg)))
    .addOption(new Option('--max-parallel <n>', 'ordinals handed over at the same time').argParser(positiveIntegerArg).default(DEFAULT_MAX_PARALLEL))
    .addOption(new Option('--drain-quiet <duration>', 'an old relay counts as drained once it forwarded nothing for this long').argParser(durationArg({ allowZero: true })).default(DEFAULT_DRAIN_QUIET_MS, formatDuration(DEFAULT_DRAIN_QUIET_MS)))
    .addOption(new Option('--drain-timeout <duration>', 'stop waiting for stragglers after this long and delete the old set anyway').argParser(durationArg()).default(DEFAULT_TIMEOUTS.drainMs, formatDuration(DEFAULT_TIMEOUTS.drainMs)))
    .option('--no-rollback', 'on failure stop where it failed instead of rolling back (run again to continue)')
    .option('--force', 'update even when the image is unchanged (restarts every relay, keeping its sessions)')
    .action(act<UpdateFlags>('existing', updateCommand));

  subcommand('status', 'show the sets, pods, relays, the update record and the lock; --watch follows an update in progress until it ends', {
    fleet: CURRENT_FLEET,
    timeout: 'how long --watch follows, default: until the update ends',
    exitCodes: '  status: 5 when the recorded update failed; with --watch, 4 when the watched update was rolled back or aborted;\n  1 when the fleet does not exist (NotFound).\n',
  })
    .option('-w, --watch', 'follow the update in progress until it ends, then exit with its outcome', false)
    .action(act<StatusFlags>('existing', statusCommand));

  const control = (name: 'abort' | 'rollback', description: string): void => {
    subcommand(name, description, { fleet: CURRENT_FLEET, timeout: `the whole ${name}, default ${formatDuration(DEFAULT_TIMEOUTS.rollbackMs)}` }).action(
      act<Record<string, never>>('existing', (ctx) => controlCommand(ctx, name)),
    );
  };
  control('abort', 'abort the update in progress before any session moved: remove the new set, unlabel the old pods');
  control('rollback', 'roll the update in progress back from wherever it is (before it deletes the old set), handing sessions back to the old relays');

  subcommand('deploy', 'start a local fleet in --state-dir: an upstream echo and set <name>-a of relays behind a UDP front (local platform)', { fleet: `the one deployed in --state-dir, else "${DEFAULT_NAME}"` })
    .option('--replicas <n>', 'relays in the set', positiveIntegerArg, DEFAULT_REPLICAS)
    .addOption(new Option('--image <ref>', 'version label of the set, a Docker/OCI reference').argParser(imageArg).default(DEFAULT_IMAGE))
    .addOption(describedDefault(new Option('--service-port <port>', 'UDP port devices connect to; 0: any free port').argParser(portArg), `${DEFAULT_SERVICE_PORT}, or the port of the deployed cluster`))
    .addOption(
      describedDefault(
        new Option('--affinity <duration>', "how long an idle device flow stays on its relay, like kube-proxy's UDP conntrack timeout").argParser(durationArg()),
        `${formatDuration(DEFAULT_AFFINITY_MS)}, or that of the deployed cluster`,
      ),
    )
    .action(act<DeployFlags>('create', deployCommand));

  subcommand('teardown', 'stop a local fleet started with deploy and its processes (local platform)', { fleet: 'the one deployed in --state-dir' }).action(
    act<Record<string, never>>('known', (ctx) => teardownCommand(ctx)),
  );

  subcommand('demo', 'run a local fleet, connect simulated devices, update it under their traffic and show what the devices saw; tears everything down at the end', {
    timeout: `the update, default ${formatDuration(DEMO_UPDATE_TIMEOUT_MS)}`,
    exitCodes: '  demo: 0 only when the update succeeded and the devices saw no error, no handshake during the update and\n  no unanswered request; 1 when the update succeeded but the devices noticed.\n',
  })
    .option('--devices <n>', 'simulated devices', positiveIntegerArg, DEMO_DEFAULTS.devices)
    .option('--replicas <n>', 'relays per set', positiveIntegerArg, DEMO_DEFAULTS.replicas)
    .addOption(new Option('--request-interval <duration>', 'pause between an answer and the next request of a device').argParser(durationArg({ allowZero: true })).default(DEMO_DEFAULTS.requestIntervalMs, formatDuration(DEMO_DEFAULTS.requestIntervalMs)))
    .action(act<DemoFlags>(null, demoCommand));

  subcommand('bench', 'load a fleet with simulated devices (one DTLS session each, CoAP-style confirmable requests and retransmissions) and report what they saw: a line every interval, round-trip percentiles at the end', {
    exitCodes:
      `\nEach line: N requests (R reqs/s, n retransmissions (x%), e transmission errors (y%), h handshakes, C clients)\n` +
      `  N requests answered in the interval; x and y are shares of N, as in Californium's benchmark client.\n`,
  })
    .option('--clients <n>', 'simulated devices', positiveIntegerArg, BENCH_DEFAULTS.clients)
    .option('--payload <bytes>', 'request size (the echo answers with the same bytes), 16 to 800', positiveIntegerArg, BENCH_DEFAULTS.payloadBytes)
    .addOption(describedDefault(new Option('--rate <n>', 'at most this many requests per second over all devices').argParser(positiveIntegerArg), 'no cap: each device sends its next request when the answer came'))
    .option('--handshake-rate <n>', 'start-up handshakes per second, so that connecting does not swamp the relays', positiveIntegerArg, BENCH_DEFAULTS.handshakeRate)
    .addOption(new Option('--interval <duration>', 'one line on stderr every interval').argParser(durationArg()).default(BENCH_DEFAULTS.intervalMs, formatDuration(BENCH_DEFAULTS.intervalMs)))
    .addOption(new Option('--duration <duration>', 'length of the measured run, after the start-up').argParser(durationArg()).default(BENCH_DEFAULTS.durationMs, formatDuration(BENCH_DEFAULTS.durationMs)))
    .addOption(describedDefault(new Option('--workers <n>', 'load-generator worker threads').argParser(positiveIntegerArg), 'one per core'))
    .option('--target <host:port>', 'benchmark this address instead of the local cluster in --state-dir (needs --server-key)')
    .option('--server-key <file>', "the relays' DTLS public key that devices pin, SPKI DER or PEM (with --target)")
    .action(act<BenchFlags>('known', benchCommand));

  program
    .command('options')
    .description('print the options every command takes (global options)')
    .showHelpAfterError(usageHint('relayctl options'))
    .action(() => void io.stdout.write(globalOptionsText(program, io.stdout.columns ?? 100)));

  return program;
}
