import type { OutputStream } from '../io.ts';
import { truncate } from '../render/format.ts';

const CURSOR_UP = (lines: number): string => `\u001b[${lines}A`;
const CLEAR_LINE = '\u001b[2K';
const CLEAR_BELOW = '\u001b[0J';
const HIDE_CURSOR = '\u001b[?25l';
const SHOW_CURSOR = '\u001b[?25h';

/**
 * The benchmark's live view on a terminal: a few status lines kept at the bottom and redrawn in place, with
 * the interval lines scrolling above them as permanent output (so the terminal keeps the history, like the
 * plain output). Lines are cut to the terminal width: a wrapped line would break the cursor arithmetic.
 */
export class LiveBlock {
  readonly #stream: OutputStream;
  #lines: string[] = [];
  #height = 0;
  #closed = false;

  constructor(stream: OutputStream) {
    this.#stream = stream;
    stream.write(HIDE_CURSOR);
  }

  /** Replaces the status lines. */
  show(lines: string[]): void {
    if (this.#closed) return;
    this.#lines = lines;
    this.#stream.write(this.#erase() + this.#render());
  }

  /** Writes a permanent line above the status lines. */
  print(line: string): void {
    if (this.#closed) {
      this.#stream.write(`${line}\n`);
      return;
    }
    this.#stream.write(`${this.#erase()}${CLEAR_LINE}${line}\n${this.#render()}`);
  }

  /** Removes the status lines and gives the cursor back. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stream.write(`${this.#erase()}${SHOW_CURSOR}`);
  }

  #erase(): string {
    const out = this.#height > 0 ? `${CURSOR_UP(this.#height)}${CLEAR_BELOW}` : '';
    this.#height = 0;
    return out;
  }

  #render(): string {
    const columns = this.#stream.columns !== undefined && this.#stream.columns > 0 ? this.#stream.columns : 100;
    const width = Math.max(20, columns - 1);
    this.#height = this.#lines.length;
    return this.#lines.map((line) => `${CLEAR_LINE}${truncate(line, width)}\n`).join('');
  }
}
