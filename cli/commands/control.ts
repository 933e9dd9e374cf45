import { runAbort, runRollback, type ControlSpec } from '../../orchestrator/index.ts';
import type { ExitCode } from '../exit-codes.ts';
import type { CommandContext } from './context.ts';
import { decideControl, dryRun } from './dry-run.ts';
import { runOrchestrated } from './orchestrated.ts';

/** abort and rollback: no image, they go back to what the update record says. */
export function controlSpec(ctx: CommandContext): ControlSpec {
  const timeout = ctx.globals.timeoutMs;
  return {
    name: ctx.globals.name,
    owner: ctx.owner,
    // Both run as a rollback, whose budget is rollbackMs; overallMs bounds the start before it.
    ...(timeout === null ? {} : { timeouts: { overallMs: timeout, rollbackMs: timeout } }),
  };
}

export async function controlCommand(ctx: CommandContext, command: 'abort' | 'rollback'): Promise<ExitCode> {
  if (ctx.globals.dryRun) return dryRun(ctx, command, (status) => decideControl(status, command));
  const spec = controlSpec(ctx);
  const run = command === 'abort' ? runAbort : runRollback;
  const { code } = await runOrchestrated(ctx, (platform, observer, options) => run(spec, platform, observer, options));
  return code;
}
