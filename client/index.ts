/**
 * Device-side DTLS 1.2 client for the relay's profile (ECDHE-ECDSA, AES-128-CCM-8, raw public keys).
 *
 *   const device = generateDeviceKey();
 *   const client = new DtlsClient({ host: '127.0.0.1', port: 5684, serverPublicKey: relaySpki, clientKey: device });
 *   client.on('message', (payload, sequence) => ...);
 *   client.on('close', ({ reason, alert, error }) => ...);
 *   await client.connect();           // rejects with a DtlsClientError; branch on error.code
 *   client.send(Buffer.from('hi'));   // at most 800 bytes, one record per datagram
 *   await client.close();             // close_notify unless { notify: false }
 */
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
export { MAX_PLAINTEXT_LENGTH } from '../api/dtls/constants.ts';
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
