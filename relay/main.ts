import { pino } from 'pino';
import { stopOnSignals } from './stop-on-signals.ts';
import { loadConfig, relaydCommand, type RelaydOptions } from './config.ts';
import { Relay } from './relay.ts';

/** relayd: parse flags, start, stop cleanly on SIGTERM/SIGINT. */
const STOP_DEADLINE_MS = 5_000;

const command = relaydCommand();
command.parse(process.argv);
const options = command.opts<RelaydOptions>();
const bootLog = pino({ level: options.logLevel, base: { pod: options.podName } });

let relay: Relay;
try {
  const config = await loadConfig(options);
  relay = new Relay(config, bootLog);
  await relay.start();
} catch (error) {
  const err = error as Error & { code?: string };
  bootLog.fatal({ code: err.code, err: { message: err.message } }, `relayd cannot start: ${err.message}`);
  process.exitCode = 1;
  await new Promise((resolve) => setTimeout(resolve, 10));
  process.exit(1);
}

stopOnSignals(bootLog, () => relay.stop(), STOP_DEADLINE_MS);
