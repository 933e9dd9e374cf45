/**
 * What simulated devices saw, in plain numbers: they can be subtracted (what happened between two snapshots),
 * added (worker threads, intervals) and sent between threads as they are.
 */

export interface FleetCounters {
  /** Requests sent (first transmissions). */
  requests: number;
  answered: number;
  retransmissions: number;
  /** Requests given up after the last retransmission timed out, or whose session died under them. */
  transmissionErrors: number;
  /** Answers to a request already answered: a retransmission crossed the first answer. Harmless. */
  duplicates: number;
  /** Completed handshakes (the initial ones included). */
  handshakes: number;
  handshakeFailures: number;
  /** Sessions the relay ended (alert or close_notify) while the device used them. */
  sessionsLost: number;
  /** Sum and maximum of request-to-answer times, retransmissions included. */
  latencySumMs: number;
  latencyMaxMs: number;
}

export function zeroCounters(): FleetCounters {
  return {
    requests: 0,
    answered: 0,
    retransmissions: 0,
    transmissionErrors: 0,
    duplicates: 0,
    handshakes: 0,
    handshakeFailures: 0,
    sessionsLost: 0,
    latencySumMs: 0,
    latencyMaxMs: 0,
  };
}

/** Sums counters of several fleets (worker threads); maxima take the larger. */
export function mergeCounters(a: FleetCounters, b: FleetCounters): FleetCounters {
  const merged = zeroCounters();
  for (const key of Object.keys(merged) as (keyof FleetCounters)[]) merged[key] = key === 'latencyMaxMs' ? Math.max(a[key], b[key]) : a[key] + b[key];
  return merged;
}

/** What happened between two snapshots. The maximum cannot be subtracted: use a FleetWindow for that. */
export function diffCounters(later: FleetCounters, earlier: FleetCounters): FleetCounters {
  const diff = zeroCounters();
  for (const key of Object.keys(diff) as (keyof FleetCounters)[]) diff[key] = key === 'latencyMaxMs' ? later[key] : later[key] - earlier[key];
  return diff;
}
