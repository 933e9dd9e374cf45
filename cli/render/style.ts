/** Colours, or none: every function is the identity when colour is off, so callers never check. */
export interface Style {
  readonly enabled: boolean;
  ok(text: string): string;
  bad(text: string): string;
  warn(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

const wrap = (open: number, close: number) => (text: string): string => `\u001b[${open}m${text}\u001b[${close}m`;
const plain = (text: string): string => text;

export function createStyle(enabled: boolean): Style {
  if (!enabled) return { enabled, ok: plain, bad: plain, warn: plain, dim: plain, bold: plain };
  return { enabled, ok: wrap(32, 39), bad: wrap(31, 39), warn: wrap(33, 39), dim: wrap(2, 22), bold: wrap(1, 22) };
}
