import { CoordinationV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ManualClock } from '../../../orchestrator/clock.ts';
import { ErrorCode, isLockHeldError, isOrchestratorError } from '../../../orchestrator/errors.ts';
import type { OpenedKubernetesPlatform } from '../../../orchestrator/platform/kubernetes/index.ts';
import { NS, notCache, standIn, type StandIn } from './standin.ts';

/**
 * The update lock as a coordination.k8s.io/v1 Lease on the API stand-in. Expiry is judged by the platform's clock,
 * here a ManualClock, so every "expired" below is exact.
 */

let standin: StandIn;
let clock: ManualClock;
let alice: OpenedKubernetesPlatform;
let bob: OpenedKubernetesPlatform;
let carol: OpenedKubernetesPlatform;
let leases: CoordinationV1Api;

beforeAll(async () => {
  standin = await standIn();
  clock = new ManualClock({ startMs: Date.UTC(2025, 0, 1, 12) });
  [alice, bob, carol] = await Promise.all([standin.open({ clock }), standin.open({ clock }), standin.open({ clock })]);
  leases = standin.adminConfig.makeApiClient(CoordinationV1Api);
});

afterAll(async () => {
  await standin?.close();
});

beforeEach(async () => {
  // Each test starts without a Lease (an admin clean-up; relayctl itself never deletes it).
  await leases.deleteNamespacedLease({ name: 'relayctl-relay', namespace: NS }).catch(() => undefined);
});

function lease(): { spec: Record<string, unknown>; metadata: { resourceVersion: string } } | undefined {
  return standin.api.store.get('leases', NS, 'relayctl-relay') as never;
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (error: unknown) => error,
  );
}

describe('the Lease lock', () => {
  test('acquire creates the Lease; others are refused with the holder and expiry; renew and release update it, never delete it', async () => {
    const t0 = clock.now();
    let mark = standin.mark();
    const held = await alice.platform.lock.acquire('relay', 'alice@ci:1', 30_000);
    expect(standin.calls(mark, notCache)).toEqual(['get leases relayctl-relay -> 404', 'create leases']);
    expect(held).toMatchObject({ name: 'relay', owner: 'alice@ci:1', expiresAt: t0 + 30_000 });
    expect(lease()?.spec).toEqual({
      holderIdentity: 'alice@ci:1',
      leaseDurationSeconds: 30,
      acquireTime: new Date(t0).toISOString().replace('Z', '000Z'),
      renewTime: new Date(t0).toISOString().replace('Z', '000Z'),
      leaseTransitions: 0,
    });

    const refused = await caught(bob.platform.lock.acquire('relay', 'bob@ci:2', 30_000));
    expect(isLockHeldError(refused) && [refused.holder, refused.expiresAt]).toEqual(['alice@ci:1', t0 + 30_000]);
    expect(await bob.platform.lock.inspect('relay')).toEqual({ name: 'relay', owner: 'alice@ci:1', expiresAt: t0 + 30_000 });

    await clock.advance(10_000);
    mark = standin.mark();
    expect(await held.renew()).toBe(t0 + 40_000);
    expect(standin.calls(mark, notCache)).toEqual(['update leases relayctl-relay']);

    mark = standin.mark();
    await held.release();
    expect(standin.calls(mark, notCache)).toEqual(['get leases relayctl-relay', 'update leases relayctl-relay']);
    expect(lease()?.spec).not.toHaveProperty('holderIdentity');
    expect(await bob.platform.lock.inspect('relay')).toBeNull();
    await held.release();
    // Free again: taken with an update of the same Lease.
    const next = await bob.platform.lock.acquire('relay', 'bob@ci:2', 30_000);
    expect(lease()?.spec).toMatchObject({ holderIdentity: 'bob@ci:2', leaseTransitions: 1 });
    await next.release();
  });

  test('an expired lease is taken over with a resourceVersion-guarded update; its old holder then finds it lost and leaves it alone', async () => {
    const old = await alice.platform.lock.acquire('relay', 'alice@ci:1', 30_000);
    await clock.advance(30_000);
    const mark = standin.mark();
    const taken = await bob.platform.lock.acquire('relay', 'bob@ci:2', 30_000);
    expect(standin.calls(mark, notCache)).toEqual(['get leases relayctl-relay', 'update leases relayctl-relay']);
    expect(lease()?.spec).toMatchObject({ holderIdentity: 'bob@ci:2', leaseTransitions: 1 });

    const lost = await caught(old.renew());
    expect(isOrchestratorError(lost) && [lost.code, lost.message]).toEqual([ErrorCode.LockLost, `lock relay lost by alice@ci:1: expired at ${new Date(old.expiresAt).toISOString()}`]);
    await old.release();
    expect(lease()?.spec).toMatchObject({ holderIdentity: 'bob@ci:2' });
    await taken.release();
  });

  test('two takers of an expired lease: exactly one wins, the other is told who holds it', async () => {
    await alice.platform.lock.acquire('relay', 'alice@ci:1', 30_000);
    await clock.advance(31_000);
    const results = await Promise.allSettled([bob.platform.lock.acquire('relay', 'bob@ci:2', 30_000), carol.platform.lock.acquire('relay', 'carol@ci:3', 30_000)]);
    const winners = results.filter((result) => result.status === 'fulfilled');
    const losers = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    const holder = (lease()!.spec.holderIdentity as string);
    expect(isLockHeldError(losers[0]!.reason) && losers[0]!.reason.holder).toBe(holder);
    expect(lease()?.spec).toMatchObject({ leaseTransitions: 1 });
  });

  test('a renewal after somebody else touched the Lease (still ours) looks, then renews', async () => {
    const held = await alice.platform.lock.acquire('relay', 'alice@ci:1', 30_000);
    await leases.patchNamespacedLease(
      { name: 'relayctl-relay', namespace: NS, body: { metadata: { labels: { audited: 'yes' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await clock.advance(5_000);
    const mark = standin.mark();
    expect(await held.renew()).toBe(clock.now() + 30_000);
    expect(standin.calls(mark, notCache)).toEqual(['update leases relayctl-relay -> 409', 'get leases relayctl-relay', 'update leases relayctl-relay']);
    await held.release();
  });

  test('a Lease somebody rewrote to another holder is lost at the next renewal, and left to them', async () => {
    const held = await alice.platform.lock.acquire('relay', 'alice@ci:1', 30_000);
    await leases.patchNamespacedLease(
      { name: 'relayctl-relay', namespace: NS, body: { spec: { holderIdentity: 'mallory@laptop:9' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const lost = await caught(held.renew());
    expect(isOrchestratorError(lost) && lost.message).toBe('lock relay lost by alice@ci:1: taken over by mallory@laptop:9');
    await held.release();
    expect(lease()?.spec).toMatchObject({ holderIdentity: 'mallory@laptop:9' });
  });
});
