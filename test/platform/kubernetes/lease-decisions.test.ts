import { describe, expect, test } from 'vitest';
import { decideAcquire, decideRenew, expiryOf, leaseObject, leaseStateOf, type LeaseState } from '../../../orchestrator/platform/kubernetes/lease-lock.ts';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0, 250);

function state(overrides: Partial<LeaseState> = {}): LeaseState {
  return { holder: 'alice@ci:41', durationMs: 30_000, acquireTime: T0, renewTime: T0 + 10_000, transitions: 2, resourceVersion: '77', ...overrides };
}

describe('the Lease lock decisions', () => {
  test('acquire: create when there is no Lease, refuse while held, take over when expired or released', () => {
    expect(decideAcquire(null, T0)).toEqual({ action: 'create' });
    // Held until renewTime + leaseDurationSeconds.
    expect(decideAcquire(state(), T0 + 39_999)).toEqual({ action: 'held', holder: 'alice@ci:41', expiresAt: T0 + 40_000 });
    expect(decideAcquire(state(), T0 + 40_000)).toEqual({ action: 'take-over', transitions: 3, resourceVersion: '77', from: 'alice@ci:41' });
    expect(decideAcquire(state({ holder: '' }), T0)).toEqual({ action: 'take-over', transitions: 3, resourceVersion: '77', from: '' });
    expect(expiryOf(state({ renewTime: null }))).toBe(T0 + 30_000);
  });

  test('renew: only the same acquisition, and only before expiry', () => {
    const mine = { owner: 'alice@ci:41', acquireTime: T0 };
    expect(decideRenew(state(), mine, T0 + 20_000)).toEqual({ action: 'renew' });
    expect(decideRenew(null, mine, T0)).toEqual({ action: 'lost', why: 'the Lease was deleted' });
    expect(decideRenew(state({ holder: 'bob@ci:7' }), mine, T0)).toEqual({ action: 'lost', why: 'taken over by bob@ci:7' });
    expect(decideRenew(state({ holder: '' }), mine, T0)).toEqual({ action: 'lost', why: 'released' });
    // The same owner string acquiring again (a rerun in the same process) is another acquisition.
    expect(decideRenew(state({ acquireTime: T0 + 1 }), mine, T0)).toMatchObject({ action: 'lost' });
    expect(decideRenew(state(), mine, T0 + 40_000)).toEqual({ action: 'lost', why: `expired at ${new Date(T0 + 40_000).toISOString()}` });
  });

  test('the Lease object: MicroTime with six fractional digits, whole seconds rounded up, and read back as written', () => {
    const lease = leaseObject({ name: 'relayctl-relay', namespace: 'relays', owner: 'alice@ci:41', ttlMs: 30_500, acquireTime: T0, renewTime: T0 + 1, transitions: 4, resourceVersion: '77' });
    const wire = JSON.parse(JSON.stringify(lease)) as { spec: Record<string, unknown>; metadata: Record<string, unknown> };
    expect(wire).toEqual({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'relayctl-relay', namespace: 'relays', resourceVersion: '77' },
      spec: {
        holderIdentity: 'alice@ci:41',
        leaseDurationSeconds: 31,
        acquireTime: '2025-01-01T12:00:00.250000Z',
        renewTime: '2025-01-01T12:00:00.251000Z',
        leaseTransitions: 4,
      },
    });
    // What client-node hands back from a read: the API server's strings.
    expect(leaseStateOf(wire as never)).toEqual({ holder: 'alice@ci:41', durationMs: 31_000, acquireTime: T0, renewTime: T0 + 1, transitions: 4, resourceVersion: '77' });
    const released = leaseObject({ name: 'relayctl-relay', namespace: 'relays', owner: null, ttlMs: 30_000, acquireTime: T0, renewTime: T0, transitions: 4 });
    expect(released.spec).not.toHaveProperty('holderIdentity');
    expect(leaseStateOf(released).holder).toBe('');
  });
});
