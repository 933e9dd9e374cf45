import type { MovedOrdinal, RunResult } from '../../orchestrator/index.ts';
import { wasInterrupted } from '../exit-codes.ts';
import { DEFAULT_NAME } from '../options.ts';
import { bytes, duration } from './format.ts';
import type { Style } from './style.ts';

/**
 * The result of update, abort and rollback in words, for stdout. Failures say what failed, where the fleet is
 * now, and what to run next.
 */
export function describeResult(result: RunResult, style: Style): string[] {
  const took = `in ${duration(result.durationMs)}`;
  const record = result.record;
  switch (result.code) {
    case 'succeeded':
      switch (result.outcome) {
        case 'updated':
          return [
            `${style.ok('updated')} ${result.name}: ${result.from} -> ${result.to}, image ${result.image}, ${took}`,
            ...result.moved.map((moved) => `  ${movedLine(moved)}`),
          ];
        case 'already-updated':
          return [`${style.ok('up to date')}: ${result.to} already runs ${result.image} (update ${result.updateId ?? '?'} completed earlier); nothing to do`];
        case 'rolled-back':
          return [
            `${style.ok('rolled back')} ${result.name}: ${result.from} serves every session again with image ${result.image}, ${took}`,
            ...result.moved.map((moved) => `  ${movedLine(moved)}`),
          ];
        case 'aborted':
          return [`${style.ok('aborted')} the update of ${result.name}: ${result.to} removed, ${result.from} unchanged, ${took}`];
      }
      break;
    case 'timed-out': {
      const head = `${style.bad('timed out')}: ${result.command} ${result.name} at step ${result.step}: ${result.error.message} (${result.error.code})`;
      if (result.rolledBack) return [head, `rolled back: ${record?.from ?? 'the old set'} serves every session again`];
      return [head, `${style.bad('NOT rolled back')}${result.rollbackError === null ? '' : `: ${result.rollbackError.message}`}`, nextSteps(result)];
    }
    case 'rolled-back':
      return [
        `${style.bad('failed')}: ${result.command} ${result.name} at step ${result.step}: ${result.error.message} (${result.error.code})`,
        result.outcome === 'aborted'
          ? `aborted: nothing had been handed over; ${record?.to ?? 'the new set'} removed, ${record?.from ?? 'the old set'} unchanged`
          : `rolled back: ${record?.from ?? 'the old set'} serves every session again`,
      ];
    case 'failed':
      if (wasInterrupted(result)) {
        return [`${style.warn('interrupted')}: ${result.command} ${result.name} stopped at step ${result.step}, at a safe point; nothing was rolled back`, nextSteps(result)];
      }
      return [
        `${style.bad('failed')}: ${result.command} ${result.name} at step ${result.step}: ${result.error.message} (${result.error.code})`,
        result.rollbackAttempted
          ? `${style.bad('rollback failed too')}${result.rollbackError === null ? '' : `: ${result.rollbackError.message}`}`
          : style.bad('NOT rolled back'),
        nextSteps(result),
      ];
    case 'lock-held':
      return [
        `${style.bad('lock held')}: another run holds the update lock of ${result.name}: ${result.holder}, until ${new Date(result.expiresAt).toISOString()}; nothing was touched`,
      ];
    case 'refused':
      return [`${style.bad('refused')}: ${result.command} ${result.name}: ${result.message} (${result.reason}); nothing was touched`];
  }
  return [];
}

function movedLine(moved: MovedOrdinal): string {
  const figures = [
    moved.bytes === null ? null : bytes(moved.bytes),
    moved.durationMs === null ? null : `in ${duration(moved.durationMs)}`,
    moved.pauseMs === null ? null : `devices paused ${duration(moved.pauseMs)}`,
    moved.skipped ? `${moved.skipped} left to handshake again` : null,
    moved.inferred ? 'figures read back from the relays' : null,
  ].filter((part) => part !== null);
  return `ordinal ${moved.ordinal}: ${moved.sessions ?? '?'} sessions ${moved.source} -> ${moved.target}${figures.length > 0 ? ` (${figures.join(', ')})` : ''}`;
}

function nextSteps(result: RunResult): string {
  const record = result.record;
  if (record === null) return `run "relayctl ${result.command}" again`;
  const name = record.name === DEFAULT_NAME ? '' : ` ${record.name}`;
  if (record.direction === 'forward' && (record.step === 'delete' || record.step === 'done')) {
    return `past the point of no return: run "relayctl update${name} --image ${record.image}" again to finish`;
  }
  if (record.direction === 'rollback') return `the record keeps the progress: run "relayctl rollback${name}" to finish the rollback`;
  return `the record keeps the progress: run "relayctl update${name} --image ${record.image}" again to continue, or "relayctl rollback${name}"`;
}
