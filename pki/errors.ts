/**
 * Stable error codes of the PKI (the certificate generator and the local platform's folder), so callers (CLI,
 * platforms) can branch without parsing messages.
 * Messages name files and expectations but never include file contents: a corrupt key file may
 * still hold most of a private key.
 */
export type PkiErrorCode =
  /** A file exists but is not what it should be (unparsable, wrong key type, key/cert mismatch, no role, ...). */
  | 'ERR_PKI_CORRUPT'
  /** A file that should exist does not (only thrown by read-only loaders; ensureLocalPki generates it). */
  | 'ERR_PKI_MISSING'
  /** A certificate is expired, not yet valid, or inside the renewal window. */
  | 'ERR_PKI_EXPIRED'
  /** Bad input to createCa / issueCertificate / the relay and operator issuers / ensureLocalPki. */
  | 'ERR_PKI_INVALID_ARGUMENT'
  /** Reading, writing or renaming a file failed for a reason other than the above. */
  | 'ERR_PKI_IO'
  /** Another process held the PKI lock for longer than the caller was willing to wait. */
  | 'ERR_PKI_LOCK_TIMEOUT';

export class PkiError extends Error {
  readonly code: PkiErrorCode;
  /** The file concerned, when there is one. */
  readonly file: string | undefined;

  constructor(code: PkiErrorCode, message: string, options: { file?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PkiError';
    this.code = code;
    this.file = options.file;
  }
}
