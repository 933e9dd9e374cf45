import type { MovedOrdinal, RunResult, UpdateStatus } from '../../orchestrator/index.ts';
import type { FleetCounters } from '../../loadgen/counters.ts';
import { bytes, duration, percent, table } from './format.ts';
import type { Style } from './style.ts';

/** What `relayctl demo` ends with: what the devices saw, the whole run and during the update, and each set's figures. */

type Moved = Pick<MovedOrdinal, 'source' | 'target' | 'sessions' | 'bytes' | 'pauseMs'>;

export interface SetFigures {
  set: string;
  relays: number;
  sessionsBefore: number | null;
  sessionsAfter: number | null;
  handedOver: number;
  bytes: number;
  maxPauseMs: number | null;
  received: number;
  forwarded: number;
}

/**
 * Requests waiting for their answer when the update began and when it ended. The window's counters count
 * requests sent and answers received inside it, so answers to requests sent before it are counted, and answers
 * to requests sent near its end come after it: requests + inFlight.atStart = answered + errors + inFlight.atEnd.
 */
export interface InFlight {
  atStart: number;
  atEnd: number;
}

export interface DemoSummary {
  type: 'demo-summary';
  updateCode: RunResult['code'];
  updateDurationMs: number;
  devices: number;
  whole: FleetCounters;
  during: FleetCounters;
  inFlight: InFlight;
  unanswered: number;
  sets: SetFigures[];
  /** Any error, handshake during the update, or unanswered request. */
  devicesNoticed: boolean;
  service: { address: string; port: number };
}

function sessionsOf(status: UpdateStatus, set: string): number | null {
  const found = status.sets.find((candidate) => candidate.set.name === set);
  if (found === undefined) return null;
  return found.pods.reduce((sum, pod) => sum + (found.relays?.[pod.name]?.sessions ?? 0), 0);
}

export function summarize(input: {
  result: RunResult;
  whole: FleetCounters;
  during: FleetCounters;
  inFlight: InFlight;
  unanswered: number;
  before: UpdateStatus;
  after: UpdateStatus;
  forwarded: ReadonlyMap<string, number>;
  devices: number;
  service: { address: string; port: number };
}): DemoSummary {
  const { result, before, after } = input;
  const moved: Moved[] = result.code === 'succeeded' ? result.moved : Object.values(result.record?.handedOver ?? {}).filter((entry) => entry.state === 'done');
  // Sets of the same fleet exist in order a, b; the new one may have been created after `before`.
  const names = [...new Set([...before.sets, ...after.sets].map((entry) => entry.set.name))].sort();
  const sets: SetFigures[] = names.map((set) => {
    const out = moved.filter((entry) => entry.source.startsWith(`${set}-`));
    const pauses = out.map((entry) => entry.pauseMs).filter((pause): pause is number => pause !== null);
    const replicas = [...before.sets, ...after.sets].find((entry) => entry.set.name === set)?.set.replicas ?? 0;
    return {
      set,
      relays: replicas,
      sessionsBefore: sessionsOf(before, set),
      sessionsAfter: sessionsOf(after, set),
      handedOver: out.reduce((sum, entry) => sum + (entry.sessions ?? 0), 0),
      bytes: out.reduce((sum, entry) => sum + (entry.bytes ?? 0), 0),
      maxPauseMs: pauses.length === 0 ? null : Math.max(...pauses),
      received: moved.filter((entry) => entry.target.startsWith(`${set}-`)).reduce((sum, entry) => sum + (entry.sessions ?? 0), 0),
      forwarded: [...input.forwarded].filter(([pod]) => pod.startsWith(`${set}-`)).reduce((sum, [, count]) => sum + count, 0),
    };
  });
  const noticed = input.whole.transmissionErrors > 0 || input.during.handshakes > 0 || input.during.handshakeFailures > 0 || input.unanswered > 0 || input.whole.sessionsLost > 0;
  return {
    type: 'demo-summary',
    updateCode: result.code,
    updateDurationMs: result.durationMs,
    devices: input.devices,
    whole: input.whole,
    during: input.during,
    inFlight: input.inFlight,
    unanswered: input.unanswered,
    sets,
    devicesNoticed: noticed,
    service: input.service,
  };
}

/** The summary as text for stdout: two tables and a verdict. */
export function demoSummaryLines(summary: DemoSummary, style: Style): string[] {
  const { whole, during, inFlight } = summary;
  const mark = (value: number): string => (value === 0 ? style.ok('0') : style.bad(String(value)));
  const rows = [
    ['what the devices saw', 'whole run', 'during the update'].map((cell) => style.dim(cell)),
    ['requests', String(whole.requests), String(during.requests)],
    ['  in flight as it began', '', String(inFlight.atStart)],
    ['answered', String(whole.answered), String(during.answered)],
    ['  in flight as it ended', '', String(inFlight.atEnd)],
    ['retransmissions', `${whole.retransmissions} (${percent(whole.retransmissions, whole.requests)})`, `${during.retransmissions} (${percent(during.retransmissions, during.requests)})`],
    ['transmission errors', mark(whole.transmissionErrors), mark(during.transmissionErrors)],
    ['handshakes', String(whole.handshakes), mark(during.handshakes)],
    ['handshake failures', mark(whole.handshakeFailures), mark(during.handshakeFailures)],
    ['sessions ended by a relay', mark(whole.sessionsLost), mark(during.sessionsLost)],
    ['duplicate answers', String(whole.duplicates), String(during.duplicates)],
    ['mean answer time', duration(whole.answered === 0 ? null : whole.latencySumMs / whole.answered), duration(during.answered === 0 ? null : during.latencySumMs / during.answered)],
    ['slowest answer', duration(whole.latencyMaxMs), duration(during.latencyMaxMs)],
    ['unanswered at the end', mark(summary.unanswered), ''],
  ];
  const setRows = [
    ['set', 'relays', 'sessions before', 'sessions after', 'handed over', 'state moved', 'longest pause', 'received', 'stragglers forwarded'].map((cell) => style.dim(cell)),
    ...summary.sets.map((set) => [
      set.set,
      String(set.relays),
      set.sessionsBefore === null ? '-' : String(set.sessionsBefore),
      set.sessionsAfter === null ? 'gone' : String(set.sessionsAfter),
      String(set.handedOver),
      set.bytes === 0 ? '-' : bytes(set.bytes),
      set.maxPauseMs === null ? '-' : duration(set.maxPauseMs),
      String(set.received),
      String(set.forwarded),
    ]),
  ];
  const verdict = summary.updateCode !== 'succeeded'
    ? style.bad(`the update did not succeed (${summary.updateCode})`)
    : summary.devicesNoticed
      ? style.bad('the update succeeded, but the devices noticed (see the red figures)')
      : style.ok(`the update succeeded in ${duration(summary.updateDurationMs)} and no device noticed: 0 handshakes and 0 errors during the update`);
  return ['', ...table(rows, { right: [1, 2] }), '', ...table(setRows, { right: [1, 2, 3, 4, 5, 6, 7, 8] }), '', verdict];
}
