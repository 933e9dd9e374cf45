import { ManualClock } from '../../../orchestrator/clock.ts';
import { FakeCluster } from '../../fakes/platform.ts';
import { CONTRACT_FLEET, describePlatformContract, type PlatformUnderTest } from '../platform-contract.ts';

/** The in-memory double the orchestrator's tests run on, held to the same contract as the real platforms. */

/** Virtual time the double may take to get somewhere (pods start in 3 s, probes lag 1 s, pods terminate in 2 s). */
const EVENTUALLY_LIMIT_MS = 60_000;
const STEP_MS = 100;

function doubleUnderTest(): Promise<PlatformUnderTest> {
  // Auto-advancing: virtual time moves on whenever the test waits (a restore takes 400 ms, a lease expires).
  const clock = new ManualClock({ startMs: 0 });
  clock.setAutoAdvance(true);
  const cluster = new FakeCluster(clock);
  cluster.seed({ name: CONTRACT_FLEET.name, replicas: CONTRACT_FLEET.replicas, image: CONTRACT_FLEET.image, sessions: [10, 20] });
  return Promise.resolve({
    platform: cluster.process(),
    openAnother: async () => ({ platform: cluster.process(), close: async () => undefined }),
    async eventually(what, check) {
      for (let waited = 0; ; waited += STEP_MS) {
        const value = await check();
        if (value !== null && value !== false && value !== undefined) return value;
        if (waited >= EVENTUALLY_LIMIT_MS) throw new Error(`${what}: not after ${EVENTUALLY_LIMIT_MS} ms of virtual time`);
        await clock.sleep(STEP_MS);
      }
    },
    elapse: (ms) => clock.sleep(ms),
    // Seeded: relay-a-0 holds 10 sessions.
    holdSessions: async () => undefined,
    close: async () => undefined,
  });
}

describePlatformContract('the platform double', doubleUnderTest);
