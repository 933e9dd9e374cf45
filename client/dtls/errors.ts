/**
 * Every failure the client reports is a DtlsClientError with a stable `code`.
 * Callers branch on `code`, never on `instanceof` or the message text.
 */
export type DtlsErrorCode =
  | 'ERR_DTLS_INVALID_OPTION'
  | 'ERR_DTLS_BAD_KEY'
  | 'ERR_DTLS_DECODE'
  | 'ERR_DTLS_UNEXPECTED_MESSAGE'
  | 'ERR_DTLS_BAD_SERVER_HELLO'
  | 'ERR_DTLS_BAD_SERVER_KEY_EXCHANGE'
  | 'ERR_DTLS_BAD_SERVER_SIGNATURE'
  | 'ERR_DTLS_BAD_FINISHED'
  | 'ERR_DTLS_TOO_MANY_COOKIES'
  | 'ERR_DTLS_HANDSHAKE_TIMEOUT'
  | 'ERR_DTLS_ALERT_RECEIVED'
  | 'ERR_DTLS_PEER_CLOSED'
  | 'ERR_DTLS_SOCKET'
  | 'ERR_DTLS_CLOSED'
  | 'ERR_DTLS_NOT_CONNECTED'
  | 'ERR_DTLS_PAYLOAD_TOO_LARGE';

export class DtlsClientError extends Error {
  override readonly name = 'DtlsClientError';
  readonly code: DtlsErrorCode;
  /** TLS alert description we send (or received) because of this error, when one applies. */
  readonly alert: number | undefined;

  constructor(code: DtlsErrorCode, message: string, options?: { alert?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.alert = options?.alert;
  }
}

export function isDtlsClientError(value: unknown): value is DtlsClientError {
  if (!(value instanceof Error)) return false;
  const code: unknown = (value as Error & { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_DTLS_');
}
