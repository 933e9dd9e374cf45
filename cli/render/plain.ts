import type { UpdateEvent } from '../../orchestrator/index.ts';
import type { OutputStream } from '../io.ts';
import { ELAPSED_WIDTH, bytes, duration, elapsed } from './format.ts';
import { ProgressModel } from './model.ts';
import type { ProgressRenderer } from './progress.ts';
import type { Style } from './style.ts';

/**
 * Progress for logs and pipes: one line per change, prefixed with the seconds since the start, e.g.
 * `   12s  a: 3 ready  b: 2 of 3 ready  sessions handed over 2816/4000`. Steps, waits, retries, warnings and errors
 * get their own lines; the summary line is printed again only when its text changed.
 */
export class PlainRenderer implements ProgressRenderer {
  readonly model = new ProgressModel();
  readonly #stream: OutputStream;
  readonly #style: Style;
  #lastSummary = '';
  /** Elapsed times count from here; null: from the first event. */
  readonly #origin: number | null;

  constructor(stream: OutputStream, style: Style, origin: number | null = null) {
    this.#stream = stream;
    this.#style = style;
    this.#origin = origin;
  }

  readonly observe = (event: UpdateEvent): void => {
    this.model.apply(event);
    const line = this.#describe(event);
    if (line !== null) this.#line(line);
    if (event.type === 'run-finished') return;
    const summary = this.model.summaryLine({ stragglers: false });
    if (summary !== '' && summary !== this.#lastSummary) {
      this.#lastSummary = summary;
      this.#line(summary);
    }
  };

  finish(): void {}

  #line(text: string): void {
    const start = this.#origin ?? this.model.startedAt ?? 0;
    this.#stream.write(`${elapsed((this.model.lastAt ?? start) - start).padStart(ELAPSED_WIDTH)}  ${text}\n`);
  }

  #describe(event: UpdateEvent): string | null {
    const style = this.#style;
    switch (event.type) {
      case 'run-started':
        return `${event.command} ${event.name} on ${event.platform} as ${event.owner}`;
      case 'run-resumed':
        return `resuming ${event.direction === 'forward' ? 'the update' : 'the rollback'} at step ${event.step} (left by ${event.previousOwner})`;
      case 'step-started':
        return `${event.step}: started`;
      case 'step-finished': {
        const stragglers = (event.step === 'drain' || event.step === 'drain-back') && this.model.stragglers() > 0 ? `; ${this.model.stragglers()} stragglers forwarded` : '';
        return `${event.step}: ${style.ok('done')} in ${duration(event.durationMs)}${stragglers}`;
      }
      case 'waiting':
        return `${event.step}: waiting${event.ordinal === null ? '' : ` (ordinal ${event.ordinal})`}: ${event.message}`;
      case 'retry':
        return `${event.step}: ${style.warn('retry')} ${event.attempt} of ${event.operation} in ${duration(event.delayMs)}: ${event.error.message}`;
      case 'warning':
        return `${event.step}: ${style.warn('warning')}: ${event.message}`;
      case 'error':
        return `${event.step}: ${style.bad('error')}: ${event.error.message} (${event.error.code})`;
      case 'rollback-started':
        return `${style.warn('rolling back')} from step ${event.fromStep} (${event.requestedBy}${event.cause === null ? '' : `: ${event.cause.message}`})`;
      case 'ordinal-moved': {
        const figures = [
          event.bytes === null ? null : bytes(event.bytes),
          event.durationMs === null ? null : `in ${duration(event.durationMs)}`,
          event.pauseMs === null ? null : `devices paused ${duration(event.pauseMs)}`,
          event.skipped ? `${event.skipped} skipped` : null,
          event.inferred ? 'figures read back from the relays' : null,
        ].filter((part) => part !== null);
        return `ordinal ${event.ordinal}: ${event.sessions ?? '?'} sessions ${event.source} -> ${event.target}${figures.length > 0 ? ` (${figures.join(', ')})` : ''}`;
      }
      case 'labels-changed':
        return `${event.pod}: labels ${Object.entries(event.labels).map(([key, value]) => (value === null ? `-${key}` : `${key}=${value}`)).join(' ')}`;
      default:
        return null;
    }
  }
}
