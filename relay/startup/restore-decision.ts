import { carriesRestoreMark, restoreForbiddenBecause } from '../../api/fleet.ts';
import type { PodFacts } from './kubernetes-api.ts';

/**
 * A relay started awaiting restore never stays not-ready for ever (docs/design/contracts.md). Two decisions,
 * each a pure function of facts gathered just before:
 *
 * - at start: serve empty at once when there is provably nothing to restore (the double is gone or unmarked,
 *   or this pod itself is marked); otherwise wait to be driven (POST /v1/restore) for --restore-wait.
 * - when that wait ran out undriven: restore from the double itself if the restore rule still allows it (the
 *   same restore path the orchestrator would drive), else serve empty.
 *
 * Serving empty loses nothing: a double that still holds sessions keeps serving them, and a device that
 * reaches this relay later has its session claimed from whichever sibling holds it.
 */

export const RestoreReason = {
  /** No Kubernetes API to read: nothing to decide on until the wait runs out. */
  NoKubernetesApi: 'NoKubernetesApi',
  /** The API could not be read (network, 401, 403, 5xx): the facts are unknown. */
  ApiUnreadable: 'ApiUnreadable',
  /** The pod name is not `<name>-<a|b>-<ordinal>`, so there is no double. */
  NoDouble: 'NoDouble',
  /** The API says this pod does not exist: --pod-name is not the pod's name. */
  SelfNotFound: 'SelfNotFound',
  DoubleGone: 'DoubleGone',
  DoubleNotMarked: 'DoubleNotMarked',
  /** This pod carries the restore label: sessions may never flow into it from its double (rollback rule). */
  SelfMarked: 'SelfMarked',
  /** The double carries the label and this pod does not: a restore is expected. */
  DoubleMarked: 'DoubleMarked',
  /** Marked, but without an address to reach its relay at. */
  DoubleHasNoAddress: 'DoubleHasNoAddress',
} as const;
export type RestoreReason = (typeof RestoreReason)[keyof typeof RestoreReason];

export type RestoreFacts =
  | { api: 'off'; why: string }
  | { api: 'unreadable'; error: string }
  | {
      api: 'read';
      self: { name: string; pod: PodFacts | null };
      /** null name: the pod name has no double. */
      double: { name: string | null; pod: PodFacts | null };
      /** Management port of this relay, for a double whose spec names none. */
      ownMgmtPort: number;
    };

export type StartDecision =
  | { action: 'serve-empty'; reason: RestoreReason; message: string }
  | { action: 'wait'; reason: RestoreReason; message: string };

export type DeadlineDecision =
  | { action: 'serve-empty'; reason: RestoreReason; message: string }
  | { action: 'restore'; from: string; double: string; reason: RestoreReason; message: string };

type Judgement =
  | { kind: 'empty'; reason: RestoreReason; message: string }
  | { kind: 'unknown'; reason: RestoreReason; message: string }
  | { kind: 'restorable'; double: PodFacts; ownMgmtPort: number; message: string };

/** What the facts say about the pair, before deciding what to do with it. */
function judge(facts: RestoreFacts): Judgement {
  if (facts.api === 'off') return { kind: 'unknown', reason: RestoreReason.NoKubernetesApi, message: `cannot read the double: ${facts.why}` };
  if (facts.api === 'unreadable') return { kind: 'unknown', reason: RestoreReason.ApiUnreadable, message: `cannot read the double: ${facts.error}` };
  const { self, double } = facts;
  if (double.name === null) return { kind: 'empty', reason: RestoreReason.NoDouble, message: `pod name ${self.name} is not <name>-<a|b>-<ordinal>, so it has no double` };
  if (self.pod === null) return { kind: 'empty', reason: RestoreReason.SelfNotFound, message: `pod ${self.name} does not exist in the API: is --pod-name the pod's name?` };
  if (double.pod === null) return { kind: 'empty', reason: RestoreReason.DoubleGone, message: `double ${double.name} does not exist: nothing to restore` };
  const forbidden = restoreForbiddenBecause(self.pod, double.pod);
  if (forbidden !== null) {
    const reason = carriesRestoreMark(self.pod.labels) ? RestoreReason.SelfMarked : RestoreReason.DoubleNotMarked;
    return { kind: 'empty', reason, message: `${forbidden}: this pod may not restore from ${double.name}` };
  }
  const terminating = double.pod.terminating ? ' (terminating)' : '';
  return { kind: 'restorable', double: double.pod, ownMgmtPort: facts.ownMgmtPort, message: `double ${double.name}${terminating} carries the restore label and ${self.name} does not` };
}

export function decideAtStart(facts: RestoreFacts): StartDecision {
  const judged = judge(facts);
  switch (judged.kind) {
    case 'empty':
      return { action: 'serve-empty', reason: judged.reason, message: judged.message };
    case 'unknown':
      return { action: 'wait', reason: judged.reason, message: `${judged.message}; waiting to be driven` };
    case 'restorable':
      return { action: 'wait', reason: RestoreReason.DoubleMarked, message: `${judged.message}; waiting to be driven` };
  }
}

export function decideAtDeadline(facts: RestoreFacts, waitedMs: number): DeadlineDecision {
  const judged = judge(facts);
  const undriven = `nobody drove the restore within ${Math.round(waitedMs / 1000)}s`;
  switch (judged.kind) {
    case 'empty':
    case 'unknown':
      return { action: 'serve-empty', reason: judged.reason, message: `${undriven}; ${judged.message}` };
    case 'restorable': {
      const { double } = judged;
      if (double.podIp === null) {
        return { action: 'serve-empty', reason: RestoreReason.DoubleHasNoAddress, message: `${undriven}; ${judged.message}, but it has no pod IP` };
      }
      const host = double.podIp.includes(':') ? `[${double.podIp}]` : double.podIp;
      const from = `https://${host}:${double.mgmtPort ?? judged.ownMgmtPort}`;
      return { action: 'restore', from, double: double.name, reason: RestoreReason.DoubleMarked, message: `${undriven}; ${judged.message}: restoring from it` };
    }
  }
}
