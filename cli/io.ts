import type { Clock } from '../orchestrator/index.ts';
import { systemClock } from '../orchestrator/index.ts';

/**
 * Everything the CLI touches of its process, passed in so commands and renderers run in tests without a terminal
 * (Argo Rollouts' status command takes its streams the same way).
 */

export interface OutputStream {
  write(chunk: string): unknown;
  /** True when a terminal is attached. */
  readonly isTTY?: boolean;
  /** Terminal width, when known. */
  readonly columns?: number;
}

/** Called on SIGINT/SIGTERM; `count` is 1 for the first signal, 2 for the second (after which the process exits). */
export type InterruptHandler = (count: number) => void;

export interface Io {
  /** Results: what a script captures. */
  readonly stdout: OutputStream;
  /** Progress, warnings, errors. */
  readonly stderr: OutputStream;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Used for the orchestrator's waits and deadlines, elapsed times and redraw throttling. */
  readonly clock: Clock;
  readonly cwd: string;
  /** Subscribes to Ctrl-C; returns the unsubscribe. */
  onInterrupt(handler: InterruptHandler): () => void;
}

export function processIo(): Io {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    clock: systemClock,
    cwd: process.cwd(),
    onInterrupt(handler) {
      let count = 0;
      const listener = (): void => {
        count++;
        handler(count);
        // A second Ctrl-C means "now": the command had its chance to stop cleanly.
        if (count >= 2) process.exit(130);
      };
      process.on('SIGINT', listener);
      process.on('SIGTERM', listener);
      return () => {
        process.off('SIGINT', listener);
        process.off('SIGTERM', listener);
      };
    },
  };
}

/**
 * Colour only on a terminal, and never when NO_COLOR is set to anything non-empty (https://no-color.org) or
 * --no-color was given. TERM=dumb terminals get neither colour nor cursor movement.
 */
export function colorEnabled(io: Io, stream: OutputStream, colorFlag: boolean): boolean {
  if (!colorFlag) return false;
  const noColor = io.env['NO_COLOR'];
  if (noColor !== undefined && noColor !== '') return false;
  return isInteractive(io, stream);
}

/** A terminal that understands cursor movement: where the live view is redrawn in place. */
export function isInteractive(io: Io, stream: OutputStream): boolean {
  return stream.isTTY === true && io.env['TERM'] !== 'dumb';
}

/** A timer on the io clock: cancellable, and it never fires after cancel. */
export function schedule(clock: Clock, ms: number, callback: () => void): () => void {
  const controller = new AbortController();
  clock.sleep(ms, controller.signal).then(
    () => {
      if (!controller.signal.aborted) callback();
    },
    () => undefined,
  );
  return () => controller.abort();
}
