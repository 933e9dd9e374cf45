/**
 * One contender of lock-race.test.ts, run as its own process: prints "ready", then for each line "<round>" read on
 * stdin tries to take lock `race-<round>` at once and prints one JSON line with the outcome. The test writes each
 * round to both contenders together, so they call acquire within a fraction of a millisecond of each other.
 *   node lock-racer.ts <stateDir> <owner>
 */
import { createInterface } from 'node:readline';
import { isLockHeldError } from '../../../orchestrator/errors.ts';
import { openLocalPlatform } from '../../../orchestrator/platform/local/index.ts';

const [stateDir, owner] = process.argv.slice(2);
if (stateDir === undefined || owner === undefined) throw new Error('usage: lock-racer.ts <stateDir> <owner>');
const platform = await openLocalPlatform({ stateDir });
try {
  process.stdout.write('ready\n');
  for await (const line of createInterface({ input: process.stdin })) {
    const round = Number(line);
    try {
      const lease = await platform.lock.acquire(`race-${round}`, owner, 60_000);
      process.stdout.write(`${JSON.stringify({ round, owner, won: true, expiresAt: lease.expiresAt })}\n`);
    } catch (error) {
      if (!isLockHeldError(error)) throw error;
      process.stdout.write(`${JSON.stringify({ round, owner, won: false, holder: error.holder })}\n`);
    }
  }
} finally {
  await platform.close();
}
