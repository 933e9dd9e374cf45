/**
 * The CLI's own errors. Branch on `code`, not instanceof (the orchestrator's errors follow the same rule).
 */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly code = 'ERR_USAGE';
}

/**
 * Errors of other modules that mean "the request has to change" (wrong --state-dir or --name, a deploy option
 * that contradicts the running cluster), so they exit like usage errors.
 */
const USAGE_CLASS_CODES: readonly string[] = [
  'ERR_USAGE',
  'ERR_LOCAL_NOT_DEPLOYED',
  'ERR_LOCAL_OTHER_FLEET',
  'ERR_LOCAL_INVALID_OPTION',
  'ERR_LOCAL_MISMATCH',
];

export function isUsageError(value: unknown): value is Error & { code: string } {
  if (typeof value !== 'object' || value === null) return false;
  const code = (value as { code?: unknown }).code;
  return typeof code === 'string' && USAGE_CLASS_CODES.includes(code);
}

export const KUBERNETES_UNAVAILABLE =
  '--platform kubernetes: the Kubernetes platform is not available in this build; use --platform local (the default)';
