import { describe, expect, test } from 'vitest';
import { ManualClock, type UpdateEvent } from '../../orchestrator/index.ts';
import { stripAnsi, truncate } from '../../cli/render/format.ts';
import { ProgressModel } from '../../cli/render/model.ts';
import { LiveRegion } from '../../cli/render/tty.ts';
import { MemoryStream } from './helpers.ts';

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

  test('throttles: a burst of changes costs one frame, and never more than one per 100 ms', async () => {
    const clock = new ManualClock();
    const stream = new MemoryStream({ isTTY: true });
    let counter = 0;
    const region = new LiveRegion(stream, clock, () => [`counter ${counter}`], { minIntervalMs: 100, tickMs: 10_000 });
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
    // One change every 10 ms for 2 s: about 20 frames, not 200.
    for (let i = 0; i < 200; i++) {
      counter++;
      region.invalidate();
      await clock.advance(10);
    }
    expect(region.draws).toBeGreaterThanOrEqual(19);
    expect(region.draws).toBeLessThanOrEqual(23);
    region.close();
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
});
