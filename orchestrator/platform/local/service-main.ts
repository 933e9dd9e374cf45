/**
 * Entry script of the local service process (service.ts), started detached by deploy:
 *   node orchestrator/platform/local/service-main.ts --state-dir <absolute path> [--restart-backoff-scale <factor>]
 * Logs JSON lines on stdout (<stateDir>/local/logs/service.log); stops cleanly on SIGTERM or SIGINT.
 */
import { pino } from 'pino';
import { stopOnSignals } from '../../../relay/stop-on-signals.ts';
import { scaledRestartBackoff } from './restart-backoff.ts';
import { LocalService, RESTART_BACKOFF_SCALE_FLAG } from './service.ts';

const STOP_DEADLINE_MS = 3_000;

const log = pino({ base: { component: 'local-service', pid: process.pid } });
const at = process.argv.indexOf('--state-dir');
const stateDir = at === -1 ? undefined : process.argv[at + 1];
if (stateDir === undefined || stateDir === '') {
  log.fatal('usage: service-main.ts --state-dir <path>');
  process.exit(2);
}

const scaleAt = process.argv.indexOf(RESTART_BACKOFF_SCALE_FLAG);
const scale = scaleAt === -1 ? 1 : Number(process.argv[scaleAt + 1]);

let service: LocalService;
try {
  service = await LocalService.start({ stateDir, log, onStopped: () => process.exit(0), restartBackoff: scaledRestartBackoff(scale) });
} catch (error) {
  log.fatal({ err: { message: (error as Error).message } }, `local service cannot start: ${(error as Error).message}`);
  // Let pino flush the line before exiting.
  await new Promise((resolve) => setTimeout(resolve, 10));
  process.exit(1);
}

stopOnSignals(log, () => service.stop(), STOP_DEADLINE_MS);
