import { styleText } from 'node:util';

/**
 * Colours, or none: every function is the identity when colour is off, so callers never check. Whether colour is
 * on is decided once per stream (io.ts colorEnabled: a terminal, NO_COLOR, --no-color, TERM=dumb), so styleText
 * is told not to look at process.stdout itself.
 */
export interface Style {
  readonly enabled: boolean;
  ok(text: string): string;
  bad(text: string): string;
  warn(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

type Format = Parameters<typeof styleText>[0];

const paint = (format: Format) => (text: string): string => styleText(format, text, { validateStream: false });
const plain = (text: string): string => text;

const COLOURED: Style = { enabled: true, ok: paint('green'), bad: paint('red'), warn: paint('yellow'), dim: paint('dim'), bold: paint('bold') };
const PLAIN: Style = { enabled: false, ok: plain, bad: plain, warn: plain, dim: plain, bold: plain };

export function createStyle(enabled: boolean): Style {
  return enabled ? COLOURED : PLAIN;
}
