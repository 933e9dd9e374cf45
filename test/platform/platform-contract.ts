import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ErrorCode, isLockHeldError, isOrchestratorError } from '../../orchestrator/errors.ts';
import { RESTORE_LABEL, RESTORE_LABEL_VALUE, type Platform, type PodInfo, type PodPhase, type SetInfo } from '../../orchestrator/platform/platform.ts';

/**
 * The Platform contract: what the orchestrator relies on (orchestrator/platform/platform.ts), written once and run
 * against every implementation: the in-memory double the orchestrator's tests use (test/fakes/platform.ts), the
 * local platform with real relays, and the Kubernetes platform against its API stand-in. A behaviour the double
 * models but a real platform lacks (or the reverse) fails here, not in production.
 *
 * Plugging in a platform is one line in its own test file:
 *
 *   describePlatformContract('kubernetes platform', () => kubernetesUnderTest());
 *
 * where the factory deploys the fleet below and returns a PlatformUnderTest. The tests run in order and build on
 * each other: the deployed set relay-a, then relay-b created from it, a restore between them, the deletes.
 */

/** What every factory deploys before the contract runs: fleet `relay`, set relay-a, 2 relays serving image relay:1. */
export const CONTRACT_FLEET = { name: 'relay', set: 'relay-a', replicas: 2, image: 'relay:1' } as const;

/**
 * The one label a new set does not copy from its template: the one naming the set itself, which each set's selector
 * uses so that two controllers never compete (docs/design/contracts.md).
 */
const SET_LABEL = 'relayctl.dev/set';

/** The template's labels a new set and its pods carry. */
function copiedLabels(template: SetInfo): Record<string, string> {
  return Object.fromEntries(Object.entries(template.labels).filter(([key]) => key !== SET_LABEL));
}

export interface PlatformUnderTest {
  /** The platform as one relayctl process sees it. */
  readonly platform: Platform;
  /** The same cluster through another relayctl process. */
  openAnother(): Promise<{ platform: Platform; close(): Promise<void> }>;
  /**
   * Resolves with `check`'s value once it is neither null, false nor undefined. A platform on a virtual clock moves
   * its clock on between checks; a real one polls. Fails naming `what` when it never happens.
   */
  eventually<T>(what: string, check: () => Promise<T | null | false | undefined>): Promise<T>;
  /** Lets `ms` pass on the platform's clock (a lease expiring). */
  elapse(ms: number): Promise<void>;
  /** Makes relay-a-0 hold live sessions (devices connect, or the double's are seeded); resolves when it does. */
  holdSessions(): Promise<void>;
  /** What only this platform promises, checked where the contract reaches it. */
  readonly beyond?: {
    /** After relay-b was created and its relays run. */
    created?(): Promise<void>;
    /** After relay-b-0 restored from relay-a-0. */
    restored?(target: PodInfo, source: PodInfo): Promise<void>;
    /** After relay-b (and relay-x) were deleted. */
    deleted?(): Promise<void>;
  };
  /** Tears the cluster down. */
  close(): Promise<void>;
}

/** The orchestrator error code a promise rejects with; 'resolved', or what else it threw, otherwise. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isOrchestratorError(error)) return error.code;
    return `not an orchestrator error: ${String((error as { code?: unknown }).code ?? error)}`;
  }
  return 'resolved';
}

export function describePlatformContract(name: string, setUp: () => Promise<PlatformUnderTest>): void {
  describe(`${name}: the Platform contract`, () => {
    let under: PlatformUnderTest;
    let platform: Platform;
    const { set: A } = CONTRACT_FLEET;
    const B = 'relay-b';

    beforeAll(async () => {
      under = await setUp();
      platform = under.platform;
    });

    afterAll(async () => {
      await under?.close();
    });

    const pod = async (podName: string): Promise<PodInfo> => {
      const found = (await platform.listPods(podName.replace(/-\d+$/, ''))).find((candidate) => candidate.name === podName);
      if (found === undefined) throw new Error(`no pod ${podName}`);
      return found;
    };
    const setA = async (): Promise<SetInfo> => (await platform.getSet(A))!;

    test('the deployed set: image and replicas recorded, each pod running, ready and reachable, its relay serving', async () => {
      const set = await setA();
      expect(set).toMatchObject({ name: A, replicas: CONTRACT_FLEET.replicas, image: CONTRACT_FLEET.image });
      expect(set.resourceVersion).toEqual(expect.any(String));
      const pods = (await platform.listPods(A)).sort((x, y) => x.ordinal - y.ordinal);
      expect(pods.map((p) => [p.name, p.set, p.ordinal, p.phase, p.ready, p.image])).toEqual([
        [`${A}-0`, A, 0, 'Running', true, CONTRACT_FLEET.image],
        [`${A}-1`, A, 1, 'Running', true, CONTRACT_FLEET.image],
      ]);
      expect(pods.every((p) => p.mgmtUrl !== null && p.labels[RESTORE_LABEL] === undefined)).toBe(true);
      expect(await platform.relay.status(pods[0]!)).toMatchObject({ pod: `${A}-0`, state: 'serving', ready: true, forwardedDatagrams: 0, lastForwardAt: null });
    });

    test('what does not exist: no set (whatever the name), no pods', async () => {
      expect(await platform.getSet(B)).toBeNull();
      expect(await platform.getSet('../cluster')).toBeNull();
      expect(await platform.listPods(B)).toEqual([]);
    });

    test('createSet: the template\'s labels, the new image and annotations; relays start awaiting restore (running, not ready); a second create is refused', async () => {
      const template = await setA();
      const created = await platform.createSet({ name: B, replicas: 2, image: 'relay:2', template, annotations: { 'relayctl.dev/update-id': 'u1' } });
      expect(created).toMatchObject({ name: B, replicas: 2, image: 'relay:2', labels: copiedLabels(template), annotations: { 'relayctl.dev/update-id': 'u1' } });
      expect(created.resourceVersion).not.toBe(template.resourceVersion);
      expect(await codeOf(platform.createSet({ name: B, replicas: 1, image: 'relay:3', template, annotations: {} }))).toBe(ErrorCode.AlreadyExists);

      const seen = new Set<PodPhase>();
      const running = await under.eventually(`${B} pods running`, async () => {
        const listed = (await platform.listPods(B)).sort((x, y) => x.ordinal - y.ordinal);
        for (const p of listed) seen.add(p.phase);
        return listed.length === 2 && listed.every((p) => p.phase === 'Running' && p.mgmtUrl !== null) ? listed : null;
      });
      expect([...seen].every((phase) => phase === 'Pending' || phase === 'Running')).toBe(true);
      expect(running.map((p) => [p.name, p.ordinal, p.ready, p.image])).toEqual([[`${B}-0`, 0, false, 'relay:2'], [`${B}-1`, 1, false, 'relay:2']]);
      for (const p of running) expect(p.labels).toMatchObject(copiedLabels(template));
      const relay = await under.eventually(`${B}-0's relay to listen`, async () => {
        const status = await platform.relay.status(running[0]!);
        return status.state === 'starting' ? null : status;
      });
      expect(relay).toMatchObject({ state: 'awaiting-restore', ready: false, sessions: 0 });
      await under.beyond?.created?.();
    });

    test('set annotations: every write changes the resourceVersion, a stale one conflicts, null removes, pod labels leave it alone', async () => {
      const before = await setA();
      const written = await platform.patchSetAnnotations(A, { 'relayctl.dev/update': 'v1', keep: 'k' }, before.resourceVersion);
      expect(written.annotations).toEqual({ ...before.annotations, 'relayctl.dev/update': 'v1', keep: 'k' });
      expect(written.resourceVersion).not.toBe(before.resourceVersion);
      expect(await codeOf(platform.patchSetAnnotations(A, { 'relayctl.dev/update': 'v2' }, before.resourceVersion))).toBe(ErrorCode.Conflict);
      expect((await setA()).annotations['relayctl.dev/update']).toBe('v1');
      const removed = await platform.patchSetAnnotations(A, { 'relayctl.dev/update': null, keep: null });
      expect(removed.annotations).toEqual(before.annotations);
      await platform.patchPodLabels(`${A}-1`, { touched: 'yes' });
      await platform.patchPodLabels(`${A}-1`, { touched: null });
      expect((await setA()).resourceVersion).toBe(removed.resourceVersion);
      expect(await codeOf(platform.patchSetAnnotations('relay-z', { a: 'b' }))).toBe(ErrorCode.NotFound);
    });

    test('pod labels: set and removed; an unknown pod is not found', async () => {
      const labels = (await pod(`${B}-1`)).labels;
      await platform.patchPodLabels(`${B}-1`, { [RESTORE_LABEL]: RESTORE_LABEL_VALUE, extra: 'x' });
      expect((await pod(`${B}-1`)).labels).toEqual({ ...labels, [RESTORE_LABEL]: RESTORE_LABEL_VALUE, extra: 'x' });
      await platform.patchPodLabels(`${B}-1`, { [RESTORE_LABEL]: null, extra: null });
      expect((await pod(`${B}-1`)).labels).toEqual(labels);
      expect(await codeOf(platform.patchPodLabels(`${A}-9`, { [RESTORE_LABEL]: RESTORE_LABEL_VALUE }))).toBe(ErrorCode.NotFound);
    });

    test('the lock: held against others (who are told the holder), seen by another process, renewed, released, taken over once expired', async () => {
      const lease = await platform.lock.acquire('relay', 'alice', 10_000);
      expect(await platform.lock.inspect('relay')).toEqual({ name: 'relay', owner: 'alice', expiresAt: lease.expiresAt });
      const held = await platform.lock.acquire('relay', 'bob', 10_000).catch((error: unknown) => error);
      expect(isLockHeldError(held) && held.holder === 'alice' && held.expiresAt === lease.expiresAt).toBe(true);
      const other = await under.openAnother();
      try {
        expect((await other.platform.lock.inspect('relay'))?.owner).toBe('alice');
        expect(await codeOf(other.platform.lock.acquire('relay', 'carol', 10_000))).toBe(ErrorCode.LockHeld);
      } finally {
        await other.close();
      }
      await under.elapse(5);
      expect(await lease.renew()).toBeGreaterThan(lease.expiresAt);
      await lease.release();
      await lease.release();
      expect(await platform.lock.inspect('relay')).toBeNull();

      // Whole seconds: a Kubernetes Lease's duration is leaseDurationSeconds.
      const short = await platform.lock.acquire('relay', 'alice', 1_000);
      await under.elapse(1_100);
      expect(await platform.lock.inspect('relay')).toBeNull();
      const bob = await platform.lock.acquire('relay', 'bob', 10_000);
      expect(await codeOf(short.renew())).toBe(ErrorCode.LockLost);
      // Releasing a lease somebody took over leaves theirs alone.
      await short.release();
      expect((await platform.lock.inspect('relay'))?.owner).toBe('bob');
      await bob.release();
      expect(await platform.lock.inspect('relay')).toBeNull();
    });

    test('restore is refused by the label rule as the labels are now, whatever the caller passes', async () => {
      const a0 = await pod(`${A}-0`);
      const b0 = await pod(`${B}-0`);
      const carrying = { [RESTORE_LABEL]: RESTORE_LABEL_VALUE };
      expect(await codeOf(platform.relay.restore(b0, a0))).toBe(ErrorCode.RestoreRefused);
      // A stale or forged view of the labels does not get past the check.
      expect(await codeOf(platform.relay.restore(b0, { ...a0, labels: { ...a0.labels, ...carrying } }))).toBe(ErrorCode.RestoreRefused);
      await platform.patchPodLabels(`${A}-0`, carrying);
      await platform.patchPodLabels(`${B}-0`, carrying);
      expect(await codeOf(platform.relay.restore(b0, a0))).toBe(ErrorCode.RestoreRefused);
      // An old pod never restores from a new one.
      expect(await codeOf(platform.relay.restore(a0, b0))).toBe(ErrorCode.RestoreRefused);
      await platform.patchPodLabels(`${B}-0`, { [RESTORE_LABEL]: null });
      await platform.patchPodLabels(`${A}-1`, carrying);
      // Only from its double (the same ordinal).
      expect(await codeOf(platform.relay.restore(b0, await pod(`${A}-1`)))).toBe(ErrorCode.RestoreRefused);
      expect((await platform.relay.status(a0)).state).toBe('serving');
      expect((await platform.relay.status(b0)).state).toBe('awaiting-restore');
    });

    test('restore moves the sessions: the target serves them and turns ready, the source forwards and turns not ready; a second restore is refused by the relays', async () => {
      await under.holdSessions();
      const a0 = await pod(`${A}-0`);
      const b0 = await pod(`${B}-0`);
      const held = (await platform.relay.status(a0)).sessions;
      expect(held).toBeGreaterThan(0);

      const outcome = await platform.relay.restore(b0, a0);
      expect(outcome).toMatchObject({ sessions: held, skipped: 0 });
      expect(outcome.bytes).toBeGreaterThan(0);
      expect(await platform.relay.status(b0)).toMatchObject({ state: 'serving', ready: true, sessions: held });
      expect(await platform.relay.status(a0)).toMatchObject({ state: 'forwarding', ready: false, sessions: 0 });
      // The platform's readiness follows the relays' (after its probe interval).
      await under.eventually(`${B}-0 ready and ${A}-0 not`, async () => (await pod(`${B}-0`)).ready && !(await pod(`${A}-0`)).ready);
      await under.beyond?.restored?.(b0, a0);
      expect(await codeOf(platform.relay.restore(b0, a0))).toBe(ErrorCode.RestoreFailed);
    });

    test('deleteSet: the set is gone at once, its pods once their relays stopped; idempotent; the other set is untouched', async () => {
      const created = await platform.createSet({ name: 'relay-x', replicas: 1, image: 'relay:9', template: await setA(), annotations: {} });
      expect(created.name).toBe('relay-x');
      await under.eventually('relay-x-0 running', async () => (await platform.listPods('relay-x'))[0]?.phase === 'Running');
      await platform.deleteSet('relay-x');
      await platform.deleteSet(B);
      expect(await platform.getSet(B)).toBeNull();
      expect(await platform.getSet('relay-x')).toBeNull();
      await under.eventually(`${B} and relay-x pods gone`, async () => (await platform.listPods(B)).length === 0 && (await platform.listPods('relay-x')).length === 0);
      await platform.deleteSet(B);
      await platform.deleteSet('relay-never-was');
      await under.beyond?.deleted?.();
      // The set the devices are routed to is still whole.
      expect((await platform.listPods(A)).map((p) => [p.phase, p.mgmtUrl !== null])).toEqual([['Running', true], ['Running', true]]);
    });
  });
}
