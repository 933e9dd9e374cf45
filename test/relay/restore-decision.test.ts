import { describe, expect, it } from 'vitest';
import { doublePodName, parseSetPodName } from '../../api/fleet.ts';
import type { PodFacts } from '../../relay/startup/kubernetes-api.ts';
import { decideAtDeadline, decideAtStart, RestoreReason, type RestoreFacts } from '../../relay/startup/restore-decision.ts';

const MARK = { 'relayctl.dev/restore': 'true' };

function pod(name: string, labels: Record<string, string> = {}, extra: Partial<PodFacts> = {}): PodFacts {
  return { name, labels, podIp: '10.0.0.7', mgmtPort: 8443, terminating: false, ...extra };
}

function read(self: PodFacts | null, double: PodFacts | null, names = { self: 'relay-b-1', double: 'relay-a-1' as string | null }): RestoreFacts {
  return { api: 'read', self: { name: names.self, pod: self }, double: { name: names.double, pod: double }, ownMgmtPort: 8443 };
}

describe('the double of a pod', () => {
  it('is the same ordinal in the other set', () => {
    expect(doublePodName('relay-b-1')).toBe('relay-a-1');
    expect(doublePodName('relay-a-12')).toBe('relay-b-12');
    expect(doublePodName('my-fleet-a-0')).toBe('my-fleet-b-0');
    expect(parseSetPodName('my-fleet-a-0')).toEqual({ fleet: 'my-fleet', set: 'a', ordinal: 0 });
  });

  it('does not exist for names of another form', () => {
    for (const name of ['relay-c-1', 'relay-a-01', 'relay-a', 'a-1', 'relay-a-x', 'laptop']) expect(doublePodName(name), name).toBeNull();
  });
});

describe('decideAtStart', () => {
  it('serves empty at once when there is provably nothing to restore, naming why', () => {
    const cases: Array<[RestoreFacts, RestoreReason, string]> = [
      [read(pod('relay-b-1'), null), RestoreReason.DoubleGone, 'double relay-a-1 does not exist: nothing to restore'],
      [read(pod('relay-b-1'), pod('relay-a-1')), RestoreReason.DoubleNotMarked, 'relay-a-1 does not carry relayctl.dev/restore=true: this pod may not restore from relay-a-1'],
      [read(pod('relay-b-1', MARK), pod('relay-a-1', MARK)), RestoreReason.SelfMarked, 'relay-b-1 carries relayctl.dev/restore=true: this pod may not restore from relay-a-1'],
      [read(null, pod('relay-a-1', MARK)), RestoreReason.SelfNotFound, "pod relay-b-1 does not exist in the API: is --pod-name the pod's name?"],
      [read(null, null, { self: 'laptop', double: null }), RestoreReason.NoDouble, 'pod name laptop is not <name>-<a|b>-<ordinal>, so it has no double'],
    ];
    for (const [facts, reason, message] of cases) expect(decideAtStart(facts), reason).toEqual({ action: 'serve-empty', reason, message });
  });

  it('waits to be driven when the double is marked, or when the facts cannot be read', () => {
    expect(decideAtStart(read(pod('relay-b-1'), pod('relay-a-1', MARK)))).toEqual({
      action: 'wait', reason: RestoreReason.DoubleMarked, message: 'double relay-a-1 carries the restore label and relay-b-1 does not; waiting to be driven',
    });
    expect(decideAtStart({ api: 'unreadable', error: 'GET ...: HTTP 503' })).toEqual({
      action: 'wait', reason: RestoreReason.ApiUnreadable, message: 'cannot read the double: GET ...: HTTP 503; waiting to be driven',
    });
    expect(decideAtStart({ api: 'off', why: 'not in a Kubernetes pod' })).toEqual({
      action: 'wait', reason: RestoreReason.NoKubernetesApi, message: 'cannot read the double: not in a Kubernetes pod; waiting to be driven',
    });
  });
});

describe('decideAtDeadline (nobody drove the restore)', () => {
  it('restores from the double itself when it still carries the label, at its pod IP and mgmt port', () => {
    expect(decideAtDeadline(read(pod('relay-b-1'), pod('relay-a-1', MARK, { mgmtPort: 9443 })), 120_000)).toEqual({
      action: 'restore',
      from: 'https://10.0.0.7:9443',
      double: 'relay-a-1',
      reason: RestoreReason.DoubleMarked,
      message: 'nobody drove the restore within 120s; double relay-a-1 carries the restore label and relay-b-1 does not: restoring from it',
    });
    const v6 = decideAtDeadline(read(pod('relay-b-1'), pod('relay-a-1', MARK, { podIp: 'fd00::7', mgmtPort: null, terminating: true })), 5_000);
    expect(v6).toMatchObject({ action: 'restore', from: 'https://[fd00::7]:8443', message: expect.stringContaining('double relay-a-1 (terminating) carries') });
  });

  it('serves empty when the label went, the double went, it has no address, or nothing can be read', () => {
    expect(decideAtDeadline(read(pod('relay-b-1'), pod('relay-a-1')), 120_000)).toMatchObject({ action: 'serve-empty', reason: RestoreReason.DoubleNotMarked });
    expect(decideAtDeadline(read(pod('relay-b-1'), null), 120_000)).toMatchObject({ action: 'serve-empty', reason: RestoreReason.DoubleGone });
    expect(decideAtDeadline(read(pod('relay-b-1'), pod('relay-a-1', MARK, { podIp: null })), 120_000)).toEqual({
      action: 'serve-empty',
      reason: RestoreReason.DoubleHasNoAddress,
      message: 'nobody drove the restore within 120s; double relay-a-1 carries the restore label and relay-b-1 does not, but it has no pod IP',
    });
    expect(decideAtDeadline({ api: 'unreadable', error: 'timeout' }, 120_000)).toEqual({
      action: 'serve-empty', reason: RestoreReason.ApiUnreadable, message: 'nobody drove the restore within 120s; cannot read the double: timeout',
    });
    expect(decideAtDeadline({ api: 'off', why: '--kubernetes-api off' }, 120_000)).toMatchObject({ action: 'serve-empty', reason: RestoreReason.NoKubernetesApi });
  });
});
