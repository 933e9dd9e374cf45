import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { RelayState, RestoreRequest, RestoreResponse } from '../../api/management.ts';
import type { PodFacts, PodReader } from '../../relay/startup/kubernetes-api.ts';
import { KubernetesReadError } from '../../relay/startup/kubernetes-api.ts';
import { StartupRestore, type StartupRestoreHost, type StartupTimers } from '../../relay/startup/startup-restore.ts';

const WAIT = 120_000;
const MARK = { 'relayctl.dev/restore': 'true' };

/** A clock that moves only when told; due timers run in order. */
class ManualTimers implements StartupTimers {
  private time = 0;
  private timers: Array<{ at: number; run: () => void; live: boolean }> = [];
  armed: number[] = [];
  now(): number {
    return this.time;
  }
  after(ms: number, run: () => void): () => void {
    const timer = { at: this.time + ms, run, live: true };
    this.timers.push(timer);
    this.armed.push(timer.at);
    return () => (timer.live = false);
  }
  async advanceTo(at: number): Promise<void> {
    this.time = at;
    for (const timer of this.timers.filter((t) => t.live && t.at <= at)) {
      timer.live = false;
      timer.run();
    }
    await settle();
  }
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

class FakeReader implements PodReader {
  pods = new Map<string, PodFacts>();
  reads: string[] = [];
  failure: string | null = null;
  async getPod(name: string): Promise<PodFacts | null> {
    this.reads.push(name);
    if (this.failure !== null) throw new KubernetesReadError(this.failure, 503);
    return this.pods.get(name) ?? null;
  }
  set(name: string, labels: Record<string, string> = {}): void {
    this.pods.set(name, { name, labels, podIp: '10.0.0.9', mgmtPort: 8443, terminating: false });
  }
  async close(): Promise<void> {}
}

const OUTCOME: RestoreResponse = { from: '', sessions: 0, skipped: 0, bytes: 0, durationMs: 0, pauseMs: 0, queuedForwarded: 0, precopySessions: 0, deltaSessions: 0, delta: false };

/** The relay side: records every restore it is asked for; a restore from a relay succeeds unless told otherwise. */
class FakeHost implements StartupRestoreHost {
  state: RelayState = 'awaiting-restore';
  restoreStartedAt: number | null = null;
  requests: RestoreRequest[] = [];
  failRestore = false;
  private readonly timers: ManualTimers;
  constructor(timers: ManualTimers) {
    this.timers = timers;
  }
  async restore(request: RestoreRequest): Promise<RestoreResponse> {
    this.requests.push(request);
    if (request.empty === true) {
      this.state = 'serving';
      return OUTCOME;
    }
    this.restoreStartedAt = this.timers.now();
    if (this.failRestore) throw Object.assign(new Error('restore from https://10.0.0.9:8443 failed: ERR_NOT_SERVING'), { code: 'ERR_NOT_SERVING' });
    this.state = 'serving';
    return { ...OUTCOME, from: request.from!, sessions: 42 };
  }
  /** The orchestrator drives a restore that is still running. */
  driven(): void {
    this.state = 'restoring';
    this.restoreStartedAt = this.timers.now();
  }
}

function setup(options: { reader?: FakeReader | null; podName?: string } = {}) {
  const timers = new ManualTimers();
  const host = new FakeHost(timers);
  const lines: Array<{ msg: string; restoreDecision?: string; reason?: string }> = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const reader = options.reader === undefined ? new FakeReader() : options.reader;
  const startup = new StartupRestore({ host, reader, offReason: 'not in a Kubernetes pod', podName: options.podName ?? 'relay-b-1', ownMgmtPort: 8443, waitMs: WAIT, log, timers });
  const decisions = () => lines.filter((l) => l.restoreDecision !== undefined).map((l) => `${l.restoreDecision} ${l.reason}: ${l.msg}`);
  return { timers, host, reader: reader as FakeReader, startup, decisions, lines };
}

describe('StartupRestore', () => {
  it('serves empty at once when the double is gone (a first install)', async () => {
    const { host, reader, startup, decisions, timers } = setup();
    reader.set('relay-b-1');
    await startup.begin();
    await startup.settled;
    expect(reader.reads).toEqual(['relay-b-1', 'relay-a-1']);
    expect(host.requests).toEqual([{ empty: true }]);
    expect(decisions()).toEqual(['serve-empty DoubleGone: start-up restore: double relay-a-1 does not exist: nothing to restore']);
    expect(timers.armed).toEqual([]);
  });

  it('waits for the orchestrator, then restores from the still-marked double itself', async () => {
    const { host, reader, startup, decisions, timers } = setup();
    reader.set('relay-b-1');
    reader.set('relay-a-1', MARK);
    await startup.begin();
    expect(host.requests).toEqual([]);
    expect(timers.armed).toEqual([WAIT]);
    await timers.advanceTo(WAIT - 1);
    expect(reader.reads).toHaveLength(2);
    await timers.advanceTo(WAIT);
    await startup.settled;
    expect(reader.reads).toEqual(['relay-b-1', 'relay-a-1', 'relay-b-1', 'relay-a-1']);
    expect(host.requests).toEqual([{ from: 'https://10.0.0.9:8443' }]);
    expect(decisions()).toEqual([
      'wait DoubleMarked: start-up restore: double relay-a-1 carries the restore label and relay-b-1 does not; waiting to be driven',
      'restore DoubleMarked: start-up restore: nobody drove the restore within 120s; double relay-a-1 carries the restore label and relay-b-1 does not: restoring from it',
    ]);
  });

  it('serves empty at the deadline when the label went meanwhile', async () => {
    const { host, reader, startup, decisions, timers } = setup();
    reader.set('relay-b-1');
    reader.set('relay-a-1', MARK);
    await startup.begin();
    reader.set('relay-a-1');
    await timers.advanceTo(WAIT);
    await startup.settled;
    expect(host.requests).toEqual([{ empty: true }]);
    expect(decisions()[1]).toBe('serve-empty DoubleNotMarked: start-up restore: nobody drove the restore within 120s; relay-a-1 does not carry relayctl.dev/restore=true: this pod may not restore from relay-a-1');
  });

  it('leaves a relay the orchestrator drove alone, and waits again after a driven restore that failed', async () => {
    const { host, reader, startup, timers } = setup();
    reader.set('relay-b-1');
    reader.set('relay-a-1', MARK);
    await startup.begin();
    await timers.advanceTo(100_000);
    host.driven();
    host.state = 'awaiting-restore'; // ... and it failed: the relay is back to awaiting its restore
    await timers.advanceTo(WAIT);
    expect(host.requests).toEqual([]);
    expect(reader.reads).toHaveLength(2);
    expect(timers.armed).toEqual([WAIT, 100_000 + WAIT]);
    host.driven();
    host.state = 'serving'; // driven again, and this time it committed
    await timers.advanceTo(100_000 + WAIT);
    await startup.settled;
    expect(host.requests).toEqual([]);
    expect(reader.reads).toHaveLength(2);
  });

  it('serves empty when its own restore from the double fails', async () => {
    const { host, reader, startup, lines, timers } = setup();
    reader.set('relay-b-1');
    reader.set('relay-a-1', MARK);
    host.failRestore = true;
    await startup.begin();
    await timers.advanceTo(WAIT);
    await startup.settled;
    expect(host.requests).toEqual([{ from: 'https://10.0.0.9:8443' }, { empty: true }]);
    expect(lines.map((l) => l.msg)).toContain('start-up restore: restore from relay-a-1 failed (restore from https://10.0.0.9:8443 failed: ERR_NOT_SERVING); serving empty');
  });

  it('without a Kubernetes API, or when it cannot be read, waits the full time and then serves empty', async () => {
    for (const reader of [null, Object.assign(new FakeReader(), { failure: 'GET /api/v1/...: HTTP 503' })]) {
      const { host, startup, decisions, timers } = setup({ reader });
      await startup.begin();
      expect(host.requests).toEqual([]);
      await timers.advanceTo(WAIT);
      await startup.settled;
      expect(host.requests).toEqual([{ empty: true }]);
      expect(decisions()[1]).toBe(reader === null
        ? 'serve-empty NoKubernetesApi: start-up restore: nobody drove the restore within 120s; cannot read the double: not in a Kubernetes pod'
        : 'serve-empty ApiUnreadable: start-up restore: nobody drove the restore within 120s; cannot read the double: GET /api/v1/...: HTTP 503');
    }
  });

  it('does nothing once cancelled (the relay stops)', async () => {
    const { host, reader, startup, timers } = setup();
    reader.set('relay-b-1');
    reader.set('relay-a-1', MARK);
    await startup.begin();
    startup.cancel();
    await timers.advanceTo(WAIT);
    await startup.settled;
    expect(host.requests).toEqual([]);
    expect(reader.reads).toHaveLength(2);
  });

  it('a pod name with no double serves empty without asking the API', async () => {
    const { host, reader, startup, decisions } = setup({ podName: 'laptop' });
    await startup.begin();
    expect(reader.reads).toEqual([]);
    expect(host.requests).toEqual([{ empty: true }]);
    expect(decisions()).toEqual(['serve-empty NoDouble: start-up restore: pod name laptop is not <name>-<a|b>-<ordinal>, so it has no double']);
  });
});
