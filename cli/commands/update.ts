import { DEFAULT_TIMEOUTS, runUpdate, type Timeouts, type UpdateSpec } from '../../orchestrator/index.ts';
import type { ExitCode } from '../exit-codes.ts';
import type { CommandContext } from './context.ts';
import { decideUpdate, dryRun } from './dry-run.ts';
import { runOrchestrated } from './orchestrated.ts';

export interface UpdateFlags {
  image: string;
  maxParallel?: number;
  drainQuiet: number;
  drainTimeout?: number;
  /** False with --no-rollback. */
  rollback: boolean;
  force: boolean;
}

export const DEFAULT_DRAIN_QUIET_MS = 10_000;

export function updateSpec(ctx: CommandContext, flags: UpdateFlags): UpdateSpec {
  const timeouts: Partial<Timeouts> = {};
  if (ctx.globals.timeoutMs !== null) timeouts.overallMs = ctx.globals.timeoutMs;
  if (flags.drainTimeout !== undefined) timeouts.drainMs = flags.drainTimeout;
  return {
    name: ctx.globals.name,
    owner: ctx.owner,
    image: flags.image,
    force: flags.force,
    noRollback: !flags.rollback,
    drainQuietMs: flags.drainQuiet,
    ...(flags.maxParallel === undefined ? {} : { maxParallel: flags.maxParallel }),
    ...(Object.keys(timeouts).length === 0 ? {} : { timeouts }),
  };
}

export async function updateCommand(ctx: CommandContext, flags: UpdateFlags): Promise<ExitCode> {
  const spec = updateSpec(ctx, flags);
  if (ctx.globals.dryRun) {
    return dryRun(ctx, 'update', (status) =>
      decideUpdate(status, {
        image: spec.image,
        force: spec.force ?? false,
        maxParallel: spec.maxParallel ?? 1,
        drainQuietMs: spec.drainQuietMs ?? DEFAULT_DRAIN_QUIET_MS,
        drainMs: spec.timeouts?.drainMs ?? DEFAULT_TIMEOUTS.drainMs,
      }),
    );
  }
  const { code } = await runOrchestrated(ctx, (platform, observer, options) => runUpdate(spec, platform, observer, options));
  return code;
}
