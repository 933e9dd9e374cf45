/**
 * Errors of the local platform itself (deploy, state folder, processes), as opposed to the orchestrator errors
 * its Platform methods throw (../../errors.ts). Callers branch on `code`, never on `instanceof`.
 */
export const LocalErrorCode = {
  /** No local cluster in the state folder: deploy first. */
  NotDeployed: 'ERR_LOCAL_NOT_DEPLOYED',
  /** The state folder holds a cluster of another base name. */
  OtherFleet: 'ERR_LOCAL_OTHER_FLEET',
  /** A deploy option or a platform argument is malformed. */
  InvalidOption: 'ERR_LOCAL_INVALID_OPTION',
  /** An existing set does not match what deploy was asked for. */
  Mismatch: 'ERR_LOCAL_MISMATCH',
  /** A file under <stateDir>/local cannot be parsed. */
  StateCorrupt: 'ERR_LOCAL_STATE_CORRUPT',
  /** Reading or writing the state folder failed. */
  StateIo: 'ERR_LOCAL_STATE_IO',
  /** A pod or service address is taken by another process. */
  AddressInUse: 'ERR_LOCAL_ADDRESS_IN_USE',
  /** A relay or the service process could not be started, or died while starting. */
  StartFailed: 'ERR_LOCAL_START_FAILED',
  /** deploy waited too long for the service or the relays. */
  DeployTimeout: 'ERR_LOCAL_DEPLOY_TIMEOUT',
  /** A process would not exit even after SIGKILL. */
  StopFailed: 'ERR_LOCAL_STOP_FAILED',
} as const;
export type LocalErrorCode = (typeof LocalErrorCode)[keyof typeof LocalErrorCode];

export class LocalPlatformError extends Error {
  override name = 'LocalPlatformError';
  readonly code: LocalErrorCode;
  /** The file, pod or address the error is about, when there is one. */
  readonly subject: string | undefined;

  constructor(code: LocalErrorCode, message: string, options: { subject?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.subject = options.subject;
  }
}

export function isLocalPlatformError(value: unknown): value is LocalPlatformError {
  if (typeof value !== 'object' || value === null) return false;
  const code = (value as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_LOCAL_');
}
