import { formatDuration } from '../../lib/duration.ts';
import { readStatus, type UpdateStatus } from '../../orchestrator/index.ts';
import { ExitCode } from '../exit-codes.ts';
import { colorEnabled } from '../io.ts';
import { jsonLine } from '../render/json.ts';
import { createStyle } from '../render/style.ts';
import type { DryRunMode } from '../options.ts';
import type { CommandContext } from './context.ts';

/**
 * --dry-run for update, abort and rollback: reads the fleet (no lock, no writes) and says what the command would
 * do or why it would be refused. The real run checks the same rules again under the lock, so a dry run that
 * passes is a good sign, not a promise. In server mode the platform is opened with dryRun=server, so whatever it
 * sends is checked by the API server and not persisted (platforms.ts); the local platform refuses that mode.
 */

export interface DryRunVerdict {
  dryRun: DryRunMode;
  command: 'update' | 'abort' | 'rollback';
  name: string;
  /** would-run: the command would act; nothing-to-do: it would succeed without acting; refused / lock-held: it would stop. */
  verdict: 'would-run' | 'nothing-to-do' | 'refused' | 'lock-held';
  message: string;
}

function verdictCode(verdict: DryRunVerdict['verdict']): ExitCode {
  if (verdict === 'refused') return ExitCode.Usage;
  if (verdict === 'lock-held') return ExitCode.LockHeld;
  return ExitCode.Success;
}

export async function dryRun(
  ctx: CommandContext,
  command: DryRunVerdict['command'],
  decide: (status: UpdateStatus) => Pick<DryRunVerdict, 'verdict' | 'message'>,
): Promise<ExitCode> {
  const opened = await ctx.platforms.open(ctx.globals);
  let status: UpdateStatus;
  try {
    status = await readStatus(ctx.globals.name, opened.platform, { relays: true });
  } finally {
    await opened.close();
  }
  const decided: Pick<DryRunVerdict, 'verdict' | 'message'> =
    status.lock !== null
      ? { verdict: 'lock-held', message: `the update lock is held by ${status.lock.owner} until ${new Date(status.lock.expiresAt).toISOString()}` }
      : status.recordError !== null
        ? { verdict: 'refused', message: `the update record cannot be read: ${status.recordError.message}` }
        : decide(status);
  const mode = ctx.globals.dryRun ?? 'client';
  const verdict: DryRunVerdict = { dryRun: mode, command, name: ctx.globals.name, ...decided };
  if (ctx.globals.output === 'json') {
    ctx.io.stdout.write(`${jsonLine(verdict)}\n`);
  } else {
    const style = createStyle(colorEnabled(ctx.io, ctx.io.stdout, ctx.globals.color));
    const label = verdict.verdict === 'refused' || verdict.verdict === 'lock-held' ? style.bad(`would be ${verdict.verdict === 'refused' ? 'refused' : 'stopped (lock held)'}`) : style.ok(verdict.verdict === 'would-run' ? 'would run' : 'nothing to do');
    ctx.io.stdout.write(`dry run${mode === 'server' ? ' (server)' : ''}: ${command} ${verdict.name} ${label}: ${verdict.message}\nnothing was changed\n`);
  }
  return verdictCode(verdict.verdict);
}

export function decideUpdate(status: UpdateStatus, options: { image: string; force: boolean; maxParallel: number; drainQuietMs: number; drainMs: number }): Pick<DryRunVerdict, 'verdict' | 'message'> {
  const record = status.update;
  if (record !== null && status.inProgress) {
    if (record.image !== options.image) {
      return { verdict: 'refused', message: `update ${record.id} to image ${record.image} is in progress (${record.direction} at step ${record.step}); continue it with --image ${record.image}, or abort/rollback it` };
    }
    if (record.direction === 'rollback' && record.rollbackRequestedBy !== 'failure') {
      return { verdict: 'refused', message: `update ${record.id} is being rolled back (asked by ${record.rollbackRequestedBy}); run rollback to finish it` };
    }
    return { verdict: 'would-run', message: `would continue update ${record.id} (${record.from} -> ${record.to}) ${record.direction} at step ${record.step}` };
  }
  if (status.sets.length === 2) {
    return { verdict: 'refused', message: `both ${status.sets[0]?.set.name} and ${status.sets[1]?.set.name} exist and no update is in progress; delete the stray one` };
  }
  const active = status.sets[0];
  if (active === undefined) return { verdict: 'refused', message: `neither ${status.name}-a nor ${status.name}-b exists (deploy first)` };
  const from = active.set;
  if (!options.force && from.image === options.image) {
    if (record !== null && record.phase === 'Completed' && record.to === from.name && record.image === options.image) {
      return { verdict: 'nothing-to-do', message: `${from.name} already runs ${options.image} (update ${record.id})` };
    }
    return { verdict: 'refused', message: `${from.name} already runs ${options.image} (use --force to restart it anyway)` };
  }
  const problems: string[] = [];
  for (let ordinal = 0; ordinal < from.replicas; ordinal++) {
    const pod = active.pods.find((candidate) => candidate.ordinal === ordinal);
    if (pod === undefined) {
      problems.push(`${from.name}-${ordinal} missing`);
      continue;
    }
    if (pod.phase !== 'Running' || !pod.ready) problems.push(`${pod.name} ${pod.phase}${pod.ready ? '' : ', not ready'}`);
    const relay = active.relays?.[pod.name] ?? null;
    if (relay === null) problems.push(`${pod.name} relay unreachable`);
    else if (relay.state !== 'serving') problems.push(`${pod.name} relay is ${relay.state}`);
  }
  if (problems.length > 0) return { verdict: 'refused', message: `${from.name} is not ready for an update: ${problems.join('; ')}` };
  const sessions = active.pods.reduce((sum, pod) => sum + (active.relays?.[pod.name]?.sessions ?? 0), 0);
  const to = from.name.endsWith('-a') ? `${status.name}-b` : `${status.name}-a`;
  return {
    verdict: 'would-run',
    message:
      `would update ${from.name} (${from.replicas} relays, image ${from.image}, ${sessions} sessions) to ${to} (image ${options.image}): ` +
      `mark, create, handover (${options.maxParallel} at a time), drain (quiet ${formatDuration(options.drainQuietMs)}, at most ${formatDuration(options.drainMs)}), verify, delete ${from.name}`,
  };
}

export function decideControl(status: UpdateStatus, command: 'abort' | 'rollback'): Pick<DryRunVerdict, 'verdict' | 'message'> {
  const record = status.update;
  if (record === null || !status.inProgress) return { verdict: 'refused', message: 'no update in progress' };
  const what = `update ${record.id} (${record.from} -> ${record.to}, image ${record.image})`;
  if (record.direction === 'rollback') return { verdict: 'would-run', message: `would continue the rollback of ${what} at step ${record.step}` };
  if (record.step === 'delete' || record.step === 'done') {
    return { verdict: 'refused', message: `${what} is deleting the old set; run the update again to finish it` };
  }
  const moved = Object.keys(record.handedOver);
  if (command === 'abort' && moved.length > 0) {
    return { verdict: 'refused', message: `${what} has handed over ordinals ${moved.join(', ')}; use rollback to hand their sessions back` };
  }
  const handBack = moved.length > 0 ? `hand ordinals ${moved.join(', ')} back to ${record.from}, ` : '';
  return { verdict: 'would-run', message: `would ${command} ${what} at step ${record.step}: ${handBack}remove ${record.to}, unmark ${record.from}` };
}
