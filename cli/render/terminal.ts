import type { OutputStream } from '../io.ts';
import { truncate } from './format.ts';

/**
 * Drawing in place on a terminal: the only place that knows the escape codes. A block of lines stays at the
 * bottom of the terminal and is replaced as a whole (the cursor goes back up over it, each line is cleared and
 * written again), while permanent lines may scroll above it. Used by the update's live view (tty.ts, through
 * LiveRegion) and by the benchmark's status lines.
 */

const CURSOR_UP = (lines: number): string => `\u001b[${lines}A`;
const CLEAR_LINE = '\u001b[2K';
const CLEAR_BELOW = '\u001b[0J';
const HIDE_CURSOR = '\u001b[?25l';
const SHOW_CURSOR = '\u001b[?25h';

export interface TerminalSize {
  columns: number;
  rows: number;
}

/** What a stream reports; a pseudo-terminal without a size reports 0: then 100 x 24, a safe guess. */
export function terminalSize(stream: OutputStream): TerminalSize {
  return {
    columns: stream.columns !== undefined && stream.columns > 0 ? stream.columns : 100,
    rows: stream.rows !== undefined && stream.rows > 0 ? stream.rows : 24,
  };
}

/**
 * The most lines a block may have: the cursor ends on the row below the block, and a block whose first line
 * scrolled off the top could not be reached again by moving the cursor up.
 */
export function maxBlockRows(size: TerminalSize): number {
  return Math.max(1, size.rows - 1);
}

/** Cuts every line to the width (the last column is left free: some terminals wrap when it is written). */
function fitWidth(lines: readonly string[], size: TerminalSize): string[] {
  const width = Math.max(20, size.columns - 1);
  return lines.map((line) => truncate(line, width));
}

/**
 * Fits a block into the terminal: at most maxBlockRows lines, keeping the first (the title) and the last ones
 * (where the counts are) and saying how many rows in between were hidden. Renderers that know which rows matter
 * least clip those first (tty.ts); this is the rule for everything else.
 */
function fitHeight(lines: readonly string[], size: TerminalSize): string[] {
  const max = maxBlockRows(size);
  if (lines.length <= max) return [...lines];
  if (max < 3) return lines.slice(lines.length - max);
  const tail = max - 2;
  const hidden = lines.length - 1 - tail;
  return [lines[0] as string, hiddenRowsLine(hidden), ...lines.slice(lines.length - tail)];
}

/** The line that stands for rows left out because the terminal is too short. */
export function hiddenRowsLine(hidden: number, what = 'rows'): string {
  return `  … ${hidden} ${what} hidden (the terminal is too short)`;
}

/**
 * A block of lines kept at the bottom of a terminal and replaced in place; permanent lines can be printed above
 * it (the benchmark's interval lines), and they scroll like any output. Knows nothing of timing: LiveRegion
 * (tty.ts) throttles the update's view on top of it.
 */
export class LiveBlock {
  readonly #stream: OutputStream;
  /** Lines of the block on screen now. */
  #height = 0;
  #lines: string[] = [];
  #started = false;
  #closed = false;

  constructor(stream: OutputStream) {
    this.#stream = stream;
  }

  /** Replaces the block, fitted to the terminal's width and height. */
  show(lines: readonly string[]): void {
    if (this.#closed) return;
    this.#lines = [...lines];
    this.#redraw([]);
  }

  /** Writes a permanent line above the block. */
  print(line: string): void {
    if (this.#closed) this.#stream.write(`${line}\n`);
    else this.#redraw([line]);
  }

  /**
   * Removes the block and gives the cursor back. `keep` lines are written in its place as permanent output, in
   * full height (they are not redrawn any more, so the terminal may scroll). Idempotent.
   */
  close(keep: readonly string[] = []): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lines = [];
    this.#redraw(fitWidth(keep, terminalSize(this.#stream)));
    if (this.#started) this.#stream.write(SHOW_CURSOR);
  }

  /**
   * Goes back up over the block and writes `permanent` lines then the block, clearing each line before it is
   * written (no flicker) and what is left below when the new block is shorter.
   */
  #redraw(permanent: readonly string[]): void {
    const size = terminalSize(this.#stream);
    const block = fitWidth(fitHeight(this.#lines, size), size);
    let out = '';
    if (!this.#started && !this.#closed) {
      this.#started = true;
      out += HIDE_CURSOR;
    }
    if (this.#height > 0) out += CURSOR_UP(this.#height);
    for (const line of [...permanent, ...block]) out += `${CLEAR_LINE}${line}\n`;
    if (permanent.length + block.length < this.#height) out += CLEAR_BELOW;
    this.#height = block.length;
    this.#stream.write(out);
  }
}
