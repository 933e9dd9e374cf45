/** Small formatters shared by the renderers; plain text only (colour is applied by style.ts). */

export function seconds(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 1000)} s`;
}

/** Whole seconds since the start, as the plain renderer prefixes its lines: "12 s". */
export function elapsed(ms: number): string {
  return `${Math.max(0, Math.floor(ms / 1000))} s`;
}

export function bytes(count: number): string {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} kB`;
  return `${(count / 1024 / 1024).toFixed(1)} MB`;
}

export function millis(ms: number | null): string {
  return ms === null ? '?' : `${Math.round(ms)} ms`;
}

export function percent(part: number, whole: number): string {
  if (whole === 0) return '0%';
  const value = (100 * part) / whole;
  return `${value < 10 && value > 0 ? value.toFixed(2) : value.toFixed(1)}%`;
}

/** Visible width of a string that may hold ANSI colour sequences. */
export function visibleLength(text: string): number {
  return text.replace(ANSI, '').length;
}

// CSI sequences (colours, cursor movement).
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** Cuts a line to `width` visible characters, keeping colour sequences intact, so a redraw never wraps. */
export function truncate(text: string, width: number): string {
  if (visibleLength(text) <= width) return text;
  let out = '';
  let shown = 0;
  for (let index = 0; index < text.length; ) {
    if (text[index] === '\u001b') {
      const match = /^\u001b\[[0-9;?]*[A-Za-z]/.exec(text.slice(index));
      if (match !== null) {
        out += match[0];
        index += match[0].length;
        continue;
      }
    }
    if (shown < width - 1) {
      out += text[index];
      shown++;
    }
    index++;
  }
  return `${out}…`;
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
