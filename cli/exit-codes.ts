import { ErrorCode, type ResultCode, type RunResult } from '../orchestrator/index.ts';

/**
 * Exit statuses of relayctl: a script branches on these, so each number means one situation and never changes.
 * The help text's "Exit codes:" section is printed from this table.
 */
export const ExitCode = {
  Success: 0,
  Unexpected: 1,
  /** kubectl exits 1 for NotFound too ("Error from server (NotFound)"). */
  NotFound: 1,
  Usage: 2,
  TimedOut: 3,
  RolledBack: 4,
  Failed: 5,
  LockHeld: 6,
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES: readonly { code: ExitCode; meaning: string }[] = [
  { code: ExitCode.Success, meaning: 'success' },
  { code: ExitCode.Unexpected, meaning: "error: the fleet was not found (kubectl's NotFound), the platform failed outside an update, or a bug" },
  { code: ExitCode.Usage, meaning: 'usage error: bad flag or argument, or the request was refused before anything was touched' },
  { code: ExitCode.TimedOut, meaning: 'timed out (the message says whether the fleet was rolled back)' },
  { code: ExitCode.RolledBack, meaning: 'failed and rolled back: the old set serves every session again' },
  { code: ExitCode.Failed, meaning: 'failed and NOT rolled back: run the same command again to continue, or abort/rollback' },
  { code: ExitCode.LockHeld, meaning: 'lock held: another update is running; nothing was touched' },
  { code: ExitCode.Interrupted, meaning: 'interrupted (Ctrl-C) at a safe point: the record keeps the progress; run the command again to continue' },
];

const BY_RESULT: Readonly<Record<ResultCode, ExitCode>> = {
  succeeded: ExitCode.Success,
  'timed-out': ExitCode.TimedOut,
  'rolled-back': ExitCode.RolledBack,
  failed: ExitCode.Failed,
  'lock-held': ExitCode.LockHeld,
  // Invalid spec or a preflight rule said no: nothing was touched, the request has to change.
  refused: ExitCode.Usage,
};

/** A run the user stopped with Ctrl-C is "interrupted" (130), not "failed": nothing went wrong, the record waits. */
export function exitCodeForResult(result: RunResult | Pick<RunResult, 'code'>): ExitCode {
  return wasInterrupted(result) ? ExitCode.Interrupted : BY_RESULT[result.code];
}

export function wasInterrupted(result: RunResult | Pick<RunResult, 'code'>): boolean {
  if (result.code !== 'failed' || !('error' in result)) return false;
  return result.error.code === ErrorCode.Interrupted || result.rollbackError?.code === ErrorCode.Interrupted;
}

export function exitCodesHelp(): string {
  const lines = EXIT_CODES.map(({ code, meaning }) => `  ${String(code).padStart(3)}  ${meaning}`);
  return `\nExit codes:\n${lines.join('\n')}\n`;
}
