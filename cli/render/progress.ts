import type { UpdateObserver } from '../../orchestrator/index.ts';
import { colorEnabled, isInteractive, type Io } from '../io.ts';
import type { GlobalOptions } from '../options.ts';
import { JsonRenderer } from './json.ts';
import { PlainRenderer } from './plain.ts';
import { createStyle } from './style.ts';
import { TtyRenderer } from './tty.ts';

export interface ProgressRenderer {
  readonly observe: UpdateObserver;
  /** Stops timers and leaves the final state on screen. Idempotent. */
  finish(): void;
}

export interface ProgressOptions {
  /** Extra lines under the live view (the demo's device figures); called on every redraw. */
  footer?: () => string[];
  /** Where elapsed seconds count from in plain output (the demo's start); default: the first event. */
  origin?: number;
}

/**
 * Picks the renderer: -o json -> JSON lines on stdout; a terminal on stderr -> the live view redrawn in place;
 * anything else -> a plain line per change on stderr.
 */
export function createProgressRenderer(io: Io, globals: GlobalOptions, options: ProgressOptions = {}): ProgressRenderer & { kind: 'json' | 'tty' | 'plain' } {
  if (globals.output === 'json') return Object.assign(new JsonRenderer(io.stdout), { kind: 'json' as const });
  const style = createStyle(colorEnabled(io, io.stderr, globals.color));
  if (isInteractive(io, io.stderr)) {
    return Object.assign(new TtyRenderer(io.stderr, io.clock, style, options.footer), { kind: 'tty' as const });
  }
  return Object.assign(new PlainRenderer(io.stderr, style, options.origin ?? null), { kind: 'plain' as const });
}
