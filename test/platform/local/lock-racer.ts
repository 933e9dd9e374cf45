/**
 * One contender of lock-race.test.ts, run as its own process: for each round, waits until the agreed instant and
 * tries to take lock `race-<round>`; prints one JSON line per round.
 *   node lock-racer.ts <stateDir> <owner> <startAt epoch ms> <rounds> <gap ms>
 */
import { isLockHeldError } from '../../../orchestrator/errors.ts';
import { openLocalPlatform } from '../../../orchestrator/platform/local/index.ts';

const [stateDir, owner, startAt, rounds, gap] = process.argv.slice(2);
if (stateDir === undefined || owner === undefined || startAt === undefined || rounds === undefined || gap === undefined) {
  throw new Error('usage: lock-racer.ts <stateDir> <owner> <startAt> <rounds> <gapMs>');
}
const platform = await openLocalPlatform({ stateDir });
try {
  for (let round = 0; round < Number(rounds); round++) {
    const at = Number(startAt) + round * Number(gap);
    // Sleep most of the way, then spin, so both processes call acquire within a millisecond or so.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now() - 5)));
    while (Date.now() < at) {
      // spin
    }
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
