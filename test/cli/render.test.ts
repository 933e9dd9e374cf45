import { stripVTControlCharacters as stripAnsi } from 'node:util';
import { describe, expect, test } from 'vitest';
import { deviceLine } from '../../cli/commands/demo.ts';
import { zeroCounters } from '../../loadgen/counters.ts';
import { truncate } from '../../cli/render/format.ts';
import { ProgressModel } from '../../cli/render/model.ts';
import { createStyle } from '../../cli/render/style.ts';
import { LiveBlock } from '../../cli/render/terminal.ts';
import { LiveRegion, TtyRenderer } from '../../cli/render/tty.ts';
import { ManualClock, Reason, type UpdateEvent } from '../../orchestrator/index.ts';
import { MemoryStream, ScreenStream } from './helpers.ts';

const CURSOR_UP = /\u001b\[(\d+)A/g;

describe('LiveRegion (in-place redraw)', () => {
  test('the first frame is drawn at once; the next ones move the cursor back over the previous frame', async () => {
    const clock = new ManualClock();
    const stream = new MemoryStream({ isTTY: true });
    let lines = ['one', 'two', 'three'];
    const region = new LiveRegion(stream, clock, () => lines);
    region.invalidate();
    expect(region.draws).toBe(1);
    expect(stream.text).not.toMatch(CURSOR_UP);
    lines = ['one', 'two'];
    await clock.advance(100);
    region.invalidate();
    region.close();
    const ups = [...stream.text.matchAll(CURSOR_UP)].map((match) => Number(match[1]));
    // Back over the 3 lines drawn first; the shorter frame clears what is left below it.
    expect(ups[0]).toBe(3);
    expect(stream.text).toContain('\u001b[0J');
    expect(stream.text.endsWith('\u001b[?25h')).toBe(true);
  });

  test('throttles: a burst of changes costs one frame, then at most one frame per interval, counted exactly', async () => {
    const clock = new ManualClock();
    const stream = new MemoryStream({ isTTY: true });
    let counter = 0;
    const drawnAt: number[] = [];
    const start = clock.now();
    const region = new LiveRegion(stream, clock, () => (drawnAt.push(clock.now() - start), [`counter ${counter}`]), { minIntervalMs: 100, tickMs: 10_000 });
    region.invalidate();
    expect(region.draws).toBe(1);
    for (let i = 0; i < 50; i++) {
      counter++;
      region.invalidate();
    }
    expect(region.draws).toBe(1);
    await clock.advance(99);
    expect(region.draws).toBe(1);
    await clock.advance(1);
    // The pending change is drawn at the end of the interval, with the latest state.
    expect(region.draws).toBe(2);
    expect(stream.writes.at(-1)).toContain('counter 50');
    // A change every 10 ms for 2 s: one frame per 100 ms, on the interval, 20 more (not 200).
    for (let i = 0; i < 200; i++) {
      counter++;
      region.invalidate();
      await clock.advance(10);
    }
    expect(region.draws).toBe(22);
    expect(drawnAt).toEqual(Array.from({ length: 22 }, (_, index) => index * 100));
    // Nothing changes any more: only the tick redraws, every 10 s.
    await clock.advance(20_000);
    expect(drawnAt.slice(22)).toEqual([12_100, 22_100]);
    region.close();
    expect(region.draws).toBe(25);
    expect(clock.pendingTimers).toBe(0);
  });

  test('redraws on its own while live (spinner, clock), and stops when closed', async () => {
    const clock = new ManualClock();
    const stream = new MemoryStream({ isTTY: true });
    const region = new LiveRegion(stream, clock, () => [String(clock.now())], { tickMs: 250 });
    region.invalidate();
    await clock.advance(1000);
    expect(region.draws).toBe(5);
    region.close();
    const closed = region.draws;
    await clock.advance(1000);
    expect(region.draws).toBe(closed);
    expect(clock.pendingTimers).toBe(0);
  });

  test('cuts lines to the terminal width so a frame never wraps', () => {
    const clock = new ManualClock();
    const stream = new MemoryStream({ isTTY: true, columns: 30 });
    const region = new LiveRegion(stream, clock, () => [`\u001b[32m${'x'.repeat(100)}\u001b[39m`]);
    region.invalidate();
    region.close();
    for (const line of stripAnsi(stream.text).split('\n')) expect(line.length).toBeLessThanOrEqual(29);
    expect(truncate('\u001b[1mabcdef\u001b[22m', 4)).toBe('\u001b[1mabc\u001b[22m…');
  });
});

describe('frames never taller than the terminal', () => {
  test('a frame taller than the terminal is clipped, says how many rows it hid, and is whole once closed', async () => {
    const clock = new ManualClock();
    const stream = new ScreenStream({ rows: 10 });
    let version = 0;
    const frame = (): string[] => ['title', ...Array.from({ length: 28 }, (_, index) => `row ${index} v${version}`), `counts v${version}`];
    const region = new LiveRegion(stream, clock, frame);
    for (version = 0; version < 5; version++) {
      region.invalidate();
      await clock.advance(100);
      // 9 rows: the 10th is where the cursor rests.
      expect(stream.screen.visible()).toEqual(['title', '  … 22 rows hidden (the terminal is too short)', ...Array.from({ length: 6 }, (_, index) => `row ${22 + index} v${version}`), `counts v${version}`]);
    }
    expect(stream.screen.lostCursorMoves).toBe(0);
    version = 9;
    region.close();
    expect([...stream.screen.history, ...stream.screen.visible()]).toEqual(frame());
  });

  test('the update view at 80 x 24 with 16 pods: steps fold, steady pods leave, the counts stay', () => {
    const clock = new ManualClock();
    const stream = new ScreenStream({ columns: 80, rows: 24 });
    const counters = { ...zeroCounters(), requests: 123_456, answered: 123_450, retransmissions: 12, handshakes: 300 };
    const fleet = { connected: 300, size: 300, snapshot: () => counters };
    const style = createStyle(false);
    const view = new TtyRenderer(stream, clock, style, () => [deviceLine(fleet, { ...zeroCounters(), handshakes: 300 }, style)]);
    const at = clock.now();
    const emit = (event: Record<string, unknown>): void => view.observe({ at, updateId: 'u1', ...event } as UpdateEvent);
    emit({ type: 'run-started', command: 'update', name: 'relay', owner: 'o', platform: 'local' });
    for (const step of ['lock', 'preflight', 'mark', 'create']) {
      emit({ type: 'step-started', step, direction: 'forward' });
      emit({ type: 'step-finished', step, direction: 'forward', durationMs: 1200 });
    }
    emit({ type: 'step-started', step: 'handover', direction: 'forward' });
    for (let ordinal = 0; ordinal < 8; ordinal++) {
      emit({ type: 'pod-changed', pod: `relay-a-${ordinal}`, set: 'relay-a', ordinal, phase: 'Running', ready: true, relayState: 'serving', sessions: 1000 });
      emit({ type: 'pod-changed', pod: `relay-b-${ordinal}`, set: 'relay-b', ordinal, phase: 'Running', ready: false, relayState: ordinal === 3 ? 'restoring' : 'awaiting-restore', sessions: 0 });
    }
    view.region.close();
    const last = view.frame({ columns: 80, rows: 24 });
    expect(last.length).toBeLessThanOrEqual(23);
    expect(last[0]).toMatch(/^update relay on local/);
    expect(last).toContain('  ✓ lock preflight mark create');
    expect(last).toContainEqual(expect.stringMatching(/^ {2}\S handover/));
    expect(last).toContain('  · drain verify delete release');
    // The pods something is happening to are kept, the serving old ones make room.
    expect(last).toContainEqual(expect.stringMatching(/relay-b-3 +Running +no +restoring/));
    expect(last).toContain('  … 4 pods hidden (the terminal is too short)');
    expect(last.filter((line) => /relay-b-\d/.test(line))).toHaveLength(8);
    expect(last).toContain('  a: 8 ready  b: 0 of 8 ready  sessions handed over 0/8000');
    // At 80 columns the device line is cut, but errors and new handshakes come first and stay.
    const footer = stream.screen.visible().at(-1) ?? '';
    expect(footer.length).toBeLessThanOrEqual(79);
    expect(footer).toMatch(/^ {2}devices 300\/300 {2}errors 0 {2}new handshakes 0 {2}retransmissions 12 /);
  });
});

describe('LiveBlock (the one in-place writer, also the benchmark\'s)', () => {
  test('keeps its block at the bottom, prints permanent lines above it, and leaves nothing when closed', () => {
    const stream = new ScreenStream({ rows: 20 });
    const block = new LiveBlock(stream);
    block.show(['status 1', 'detail 1']);
    block.print('10s  5000 requests');
    block.show(['status 2']);
    block.print('20s  5000 requests');
    expect(stream.screen.visible()).toEqual(['10s  5000 requests', '20s  5000 requests', 'status 2']);
    block.close();
    expect(stream.screen.visible()).toEqual(['10s  5000 requests', '20s  5000 requests']);
    expect(stream.text.startsWith('\u001b[?25l')).toBe(true);
    expect(stream.text.endsWith('\u001b[?25h')).toBe(true);
  });
});

describe('ProgressModel', () => {
  const base = { at: 0, updateId: 'u1' };
  const pod = (name: string, ready: boolean, sessions: number | null, phase: 'Running' | 'Pending' = 'Running'): UpdateEvent => ({
    ...base,
    type: 'pod-changed',
    pod: name,
    set: name.slice(0, 7),
    ordinal: Number(name.at(-1)),
    phase,
    ready,
    relayState: ready ? 'serving' : 'awaiting-restore',
    sessions,
  });

  test('summarises sets and moved sessions on one line', () => {
    const model = new ProgressModel();
    model.apply({ ...base, type: 'run-started', command: 'update', name: 'relay', owner: 'o', platform: 'local' });
    for (let ordinal = 0; ordinal < 3; ordinal++) model.apply(pod(`relay-a-${ordinal}`, true, 1000 + ordinal));
    expect(model.summaryLine()).toBe('a: 3 ready');
    model.apply({ ...base, type: 'step-started', step: 'handover', direction: 'forward' });
    model.apply(pod('relay-b-0', true, 1000));
    model.apply(pod('relay-b-1', false, 0));
    model.apply(pod('relay-b-2', false, null, 'Pending'));
    model.apply({ ...base, type: 'ordinal-moved', direction: 'forward', ordinal: 0, source: 'relay-a-0', target: 'relay-b-0', sessions: 1000, skipped: 0, bytes: 297_000, durationMs: 30, pauseMs: 10, inferred: false });
    model.apply(pod('relay-a-0', false, 0));
    expect(model.summaryLine()).toBe('a: 2 of 3 ready  b: 1 of 3 ready (1 starting)  sessions handed over 1000/3003');
    model.apply({ ...base, type: 'drain-progress', pod: 'relay-a-0', forwardedDatagrams: 12, quietForMs: 0 });
    expect(model.summaryLine()).toContain('stragglers forwarded 12');
  });

  test('a rollback replaces the remaining forward steps with the rollback steps', () => {
    const model = new ProgressModel();
    model.apply({ ...base, type: 'run-started', command: 'update', name: 'relay', owner: 'o', platform: 'local' });
    model.apply({ ...base, type: 'step-started', step: 'handover', direction: 'forward' });
    model.apply({ ...base, type: 'error', step: 'handover', error: { code: 'ERR_RESTORE_FAILED', message: 'boom' } });
    model.apply({ ...base, type: 'rollback-started', fromStep: 'handover', requestedBy: 'failure', cause: null });
    expect(model.steps.map((step) => `${step.step}:${step.status}`)).toEqual([
      'lock:pending',
      'preflight:pending',
      'mark:pending',
      'create:pending',
      'handover:failed',
      'handback:pending',
      'drain-back:pending',
      'remove:pending',
      'unmark:pending',
      'release:pending',
    ]);
  });

  test('a waiting note goes once what it waited for happened', () => {
    const model = new ProgressModel();
    const apply = (event: object): void => model.apply({ ...base, ...event } as UpdateEvent);
    const handover = (): { waits: string[] } => ({ waits: (model.steps.find((step) => step.step === 'handover')?.waits ?? []).map((wait) => wait.text) });
    apply({ type: 'run-started', command: 'update', name: 'relay', owner: 'o', platform: 'local' });
    apply({ type: 'step-started', step: 'handover', direction: 'forward' });
    apply(pod('relay-b-0', false, null, 'Pending'));
    apply({ type: 'waiting', step: 'handover', ordinal: 0, reason: Reason.PodNotRunning, message: 'relay-b-0 is Pending, not running yet' });
    apply({ type: 'waiting', step: 'handover', ordinal: 1, reason: Reason.PodNotRunning, message: 'relay-b-1 is Pending, not running yet' });
    expect(handover()).toEqual({ waits: ['ordinal 0: relay-b-0 is Pending, not running yet', 'ordinal 1: relay-b-1 is Pending, not running yet'] });
    // relay-b-0 runs: its wait is over (the orchestrator would say so again if it still waited on it); ordinal 1 still waits.
    apply(pod('relay-b-0', false, 0));
    expect(handover()).toEqual({ waits: ['ordinal 1: relay-b-1 is Pending, not running yet'] });
    // A wait whose message does not describe the pod's state ends when its ordinal moved, not on every pod change.
    apply({ type: 'waiting', step: 'handover', ordinal: 0, reason: Reason.ReadinessPending, message: 'ordinal 0: waiting for relay-b-0 ready and relay-a-0 not ready' });
    apply(pod('relay-b-0', true, 100));
    expect(handover().waits).toContain('ordinal 0: waiting for relay-b-0 ready and relay-a-0 not ready');
    apply({ type: 'ordinal-moved', direction: 'forward', ordinal: 0, source: 'relay-a-0', target: 'relay-b-0', sessions: 100, skipped: 0, bytes: 1, durationMs: 1, pauseMs: 1, inferred: false });
    expect(handover()).toEqual({ waits: ['ordinal 1: relay-b-1 is Pending, not running yet'] });
    // Relabelling announced as a wait is done once the labels changed.
    apply({ type: 'waiting', step: 'handover', ordinal: 1, reason: Reason.DoubleNotMarked, message: 'ordinal 1: relay-a-1 must carry restore=true and relay-b-1 must not' });
    apply({ type: 'labels-changed', pod: 'relay-a-1', labels: { 'relayctl.dev/restore': 'true' }, reason: Reason.DoubleNotMarked });
    expect(handover()).toEqual({ waits: [] });
  });
});
