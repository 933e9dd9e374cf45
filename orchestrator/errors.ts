/**
 * The one error module of the orchestrator. Callers branch on `code`, never on `instanceof`: two copies of the
 * package (the CLI bundling one, a platform plugin another) would each have their own classes.
 *
 * Platform implementations throw these too (conflict, not found, lock held...), so steps can react to a
 * Kubernetes 409 and to the local platform's equivalent in the same way.
 */

export const ErrorCode = {
  /** The spec given by the user is malformed; nothing was touched. */
  InvalidSpec: 'ERR_INVALID_SPEC',
  /** Preflight or a start rule refused to begin; nothing was touched. `reason` says which rule. */
  Refused: 'ERR_REFUSED',
  LockHeld: 'ERR_LOCK_HELD',
  /** Our lease expired or was taken over: someone else may act now, so we must stop writing. */
  LockLost: 'ERR_LOCK_LOST',
  /** Optimistic concurrency failed (Kubernetes 409 on resourceVersion). */
  Conflict: 'ERR_PLATFORM_CONFLICT',
  NotFound: 'ERR_PLATFORM_NOT_FOUND',
  AlreadyExists: 'ERR_PLATFORM_ALREADY_EXISTS',
  /** The platform could not answer now (network, 5xx, 429); worth retrying. */
  Unavailable: 'ERR_PLATFORM_UNAVAILABLE',
  /** A single platform or relay call did not answer within its call timeout. */
  CallTimeout: 'ERR_CALL_TIMEOUT',
  /** A step (or one ordinal inside it) waited past its deadline. */
  StepTimeout: 'ERR_STEP_TIMEOUT',
  /** The whole invocation ran past its overall timeout. */
  OverallTimeout: 'ERR_OVERALL_TIMEOUT',
  /** A guard found the observed state unsafe for the step's action. `reason` says why. */
  Blocked: 'ERR_GUARD_BLOCKED',
  /** The relay management API reported a failed restore. */
  RestoreFailed: 'ERR_RESTORE_FAILED',
  /** The relay refused the restore because of the `restore` label rule. */
  RestoreRefused: 'ERR_RESTORE_REFUSED',
  /** The progress record annotation cannot be parsed or has an unknown version. */
  RecordCorrupt: 'ERR_RECORD_CORRUPT',
  /** Somebody else wrote our progress record: two writers, so we stop. */
  RecordConflict: 'ERR_RECORD_CONFLICT',
  /** The caller's AbortSignal fired. */
  Interrupted: 'ERR_INTERRUPTED',
  /** Anything thrown that is not an OrchestratorError, wrapped so it still carries a code. */
  Unexpected: 'ERR_UNEXPECTED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

// Symbol.for so that a second copy of this module recognises errors made by the first.
const BRAND = Symbol.for('relayctl.orchestrator.error');

export interface ErrorOptions {
  /** A status reason constant (see bluegreen/status.ts) when a guard, rule or deadline produced the error. */
  reason?: string;
  /** True when repeating the same call may succeed (the platform was briefly unavailable, a conflict). */
  transient?: boolean;
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class OrchestratorError extends Error {
  override name = 'OrchestratorError';
  readonly code: ErrorCode;
  readonly reason: string | undefined;
  readonly transient: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reason = options.reason;
    this.transient = options.transient ?? false;
    this.details = Object.freeze({ ...options.details });
    Object.defineProperty(this, BRAND, { value: true });
  }
}

export class LockHeldError extends OrchestratorError {
  override name = 'LockHeldError';
  readonly holder: string;
  readonly expiresAt: number;

  constructor(lock: string, holder: string, expiresAt: number) {
    super(ErrorCode.LockHeld, `lock ${lock} is held by ${holder} until ${new Date(expiresAt).toISOString()}`, {
      details: { lock, holder, expiresAt },
    });
    this.holder = holder;
    this.expiresAt = expiresAt;
  }
}

export function isOrchestratorError(value: unknown): value is OrchestratorError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

export function isLockHeldError(value: unknown): value is LockHeldError {
  return isOrchestratorError(value) && value.code === ErrorCode.LockHeld;
}

/** Gives any thrown value a code, keeping the original as `cause`. */
export function toOrchestratorError(value: unknown, context: string): OrchestratorError {
  if (isOrchestratorError(value)) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new OrchestratorError(ErrorCode.Unexpected, `${context}: ${message}`, { cause: value });
}

/** What events, results and the progress record keep of an error: plain data, safe to serialise. */
export interface ErrorSummary {
  code: string;
  message: string;
  reason?: string;
}

export function summarizeError(value: unknown): ErrorSummary {
  const error = toOrchestratorError(value, 'error');
  return error.reason === undefined
    ? { code: error.code, message: error.message }
    : { code: error.code, message: error.message, reason: error.reason };
}

// Constructors for the errors platform implementations are expected to throw.

export function conflictError(resource: string, expected: string | undefined, actual: string): OrchestratorError {
  return new OrchestratorError(
    ErrorCode.Conflict,
    `${resource} changed: expected resourceVersion ${expected ?? '(any)'}, found ${actual}`,
    { transient: true, details: { resource, expected, actual } },
  );
}

export function notFoundError(resource: string): OrchestratorError {
  return new OrchestratorError(ErrorCode.NotFound, `${resource} not found`, { details: { resource } });
}

export function alreadyExistsError(resource: string): OrchestratorError {
  return new OrchestratorError(ErrorCode.AlreadyExists, `${resource} already exists`, { details: { resource } });
}

export function unavailableError(operation: string, cause?: unknown): OrchestratorError {
  return new OrchestratorError(ErrorCode.Unavailable, `${operation}: platform unavailable`, {
    transient: true,
    cause,
  });
}

export function lockLostError(lock: string, owner: string, message: string): OrchestratorError {
  return new OrchestratorError(ErrorCode.LockLost, `lock ${lock} lost by ${owner}: ${message}`, {
    details: { lock, owner },
  });
}

export function restoreFailedError(target: string, source: string, message: string): OrchestratorError {
  return new OrchestratorError(ErrorCode.RestoreFailed, `restore of ${target} from ${source} failed: ${message}`, {
    details: { target, source },
  });
}

export function restoreRefusedError(target: string, source: string, message: string): OrchestratorError {
  return new OrchestratorError(ErrorCode.RestoreRefused, `restore of ${target} from ${source} refused: ${message}`, {
    details: { target, source },
  });
}
