import { parseImageReference } from '../../lib/image-reference.ts';
import { ErrorCode, OrchestratorError } from '../errors.ts';
import { Reason } from './status.ts';

/** Every wait has one of these deadlines; none is infinite. */
export interface Timeouts {
  /** Budget of one invocation for its own direction. A resumed run gets a fresh budget. */
  overallMs: number;
  /** Budget of an automatic rollback, counted from when it starts (the overall budget may be spent by then). */
  rollbackMs: number;
  /** New pod Running with a reachable relay. Image pulls live here. */
  podStartMs: number;
  /** One restore call. */
  restoreMs: number;
  /** After a restore: readiness flipping on both pods, or a transfer in flight settling. */
  readinessMs: number;
  /** drainTimeout: how long to wait for stragglers to stop before deleting anyway. */
  drainMs: number;
  /** Deleted set and its pods gone. */
  deleteMs: number;
  /** One platform call (each read and write). */
  callMs: number;
}

export interface RetryPolicy {
  /** Consecutive transient failures tolerated per operation before the step fails. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

interface CommonSpec {
  /** Base name: the sets are `<name>-a` and `<name>-b`. */
  name: string;
  /** Who runs this (lock holder and record owner), e.g. `alice@laptop:4711`. */
  owner: string;
  maxParallel?: number;
  /** Quiet period after which an old relay counts as drained. Default 10 s. */
  drainQuietMs?: number;
  timeouts?: Partial<Timeouts>;
  pollIntervalMs?: number;
  lockTtlMs?: number;
  /** Wait this long for a held lock to expire (after a kill, the dead run's lease). Default 0: don't wait. */
  lockWaitMs?: number;
  /** Restore calls per ordinal before the step fails (only retried when status shows nothing moved). */
  restoreAttempts?: number;
  retry?: Partial<RetryPolicy>;
}

export interface UpdateSpec extends CommonSpec {
  image: string;
  /** Update even when the image is unchanged (restarts every relay with its sessions). */
  force?: boolean;
  /** On failure, stop where it failed instead of rolling back. */
  noRollback?: boolean;
}

/** For abort and rollback: no image, they go back to what the record says. */
export type ControlSpec = CommonSpec;

export interface Settings {
  readonly name: string;
  readonly owner: string;
  /** Null for abort and rollback. */
  readonly image: string | null;
  readonly force: boolean;
  readonly noRollback: boolean;
  readonly maxParallel: number;
  readonly drainQuietMs: number;
  readonly timeouts: Readonly<Timeouts>;
  readonly pollIntervalMs: number;
  readonly lockTtlMs: number;
  readonly lockWaitMs: number;
  readonly restoreAttempts: number;
  readonly retry: Readonly<RetryPolicy>;
}

export const DEFAULT_TIMEOUTS: Readonly<Timeouts> = Object.freeze({
  overallMs: 30 * 60_000,
  rollbackMs: 10 * 60_000,
  podStartMs: 5 * 60_000,
  restoreMs: 60_000,
  readinessMs: 60_000,
  // Conntrack keeps chatty devices on old pods as long as they send, so drain ends by this timeout for them.
  drainMs: 60_000,
  deleteMs: 2 * 60_000,
  callMs: 30_000,
});

const COMMON_KEYS = [
  'name',
  'owner',
  'maxParallel',
  'drainQuietMs',
  'timeouts',
  'pollIntervalMs',
  'lockTtlMs',
  'lockWaitMs',
  'restoreAttempts',
  'retry',
];
const UPDATE_KEYS = [...COMMON_KEYS, 'image', 'force', 'noRollback'];
const TIMEOUT_KEYS = Object.keys(DEFAULT_TIMEOUTS);
const RETRY_KEYS = ['attempts', 'baseDelayMs', 'maxDelayMs'];

// DNS-1123 label; short enough that `<name>-b-<ordinal>` stays a valid pod hostname.
const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAME_MAX = 50;

function invalid(field: string, message: string): OrchestratorError {
  return new OrchestratorError(ErrorCode.InvalidSpec, `${field}: ${message}`, {
    reason: Reason.InvalidSpec,
    details: { field },
  });
}

function checkKeys(value: object, allowed: readonly string[], prefix: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw invalid(`${prefix}${key}`, 'unknown option');
  }
}

function positive(field: string, value: unknown, fallback: number, options: { integer?: boolean; zero?: boolean } = {}): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid(field, 'must be a finite number');
  if (options.integer && !Number.isInteger(value)) throw invalid(field, 'must be an integer');
  if (value < 0 || (value === 0 && !options.zero)) throw invalid(field, options.zero ? 'must be >= 0' : 'must be > 0');
  return value;
}

function resolveCommon(spec: CommonSpec, image: string | null, force: boolean, noRollback: boolean): Settings {
  if (typeof spec.name !== 'string' || !NAME_PATTERN.test(spec.name) || spec.name.length > NAME_MAX) {
    throw invalid('name', `must be a DNS label of at most ${NAME_MAX} characters`);
  }
  if (typeof spec.owner !== 'string' || spec.owner.trim() === '') throw invalid('owner', 'must be a non-empty string');
  if (spec.timeouts !== undefined) checkKeys(spec.timeouts, TIMEOUT_KEYS, 'timeouts.');
  if (spec.retry !== undefined) checkKeys(spec.retry, RETRY_KEYS, 'retry.');

  const given: Partial<Timeouts> = spec.timeouts ?? {};
  const timeouts = {} as Timeouts;
  for (const key of TIMEOUT_KEYS as (keyof Timeouts)[]) {
    timeouts[key] = positive(`timeouts.${key}`, given[key], DEFAULT_TIMEOUTS[key]);
  }
  const pollIntervalMs = positive('pollIntervalMs', spec.pollIntervalMs, 1000);
  const lockTtlMs = positive('lockTtlMs', spec.lockTtlMs, 30_000);
  // The lease is renewed every third of its ttl; polling slower than that would not matter, faster is pointless.
  if (lockTtlMs < 3 * Math.min(pollIntervalMs, 1000)) throw invalid('lockTtlMs', 'must be at least 3 s');

  // All defaults in one place.
  return Object.freeze({
    name: spec.name,
    owner: spec.owner,
    image,
    force,
    noRollback,
    maxParallel: positive('maxParallel', spec.maxParallel, 1, { integer: true }),
    drainQuietMs: positive('drainQuietMs', spec.drainQuietMs, 10_000, { zero: true }),
    timeouts: Object.freeze(timeouts),
    pollIntervalMs,
    lockTtlMs,
    lockWaitMs: positive('lockWaitMs', spec.lockWaitMs, 0, { zero: true }),
    restoreAttempts: positive('restoreAttempts', spec.restoreAttempts, 3, { integer: true }),
    retry: Object.freeze({
      attempts: positive('retry.attempts', spec.retry?.attempts, 5, { integer: true }),
      baseDelayMs: positive('retry.baseDelayMs', spec.retry?.baseDelayMs, 250),
      maxDelayMs: positive('retry.maxDelayMs', spec.retry?.maxDelayMs, 5000),
    }),
  });
}

/** Checks every option once, naming the bad field; throws ERR_INVALID_SPEC. */
export function resolveUpdateSpec(spec: UpdateSpec): Settings {
  if (typeof spec !== 'object' || spec === null) throw invalid('spec', 'must be an object');
  checkKeys(spec, UPDATE_KEYS, '');
  if (typeof spec.image !== 'string') throw invalid('image', 'must be an image reference');
  // The same syntax check on every platform, before anything is touched: a typo must not become a stuck pull.
  try {
    parseImageReference(spec.image);
  } catch (error) {
    throw invalid('image', (error as Error).message);
  }
  if (spec.force !== undefined && typeof spec.force !== 'boolean') throw invalid('force', 'must be a boolean');
  if (spec.noRollback !== undefined && typeof spec.noRollback !== 'boolean') {
    throw invalid('noRollback', 'must be a boolean');
  }
  return resolveCommon(spec, spec.image, spec.force ?? false, spec.noRollback ?? false);
}

export function resolveControlSpec(spec: ControlSpec): Settings {
  if (typeof spec !== 'object' || spec === null) throw invalid('spec', 'must be an object');
  checkKeys(spec, COMMON_KEYS, '');
  return resolveCommon(spec, null, false, false);
}
