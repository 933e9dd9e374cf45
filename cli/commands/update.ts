import { runUpdate, type Timeouts, type UpdateSpec } from '../../orchestrator/index.ts';
import type { ExitCode } from '../exit-codes.ts';
import type { CommandContext } from './context.ts';
import { decideUpdate, dryRun } from './dry-run.ts';
import { runOrchestrated } from './orchestrated.ts';

export interface UpdateFlags {
  image: string;
  maxParallel: number;
  drainQuiet: number;
  drainTimeout: number;
  /** False with --no-rollback. */
  rollback: boolean;
  force: boolean;
}

export const DEFAULT_DRAIN_QUIET_MS = 10_000;
export const DEFAULT_MAX_PARALLEL = 1;

function updateSpec(ctx: CommandContext, flags: UpdateFlags): UpdateSpec {
  const timeouts: Partial<Timeouts> = { drainMs: flags.drainTimeout };
  if (ctx.globals.timeoutMs !== null) timeouts.overallMs = ctx.globals.timeoutMs;
  return {
    name: ctx.globals.name,
    owner: ctx.owner,
    image: flags.image,
    force: flags.force,
    noRollback: !flags.rollback,
    drainQuietMs: flags.drainQuiet,
    maxParallel: flags.maxParallel,
    timeouts,
  };
}

export async function updateCommand(ctx: CommandContext, flags: UpdateFlags): Promise<ExitCode> {
  if (ctx.globals.dryRun !== null) {
    return dryRun(ctx, 'update', (status) =>
      decideUpdate(status, {
        image: flags.image,
        force: flags.force,
        maxParallel: flags.maxParallel,
        drainQuietMs: flags.drainQuiet,
        drainMs: flags.drainTimeout,
      }),
    );
  }
  const spec = updateSpec(ctx, flags);
  const { code } = await runOrchestrated(ctx, (platform, observer, options) => runUpdate(spec, platform, observer, options));
  return code;
}
