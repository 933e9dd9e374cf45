import { describe, expect, test } from 'vitest';
import { ManualClock } from '../../../orchestrator/clock.ts';
import { ErrorCode } from '../../../orchestrator/errors.ts';
import type { PodInfo } from '../../../orchestrator/platform/platform.ts';
import { FakeCluster, ProcessKilledError } from '../../fakes/platform.ts';

/**
 * The double the orchestrator tests rely on: if it did not enforce these, those tests would prove little. What it
 * shares with the real platforms (labels, the restore rule, optimistic concurrency, the lock, sets and pods) is held
 * to the Platform contract in test/platform/fake/contract.test.ts; here, what only a double has: virtual time,
 * faults, killed processes and the session invariant.
 */

function cluster(world: ConstructorParameters<typeof FakeCluster>[1] = {}): { clock: ManualClock; fake: FakeCluster } {
  const clock = new ManualClock({ startMs: 0 });
  const fake = new FakeCluster(clock, world);
  fake.seed({ name: 'relay', replicas: 2, image: 'relay:1', sessions: [10, 20] });
  return { clock, fake };
}

async function newSet(fake: FakeCluster, clock: ManualClock): Promise<{ old: PodInfo[]; fresh: PodInfo[] }> {
  const platform = fake.process();
  const template = (await platform.getSet('relay-a'))!;
  await platform.createSet({ name: 'relay-b', replicas: 2, image: 'relay:2', template, annotations: {} });
  await clock.advance(5000);
  return { old: await platform.listPods('relay-a'), fresh: await platform.listPods('relay-b') };
}

describe('the fake relays', () => {
  test('move sessions at commit, show the transfer in flight, and flip readiness after the probe lag', async () => {
    const { clock, fake } = cluster({ restoreMs: 400, readinessLagMs: 1000 });
    const platform = fake.process();
    const { old, fresh } = await newSet(fake, clock);
    fake.editPodLabels('relay-a-1', { restore: 'true' });
    const restoring = platform.relay.restore(fresh[1]!, old[1]!);
    await clock.advance(100);
    expect(fake.relayOf('relay-a-1')?.state).toBe('handing-over');
    expect(fake.relayOf('relay-b-1')?.state).toBe('restoring');
    await clock.advance(300);
    await expect(restoring).resolves.toEqual({ sessions: 20, skipped: 0, bytes: 20 * 297, durationMs: 400, pauseMs: 50 });
    expect(fake.holders()['relay/1']).toBe('relay-b-1');
    expect(fake.relayOf('relay-a-1')).toMatchObject({ state: 'forwarding', sessions: 0, ready: false });
    expect(fake.pods('relay-b').find((pod) => pod.ordinal === 1)?.ready).toBe(false);
    await clock.advance(1000);
    expect(fake.pods('relay-b').find((pod) => pod.ordinal === 1)?.ready).toBe(true);
    expect(fake.pods('relay-a').find((pod) => pod.ordinal === 1)?.ready).toBe(false);
    expect(fake.violations).toEqual([]);
  });

  test('forward stragglers at a decaying rate until none are left', async () => {
    const { clock, fake } = cluster({ stragglers: 40, stragglerTauMs: 1500 });
    const platform = fake.process();
    const { old, fresh } = await newSet(fake, clock);
    fake.editPodLabels('relay-a-0', { restore: 'true' });
    const restoring = platform.relay.restore(fresh[0]!, old[0]!);
    await clock.advance(400);
    await restoring;
    const counts: number[] = [];
    for (let second = 0; second < 12; second++) {
      await clock.advance(1000);
      counts.push(fake.relayOf('relay-a-0')!.forwardedDatagrams);
    }
    expect(counts).toEqual([...counts].sort((x, y) => x - y));
    expect(counts.at(-1)).toBe(40);
    expect(counts[1]! - counts[0]!).toBeGreaterThan(counts[6]! - counts[5]!);
    expect(fake.relayOf('relay-a-0')!.lastForwardAt).toBeLessThan(clock.now());
  });

  test('record a broken invariant when a set holding sessions is deleted', async () => {
    const { fake } = cluster();
    await fake.process().deleteSet('relay-a');
    expect(fake.violations).toEqual([
      expect.stringContaining('relay/0: sessions on relay-a-0, which is being deleted'),
      expect.stringContaining('relay/1: sessions on relay-a-1, which is being deleted'),
    ]);
  });
});

describe('the fake platform calls', () => {
  test('a killed process makes no further calls; a new process can', async () => {
    const { fake } = cluster();
    const first = fake.process();
    fake.addFault({ method: 'patchPodLabels', effect: { kind: 'kill' } });
    await expect(first.patchPodLabels('relay-a-0', { restore: 'true' })).rejects.toBeInstanceOf(ProcessKilledError);
    expect(fake.pods('relay-a')[0]!.labels['restore']).toBe('true');
    await expect(first.getSet('relay-a')).rejects.toBeInstanceOf(ProcessKilledError);
    expect(fake.log()).toEqual(['patchPodLabels relay-a-0 {"restore":"true"} !killed']);
    await expect(fake.process().getSet('relay-a')).resolves.toMatchObject({ name: 'relay-a' });
  });

  test('faults hit the nth matching call for `times` calls; fail-after takes effect before failing', async () => {
    const { fake } = cluster();
    const platform = fake.process();
    fake.addFault({ method: 'patchPodLabels', nth: 2, times: 2, effect: { kind: 'fail-after' } });
    await platform.patchPodLabels('relay-a-0', { a: '1' });
    await expect(platform.patchPodLabels('relay-a-0', { b: '1' })).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    await expect(platform.patchPodLabels('relay-a-0', { c: '1' })).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    await platform.patchPodLabels('relay-a-0', { d: '1' });
    expect(fake.pods('relay-a')[0]!.labels).toMatchObject({ a: '1', b: '1', c: '1', d: '1' });
  });

});
