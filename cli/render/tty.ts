import type { Clock, UpdateEvent } from '../../orchestrator/index.ts';
import { schedule, type OutputStream } from '../io.ts';
import { seconds, table, truncate } from './format.ts';
import { ProgressModel, type PodRow, type StepRow } from './model.ts';
import type { ProgressRenderer } from './progress.ts';
import type { Style } from './style.ts';

const CURSOR_UP = (lines: number): string => `\u001b[${lines}A`;
const CLEAR_LINE = '\u001b[2K';
const CLEAR_BELOW = '\u001b[0J';
const HIDE_CURSOR = '\u001b[?25l';
const SHOW_CURSOR = '\u001b[?25h';

export interface LiveRegionOptions {
  /** At most one redraw per this many ms (default 100: ~10 redraws/s). */
  minIntervalMs?: number;
  /** Redraw at least this often while live, for the spinner and the clock (default 250). */
  tickMs?: number;
}

/**
 * A block of lines at the bottom of a terminal, redrawn in place: the cursor goes back up over the previous frame
 * and each line is cleared and rewritten. Redraws are throttled (Argo Rollouts' get command does the same) so a
 * burst of events costs one frame, and lines are cut to the terminal width because a wrapped line would break
 * the cursor arithmetic.
 */
export class LiveRegion {
  readonly #stream: OutputStream;
  readonly #clock: Clock;
  readonly #frame: () => string[];
  readonly #minIntervalMs: number;
  readonly #tickMs: number;
  #height = 0;
  #lastDrawAt = Number.NEGATIVE_INFINITY;
  #cancelTimer: (() => void) | null = null;
  #dueAt = Number.POSITIVE_INFINITY;
  #closed = false;
  /** Frames written, for tests and for the curious. */
  draws = 0;

  constructor(stream: OutputStream, clock: Clock, frame: () => string[], options: LiveRegionOptions = {}) {
    this.#stream = stream;
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

  /** Draws the last frame, stops the timers and leaves the frame on screen. */
  close(): void {
    if (this.#closed) return;
    this.#draw();
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#stream.write(SHOW_CURSOR);
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
    // A pseudo-terminal without a size reports 0 columns: treat it as unknown.
    const columns = this.#stream.columns !== undefined && this.#stream.columns > 0 ? this.#stream.columns : 100;
    const width = Math.max(20, columns - 1);
    const lines = this.#frame().map((line) => truncate(line, width));
    let out = this.draws === 0 ? HIDE_CURSOR : '';
    if (this.#height > 0) out += CURSOR_UP(this.#height);
    for (const line of lines) out += `${CLEAR_LINE}${line}\n`;
    if (lines.length < this.#height) out += CLEAR_BELOW;
    this.#stream.write(out);
    this.#height = lines.length;
    this.#lastDrawAt = this.#clock.now();
    this.draws++;
    if (!this.#closed) this.#arm(this.#tickMs);
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
    this.region = new LiveRegion(stream, clock, () => this.frame(), options);
  }

  readonly observe = (event: UpdateEvent): void => {
    this.model.apply(event);
    this.region.invalidate();
  };

  finish(): void {
    this.region.close();
  }

  frame(): string[] {
    const { model } = this;
    const style = this.#style;
    const now = this.#clock.now();
    const elapsedMs = model.startedAt === null ? 0 : (model.finished ? (model.lastAt ?? now) : now) - model.startedAt;
    const title = `${model.command ?? 'relayctl'} ${model.name ?? ''}`.trim();
    const lines = [`${style.bold(title)}${model.platform === null ? '' : ` on ${model.platform}`}  ${style.dim(seconds(elapsedMs))}`];
    for (const step of model.steps) lines.push(this.#stepLine(step, now));
    const pods = model.podRows();
    if (pods.length > 0) {
      lines.push('');
      const rows = [['POD', 'PHASE', 'READY', 'RELAY', 'SESSIONS', 'HANDED OVER', 'FORWARDED'].map((cell) => style.dim(cell))];
      for (const pod of pods) rows.push(this.#podCells(pod));
      lines.push(...table(rows, { right: [4, 5, 6] }).map((line) => `  ${line}`));
    }
    const summary = model.summaryLine();
    if (summary !== '') lines.push('', `  ${summary}`);
    for (const note of model.notes.slice(-3)) {
      lines.push(`  ${note.level === 'error' ? style.bad('error') : style.warn('warning')}: ${note.text}${note.repeats > 1 ? ` (${note.repeats} times)` : ''}`);
    }
    const footer = this.#footer?.() ?? [];
    if (footer.length > 0) lines.push('', ...footer.map((line) => `  ${line}`));
    return lines;
  }

  #stepLine(step: StepRow, now: number): string {
    const style = this.#style;
    const name = step.step.padEnd(10);
    switch (step.status) {
      case 'done':
        return `  ${style.ok('✓')} ${name} ${style.dim(step.note ?? (step.durationMs === null ? '' : seconds(step.durationMs)))}`;
      case 'failed':
        return `  ${style.bad('✗')} ${name} ${style.bad(step.note ?? 'failed')}`;
      case 'running': {
        const spinner = this.model.finished ? '…' : (SPINNER[Math.floor(now / 100) % SPINNER.length] ?? '…');
        return `  ${style.warn(spinner)} ${name} ${step.note ?? ''}`.trimEnd();
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

