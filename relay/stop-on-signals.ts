import type { Logger } from 'pino';

/**
 * The shutdown of a long-running process (relayd, the local service): on SIGTERM or SIGINT, stop
 * once, exit 0 when done, exit 1 on an error or if stopping takes longer than `deadlineMs`.
 */
export function stopOnSignals(log: Logger, stop: () => Promise<void>, deadlineMs: number): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    setTimeout(() => {
      log.error('did not stop in time; exiting');
      process.exit(1);
    }, deadlineMs).unref();
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: { message: (error as Error).message } }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
