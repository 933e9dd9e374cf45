import type { UpdateEvent } from '../../orchestrator/index.ts';
import type { OutputStream } from '../io.ts';
import type { ProgressRenderer } from './progress.ts';

/**
 * `-o json`: one event per line on stdout, as the orchestrator emitted it plus `time` (ISO 8601 of `at`) for
 * humans reading logs. The stream ends with the run-finished event, which carries the result.
 */
export class JsonRenderer implements ProgressRenderer {
  readonly #stream: OutputStream;

  constructor(stream: OutputStream) {
    this.#stream = stream;
  }

  readonly observe = (event: UpdateEvent): void => {
    this.#stream.write(`${jsonLine({ ...event, time: new Date(event.at).toISOString() })}\n`);
  };

  finish(): void {}
}

/** JSON on one line; Buffers as base64 rather than arrays of numbers. */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value, jsonReplacer);
}

export function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
    return Buffer.from((value as { data: number[] }).data).toString('base64');
  }
  return value;
}
