import { pino } from 'pino';
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

let stopping = false;
const stop = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  bootLog.info({ signal }, 'stopping');
  setTimeout(() => {
    bootLog.error('did not stop in time; exiting');
    process.exit(1);
  }, STOP_DEADLINE_MS).unref();
  relay.stop().then(() => process.exit(0), (error: unknown) => {
    bootLog.error({ err: error }, 'error while stopping');
    process.exit(1);
  });
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
