import type { Platform, RunOptions, RunResult, UpdateObserver } from '../../orchestrator/index.ts';
import { exitCodeForResult, type ExitCode } from '../exit-codes.ts';
import { colorEnabled } from '../io.ts';
import { createProgressRenderer, type ProgressOptions } from '../render/progress.ts';
import { describeResult } from '../render/result.ts';
import { createStyle } from '../render/style.ts';
import type { OpenedPlatform } from '../platforms.ts';
import type { CommandContext } from './context.ts';

export type Invoke = (platform: Platform, observer: UpdateObserver, options: RunOptions) => Promise<RunResult>;

/**
 * Runs one orchestrator command (update, abort, rollback) with progress on stderr (or JSON lines on stdout), the
 * result on stdout, and Ctrl-C turned into a clean stop: the run halts at its next call or wait and its record
 * stays, so running the command again continues it. A second Ctrl-C exits at once.
 */
export async function runOrchestrated(
  ctx: CommandContext,
  invoke: Invoke,
  options: ProgressOptions & { platform?: Platform; signal?: AbortSignal; printResult?: boolean } = {},
): Promise<{ code: ExitCode; result: RunResult }> {
  const { io, globals } = ctx;
  const opened = options.platform === undefined ? await ctx.platforms.open(globals) : null;
  const platform = options.platform ?? (opened as OpenedPlatform).platform;
  const renderer = createProgressRenderer(io, globals, options);
  const stop = new AbortController();
  const onOuterAbort = (): void => stop.abort(options.signal?.reason);
  if (options.signal?.aborted) onOuterAbort();
  else options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const unsubscribe = options.signal === undefined
    ? io.onInterrupt((count) => {
        if (count === 1) {
          io.stderr.write('\ninterrupted: stopping at the next step boundary; the record keeps the progress (Ctrl-C again to quit now)\n');
          stop.abort(new Error('interrupted by the user'));
        }
      })
    : () => undefined;
  let result: RunResult;
  try {
    result = await invoke(platform, renderer.observe, {
      clock: io.clock,
      signal: stop.signal,
      ...(ctx.newUpdateId === undefined ? {} : { newUpdateId: ctx.newUpdateId }),
    });
  } finally {
    renderer.finish();
    unsubscribe();
    await opened?.close();
    options.signal?.removeEventListener('abort', onOuterAbort);
  }
  if (globals.output === 'text' && options.printResult !== false) printResult(ctx, result);
  return { code: exitCodeForResult(result), result };
}

/** The result in words on stdout. */
export function printResult(ctx: CommandContext, result: RunResult): void {
  const style = createStyle(colorEnabled(ctx.io, ctx.io.stdout, ctx.globals.color));
  for (const line of describeResult(result, style)) ctx.io.stdout.write(`${line}\n`);
}
