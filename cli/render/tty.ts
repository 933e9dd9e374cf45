import type { Clock, UpdateEvent } from '../../orchestrator/index.ts';
import { schedule, type OutputStream } from '../io.ts';
import { duration, table } from './format.ts';
import { ProgressModel, type PodRow, type StepRow } from './model.ts';
import type { ProgressRenderer } from './progress.ts';
import type { Style } from './style.ts';
import { LiveBlock, hiddenRowsLine, maxBlockRows, terminalSize, type TerminalSize } from './terminal.ts';

export interface LiveRegionOptions {
  /** At most one redraw per this many ms (default 100: ~10 redraws/s). */
  minIntervalMs?: number;
  /** Redraw at least this often while live, for the spinner and the clock (default 250). */
  tickMs?: number;
}

/** Builds a frame for a terminal of this size; the final frame is asked for with rows: Infinity. */
export type FrameBuilder = (size: TerminalSize) => string[];

/**
 * A live frame at the bottom of a terminal (a LiveBlock), redrawn when something changed and on a tick (spinner,
 * clock). Redraws are throttled (Argo Rollouts' get command does the same), so a burst of events costs one frame.
 * On close the last frame stays on screen in full, even when the live one had to be clipped to the terminal.
 */
export class LiveRegion {
  readonly #stream: OutputStream;
  readonly #block: LiveBlock;
  readonly #clock: Clock;
  readonly #frame: FrameBuilder;
  readonly #minIntervalMs: number;
  readonly #tickMs: number;
  #lastDrawAt = Number.NEGATIVE_INFINITY;
  #cancelTimer: (() => void) | null = null;
  #dueAt = Number.POSITIVE_INFINITY;
  #closed = false;
  /** Frames written (the last one, on close, included): what the throttling tests count. */
  draws = 0;

  constructor(stream: OutputStream, clock: Clock, frame: FrameBuilder, options: LiveRegionOptions = {}) {
    this.#stream = stream;
    this.#block = new LiveBlock(stream);
    this.#clock = clock;
    this.#frame = frame;
    this.#minIntervalMs = options.minIntervalMs ?? 100;
    this.#tickMs = options.tickMs ?? 250;
  }

  /** Something changed: draw now, or at the end of the current throttle interval. */
  invalidate(): void {
    if (this.#closed) return;
    const wait = this.#lastDrawAt + this.#minIntervalMs - this.#clock.now();
    if (wait <= 0) {
      this.#draw();
      return;
    }
    // A pending tick may be further away than the throttle interval: bring it forward.
    if (this.#dueAt > this.#clock.now() + wait) this.#arm(wait);
  }

  /** Stops the timers and leaves the last frame on screen, whole. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#block.close(this.#frame({ ...terminalSize(this.#stream), rows: Number.POSITIVE_INFINITY }));
    this.draws++;
  }

  #arm(delayMs: number): void {
    this.#cancelTimer?.();
    this.#dueAt = this.#clock.now() + delayMs;
    this.#cancelTimer = schedule(this.#clock, delayMs, () => {
      this.#cancelTimer = null;
      this.#dueAt = Number.POSITIVE_INFINITY;
      this.#draw();
    });
  }

  #draw(): void {
    this.#block.show(this.#frame(terminalSize(this.#stream)));
    this.#lastDrawAt = this.#clock.now();
    this.draws++;
    this.#arm(this.#tickMs);
  }
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** The live progress view: steps with a check or a spinner, a row per pod, the sessions moved so far. */
export class TtyRenderer implements ProgressRenderer {
  readonly model = new ProgressModel();
  readonly region: LiveRegion;
  readonly #clock: Clock;
  readonly #style: Style;
  readonly #footer: (() => string[]) | undefined;

  constructor(stream: OutputStream, clock: Clock, style: Style, footer?: () => string[], options: LiveRegionOptions = {}) {
    this.#clock = clock;
    this.#style = style;
    this.#footer = footer;
    this.region = new LiveRegion(stream, clock, (size) => this.frame(size), options);
  }

  readonly observe = (event: UpdateEvent): void => {
    this.model.apply(event);
    this.region.invalidate();
  };

  finish(): void {
    this.region.close();
  }

  /**
   * The frame, at most as tall as the terminal allows. What gives way first when it is too short: the finished
   * and the pending steps fold into one line each, then pods in a steady state (running, ready, serving or gone)
   * leave the table, then pods at all, each fold saying how much it hid. The title, the running step, the
   * summary, the latest notes and the footer (the counts a user watches) stay.
   */
  frame(size: TerminalSize): string[] {
    const { model } = this;
    const style = this.#style;
    const now = this.#clock.now();
    const elapsedMs = model.startedAt === null ? 0 : (model.finished ? (model.lastAt ?? now) : now) - model.startedAt;
    const title = `${model.command ?? 'relayctl'} ${model.name ?? ''}`.trim();
    const head = [`${style.bold(title)}${model.platform === null ? '' : ` on ${model.platform}`}  ${style.dim(duration(elapsedMs))}`];
    const tail: string[] = [];
    const summary = model.summaryLine();
    if (summary !== '') tail.push('', `  ${summary}`);
    for (const note of model.notes.slice(-3)) {
      tail.push(`  ${note.level === 'error' ? style.bad('error') : style.warn('warning')}: ${note.text}${note.repeats > 1 ? ` (${note.repeats} times)` : ''}`);
    }
    const footer = this.#footer?.() ?? [];
    if (footer.length > 0) tail.push('', ...footer.map((line) => `  ${line}`));

    const budget = maxBlockRows(size);
    const pods = model.podRows();
    let steps = model.steps.map((step) => this.#stepLine(step, now));
    const podLines = (shown: readonly PodRow[]): string[] => {
      if (pods.length === 0) return [];
      if (shown.length === 0) return ['', hiddenRowsLine(pods.length, 'pods')];
      const rows = [['POD', 'PHASE', 'READY', 'RELAY', 'SESSIONS', 'HANDED OVER', 'FORWARDED'].map((cell) => style.dim(cell))];
      for (const pod of shown) rows.push(this.#podCells(pod));
      const lines = ['', ...table(rows, { right: [4, 5, 6] }).map((line) => `  ${line}`)];
      if (shown.length < pods.length) lines.push(hiddenRowsLine(pods.length - shown.length, 'pods'));
      return lines;
    };
    const allPods = podLines(pods);
    const fits = (): boolean => head.length + steps.length + allPods.length + tail.length <= budget;
    if (fits()) return [...head, ...steps, ...allPods, ...tail];
    steps = this.#foldedSteps(now);
    if (fits()) return [...head, ...steps, ...allPods, ...tail];
    // Room for the blank line, the table header, the rows and the line saying how many were hidden.
    const room = budget - head.length - steps.length - tail.length - 3;
    const moving = pods.filter((pod) => !steady(pod));
    const kept = new Set(room <= 0 ? [] : [...moving, ...pods.filter(steady)].slice(0, room));
    return [...head, ...steps, ...podLines(pods.filter((pod) => kept.has(pod))), ...tail];
  }

  /** Finished steps on one line, pending ones on another; running and failed ones keep their own. */
  #foldedSteps(now: number): string[] {
    const style = this.#style;
    const lines: string[] = [];
    const done = this.model.steps.filter((step) => step.status === 'done');
    const pending = this.model.steps.filter((step) => step.status === 'pending');
    if (done.length > 0) lines.push(`  ${style.ok('✓')} ${style.dim(done.map((step) => step.step).join(' '))}`);
    for (const step of this.model.steps) if (step.status === 'running' || step.status === 'failed') lines.push(this.#stepLine(step, now));
    if (pending.length > 0) lines.push(`  ${style.dim('·')} ${style.dim(pending.map((step) => step.step).join(' '))}`);
    return lines;
  }

  #stepLine(step: StepRow, now: number): string {
    const style = this.#style;
    const name = step.step.padEnd(10);
    switch (step.status) {
      case 'done':
        return `  ${style.ok('✓')} ${name} ${style.dim(step.note ?? (step.durationMs === null ? '' : duration(step.durationMs)))}`;
      case 'failed':
        return `  ${style.bad('✗')} ${name} ${style.bad(step.note ?? 'failed')}`;
      case 'running': {
        const spinner = this.model.finished ? '…' : (SPINNER[Math.floor(now / 100) % SPINNER.length] ?? '…');
        const wait = step.waits.at(-1);
        const more = step.waits.length > 1 ? style.dim(` (+${step.waits.length - 1} more)`) : '';
        return `  ${style.warn(spinner)} ${name} ${wait === undefined ? '' : `${wait.text}${more}`}`.trimEnd();
      }
      default:
        return `  ${style.dim('·')} ${style.dim(step.step)}`;
    }
  }

  #podCells(pod: PodRow): string[] {
    const style = this.#style;
    const moved = pod.lastMove === 'out' ? `→ ${pod.handedOver}` : pod.lastMove === 'in' ? `← ${pod.received}` : '';
    return [
      pod.name,
      pod.phase === 'Running' ? pod.phase : pod.phase === 'Gone' ? style.dim('gone') : style.warn(pod.phase),
      pod.phase === 'Gone' ? '' : pod.ready ? style.ok('yes') : style.warn('no'),
      pod.relayState ?? '',
      pod.sessions === null ? '' : String(pod.sessions),
      moved,
      pod.forwarded === null ? '' : String(pod.forwarded),
    ];
  }
}

/** A pod nothing is happening to: running, ready and serving, or gone. */
function steady(pod: PodRow): boolean {
  return pod.phase === 'Gone' || (pod.phase === 'Running' && pod.ready && pod.relayState === 'serving');
}
