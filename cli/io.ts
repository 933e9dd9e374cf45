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
  /** Terminal height, when known: a live view never draws more rows than this. */
  readonly rows?: number;
}

/** Called on SIGINT/SIGTERM/SIGHUP; `count` is 1 for the first signal, 2 for the second (after which the process exits). */
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
      let firstAt = 0;
      const listener = (signal: NodeJS.Signals): void => {
        const now = Date.now();
        // A hang-up delivers several signals at once (from the terminal and from the session leader);
        // only a second request that comes later, from a person, means "quit now". A hang-up never does.
        if (signal === 'SIGHUP') {
          // Nobody can read the terminal any more, and writing to it fails: go quiet, keep cleaning up.
          const quiet = ((_chunk: unknown, ...rest: unknown[]) => {
            const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
            callback?.();
            return true;
          }) as typeof process.stderr.write;
          process.stdout.write = quiet;
          process.stderr.write = quiet;
        }
        if (count > 0 && (signal === 'SIGHUP' || now - firstAt < 500)) return;
        if (count === 0) firstAt = now;
        count++;
        handler(count);
        // A second Ctrl-C means "now": the command had its chance to stop cleanly.
        if (count >= 2) process.exit(130);
      };
      // SIGHUP: the terminal went away; the command still cleans up (a demo still tears its fleet down),
      // and writes to the dead terminal must not crash it on the way.
      const ignore = (): void => undefined;
      process.on('SIGINT', listener);
      process.on('SIGTERM', listener);
      process.on('SIGHUP', listener);
      process.stdout.on('error', ignore);
      process.stderr.on('error', ignore);
      return () => {
        process.off('SIGINT', listener);
        process.off('SIGTERM', listener);
        process.off('SIGHUP', listener);
        process.stdout.off('error', ignore);
        process.stderr.off('error', ignore);
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
