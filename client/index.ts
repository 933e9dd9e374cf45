/** Device-side DTLS 1.2 client for the relay's profile (ECDHE-ECDSA, AES-128-CCM-8, raw public keys). */
export {
  DtlsClient,
  type CloseInfo,
  type CloseReason,
  type DtlsClientEvents,
  type DtlsClientState,
  type DtlsClientStats,
} from './dtls/client.ts';
export type { DtlsClientOptions } from './dtls/client-options.ts';
export type { EstablishedSessionInfo } from './dtls/handshake.ts';
export { DtlsClientError, isDtlsClientError, type DtlsErrorCode } from './dtls/errors.ts';
export { MAX_PLAINTEXT_LENGTH } from './dtls/constants.ts';
export {
  deviceKeyFrom,
  generateDeviceKey,
  loadPrivateKey,
  loadPublicKey,
  privateKeyDer,
  privateKeyPem,
  spkiDer,
  type DeviceKey,
  type KeyInput,
} from './keys.ts';
