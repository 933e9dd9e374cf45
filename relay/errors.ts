/**
 * Relay errors carry a stable `code`: callers branch on it, never on the message or on instanceof
 * (two copies of a module break instanceof).
 */
export type RelayErrorCode =
  | 'ERR_RELAY_CONFIG'
  | 'ERR_RELAY_DTLS_PACKAGE'
  | 'ERR_RELAY_SERVER_KEY'
  | 'ERR_RELAY_CLIENT_KEYS'
  | 'ERR_RELAY_UPSTREAM'
  | 'ERR_RELAY_HANDOVER'
  | 'ERR_RELAY_STATE'
  /** An import (restore, claim answer) would hold more sessions than --max-sessions allows. */
  | 'ERR_RELAY_CAPACITY'
  /** A sibling's claim answer is not what was asked for. */
  | 'ERR_RELAY_CLAIM';

export class RelayError extends Error {
  readonly code: RelayErrorCode;

  constructor(code: RelayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RelayError';
    this.code = code;
  }
}
