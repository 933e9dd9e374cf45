import { stripVTControlCharacters } from 'node:util';
import { formatDuration, formatMeasured } from '../../lib/duration.ts';

/** Small formatters shared by the renderers; plain text only (colour is applied by style.ts). */

/** A measured duration, Go-style (14ms, 1.7s, 2m5s); '?' when unknown. */
export function duration(ms: number | null): string {
  return ms === null ? '?' : formatMeasured(ms);
}

/** Whole seconds since the start, as plain progress lines are prefixed: "0s", "12s", "1m5s". */
export function elapsed(ms: number): string {
  return formatDuration(Math.max(0, Math.floor(ms / 1000)) * 1000);
}

/** Width of the elapsed-time column of plain progress lines (fits "59m59s"). */
export const ELAPSED_WIDTH = 6;

export function bytes(count: number): string {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} kB`;
  return `${(count / 1024 / 1024).toFixed(1)} MB`;
}

export function percent(part: number, whole: number): string {
  if (whole === 0) return '0%';
  const value = (100 * part) / whole;
  return `${value < 10 && value > 0 ? value.toFixed(2) : value.toFixed(1)}%`;
}

/** Visible width of a string that may hold terminal control sequences (colours). */
export function visibleLength(text: string): number {
  return stripVTControlCharacters(text).length;
}

/**
 * Cuts a line to `width` visible characters, ending it with '…', and keeps its control sequences (so a colour
 * that was opened is still closed). A redraw must never wrap: a wrapped line breaks the cursor arithmetic.
 */
export function truncate(text: string, width: number): string {
  if (visibleLength(text) <= width) return text;
  let out = '';
  let shown = 0;
  for (let index = 0; index < text.length; ) {
    const control = controlSequenceAt(text, index);
    if (control > 0) {
      out += text.slice(index, index + control);
      index += control;
      continue;
    }
    if (shown < width - 1) {
      out += text[index];
      shown++;
    }
    index++;
  }
  return `${out}…`;
}

/** Length of the control sequence starting at `index` (0 if none), as Node's stripVTControlCharacters sees it. */
function controlSequenceAt(text: string, index: number): number {
  if (text.charCodeAt(index) !== 0x1b && text.charCodeAt(index) !== 0x9b) return 0;
  // The shortest prefix that stripping removes entirely; SGR and cursor sequences are well under 32 characters.
  for (let end = index + 2; end <= Math.min(text.length, index + 32); end++) {
    if (stripVTControlCharacters(text.slice(index, end)) === '') {
      // Take the longest prefix that still strips to nothing, so "\e[3" is not mistaken for "\e[39m".
      while (end < text.length && stripVTControlCharacters(text.slice(index, end + 1)) === '') end++;
      return end - index;
    }
  }
  return 0;
}

/** Aligns columns: each row is a list of cells, widths from the widest visible cell. */
export function table(rows: readonly (readonly string[])[], options: { gap?: number; right?: readonly number[] } = {}): string[] {
  const gap = ' '.repeat(options.gap ?? 2);
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, visibleLength(cell))));
  return rows.map((row) =>
    row
      .map((cell, index) => {
        const pad = ' '.repeat((widths[index] ?? 0) - visibleLength(cell));
        if (options.right?.includes(index)) return pad + cell;
        return index === row.length - 1 ? cell : cell + pad;
      })
      .join(gap)
      .trimEnd(),
  );
}
