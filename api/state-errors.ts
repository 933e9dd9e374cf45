/**
 * Errors of the session state format. Callers branch on `code`, never on `instanceof`: two copies of this module
 * (old and new relay bundled side by side in a test, or a CLI reading a dump) each have their own class.
 *
 * Messages name the field, the record index and what was expected. They never contain secret values: buffers are
 * described by their length only, and strings only for fields that are not secret.
 */

export const ERR_STATE_TRUNCATED = 'ERR_STATE_TRUNCATED';
export const ERR_STATE_CHECKSUM = 'ERR_STATE_CHECKSUM';
export const ERR_STATE_FIELD = 'ERR_STATE_FIELD';
export const ERR_STATE_VERSION = 'ERR_STATE_VERSION';
export const ERR_STATE_FORMAT = 'ERR_STATE_FORMAT';
/** Misuse of the codec API itself (push after finish, bad encoder options). Not a property of the data. */
export const ERR_STATE_USAGE = 'ERR_STATE_USAGE';

export type StateErrorCode =
  | typeof ERR_STATE_TRUNCATED // the stream ended before its trailer, or inside a value
  | typeof ERR_STATE_CHECKSUM // trailer count or SHA-256 does not match what was read
  | typeof ERR_STATE_FIELD // a header, record or trailer field has the wrong type, length or range
  | typeof ERR_STATE_VERSION // the stream needs a newer reader, or is older than this reader supports
  | typeof ERR_STATE_FORMAT // not this format, or malformed MessagePack, or values in the wrong place
  | typeof ERR_STATE_USAGE;

export interface StateErrorDetails {
  /** Zero-based index of the session record, when the error is about one record. */
  record?: number;
  /** Field path in the in-memory names, e.g. `dtls.master`. */
  field?: string;
  /** Byte offset in the stream where the offending MessagePack value starts. */
  offset?: number;
}

export class StateFormatError extends Error {
  override name = 'StateFormatError';
  readonly code: StateErrorCode;
  readonly record: number | undefined;
  readonly field: string | undefined;
  readonly offset: number | undefined;

  constructor(code: StateErrorCode, message: string, details: StateErrorDetails = {}) {
    super(message);
    this.code = code;
    this.record = details.record;
    this.field = details.field;
    this.offset = details.offset;
  }
}

const CODES: ReadonlySet<string> = new Set([
  ERR_STATE_TRUNCATED,
  ERR_STATE_CHECKSUM,
  ERR_STATE_FIELD,
  ERR_STATE_VERSION,
  ERR_STATE_FORMAT,
  ERR_STATE_USAGE,
]);

/** True for errors of this module, including ones thrown by another copy of it. */
export function isStateFormatError(error: unknown): error is StateFormatError {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { code?: unknown }).code === 'string' &&
    CODES.has((error as { code: string }).code)
  );
}
