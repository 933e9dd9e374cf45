import { readStatus, type UpdateStatus } from '../../orchestrator/index.ts';
import { NotFoundError, UsageError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import { colorEnabled, isInteractive } from '../io.ts';
import { ELAPSED_WIDTH, elapsed } from '../render/format.ts';
import { jsonLine, jsonReplacer } from '../render/json.ts';
import { statusLines, statusSummary } from '../render/status.ts';
import { createStyle } from '../render/style.ts';
import { LiveRegion } from '../render/tty.ts';
import type { CommandContext } from './context.ts';

export interface StatusFlags {
  watch: boolean;
}

/** How often --watch reads the fleet. */
export const WATCH_INTERVAL_MS = 1000;

/**
 * Shows the fleet: sets, pods, relays, the update record and the lock. With --watch it follows an update in
 * progress until it ends (like `kubectl argo rollouts status`) and exits with what the update came to.
 *
 * Exit: 0; 5 when the recorded update failed and waits for a rerun, abort or rollback; with --watch of an update
 * in progress, 4 when it ended rolled back or aborted, 3 when --timeout passed first; 1 (NotFound, as kubectl)
 * when the fleet does not exist.
 */
export async function statusCommand(ctx: CommandContext, flags: StatusFlags): Promise<ExitCode> {
  const { io, globals } = ctx;
  if (globals.dryRun) throw new UsageError('--dry-run: status only reads; drop --dry-run');
  const opened = await ctx.platforms.open(globals);
  try {
    return await show(ctx, flags, () => readStatus(globals.name, opened.platform, { relays: true }));
  } finally {
    await opened.close();
  }
}

async function show(ctx: CommandContext, flags: StatusFlags, read: () => Promise<UpdateStatus>): Promise<ExitCode> {
  const { io, globals } = ctx;
  const first = await read();
  if (first.sets.length === 0 && first.update === null) {
    // Found by name (fleet.ts) but with neither set: deleted by hand, or a deploy that never finished.
    const listing = await ctx.platforms.fleets(globals);
    throw new NotFoundError(
      `fleet "${globals.name}" not found on ${first.platform} (${listing.where}): neither ${globals.name}-a nor ${globals.name}-b exists`,
      `Deploy it with "${listing.deployCommand(globals.name)}".`,
    );
  }
  if (!flags.watch) {
    if (globals.output === 'json') io.stdout.write(`${JSON.stringify(first, jsonReplacer, 2)}\n`);
    else {
      const style = createStyle(colorEnabled(io, io.stdout, globals.color));
      for (const line of statusLines(first, style, io.clock.now())) io.stdout.write(`${line}\n`);
    }
    return first.update?.phase === 'Failed' ? ExitCode.Failed : ExitCode.Success;
  }
  return watch(ctx, first, read);
}

async function watch(ctx: CommandContext, first: UpdateStatus, read: () => Promise<UpdateStatus>): Promise<ExitCode> {
  const { io, globals } = ctx;
  const startedAt = io.clock.now();
  const deadline = globals.timeoutMs === null ? null : startedAt + globals.timeoutMs;
  const followed = first.inProgress ? first.update?.id ?? null : null;
  let status = first;
  const style = createStyle(colorEnabled(io, io.stdout, globals.color));
  const live = globals.output === 'text' && isInteractive(io, io.stdout) ? new LiveRegion(io.stdout, io.clock, () => statusLines(status, style, io.clock.now())) : null;
  let last = '';
  const stop = new AbortController();
  const unsubscribe = io.onInterrupt(() => stop.abort());
  try {
    for (;;) {
      if (live !== null) live.invalidate();
      else {
        const text = globals.output === 'json' ? jsonLine(status) : statusSummary(status);
        if (text !== last) {
          last = text;
          io.stdout.write(globals.output === 'json' ? `${text}\n` : `${elapsed(io.clock.now() - startedAt).padStart(ELAPSED_WIDTH)}  ${text}\n`);
        }
      }
      if (!status.inProgress) break;
      if (deadline !== null && io.clock.now() >= deadline) {
        live?.close();
        io.stderr.write(`timed out: the update was still ${status.update?.phase ?? 'in progress'} after ${elapsed(io.clock.now() - startedAt)}\n`);
        return ExitCode.TimedOut;
      }
      const wait = deadline === null ? WATCH_INTERVAL_MS : Math.max(1, Math.min(WATCH_INTERVAL_MS, deadline - io.clock.now()));
      try {
        await io.clock.sleep(wait, stop.signal);
      } catch {
        live?.close();
        return ExitCode.Interrupted;
      }
      status = await read();
    }
  } finally {
    live?.close();
    unsubscribe();
  }
  const phase = status.update?.phase;
  if (phase === 'Failed') return ExitCode.Failed;
  if (followed !== null && status.update?.id === followed && (phase === 'RolledBack' || phase === 'Aborted')) return ExitCode.RolledBack;
  return ExitCode.Success;
}
