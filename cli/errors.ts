/**
 * The CLI's own errors, and the one format every error is reported in (commander's included):
 *
 *   relayctl: error: <what was wrong>
 *   <what to do about it>
 *
 * Branch on `code`, not instanceof (the orchestrator's errors follow the same rule).
 */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly code = 'ERR_USAGE';
}

/** What the command names does not exist (kubectl's NotFound); `hint` says what to deploy. */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
  readonly code = 'ERR_NOT_FOUND';
  readonly hint: string;

  constructor(message: string, hint: string) {
    super(message);
    this.hint = hint;
  }
}

/**
 * Errors of other modules that mean "the request has to change" (a deploy option that contradicts the running
 * cluster, another fleet in the state folder), so they exit like usage errors.
 */
const USAGE_CLASS_CODES: readonly string[] = [
  'ERR_USAGE',
  'ERR_LOCAL_NOT_DEPLOYED',
  'ERR_LOCAL_OTHER_FLEET',
  'ERR_LOCAL_INVALID_OPTION',
  'ERR_LOCAL_MISMATCH',
];

export function isUsageError(value: unknown): value is Error & { code: string } {
  return USAGE_CLASS_CODES.includes(codeOf(value) ?? '');
}

export function isNotFoundError(value: unknown): value is NotFoundError {
  return codeOf(value) === 'ERR_NOT_FOUND' && typeof (value as { hint?: unknown }).hint === 'string';
}

export function codeOf(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const code = (value as { code?: unknown }).code;
  return typeof code === 'string' ? code : null;
}

/** The error lines; `message` may be commander's, which starts with "error: " already. */
export function errorText(message: string, hint: string | null): string {
  const text = message.startsWith('error: ') ? message : `error: ${message}`;
  return `relayctl: ${text.trimEnd()}\n${hint === null ? '' : `${hint}\n`}`;
}

/** The hint after a usage error: where the command's usage is. */
export function usageHint(commandPath: string): string {
  return `Run '${commandPath} --help' for usage.`;
}

export const KUBERNETES_UNAVAILABLE =
  '--platform kubernetes: the Kubernetes platform is not available in this build; use --platform local (the default)';

export const SERVER_DRY_RUN_UNAVAILABLE =
  '--dry-run=server: the local platform has no API server to check writes against; use --dry-run=client (or --dry-run), or a platform with an API server (--platform kubernetes)';
