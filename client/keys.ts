/**
 * Device keys: P-256 only, the one curve the relay accepts. A device is known by deviceId(SPKI DER).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { deviceId } from '../api/device-identity.ts';
import { DtlsClientError } from './dtls/errors.ts';

export interface DeviceKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** SubjectPublicKeyInfo DER, 91 bytes: what the device sends as its RFC 7250 Certificate. */
  readonly spki: Buffer;
  /** Hex SHA-256 of the SPKI: the device identity shared with the relay. */
  readonly id: string;
}

export type KeyInput = KeyObject | Buffer | string;

export function generateDeviceKey(): DeviceKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return deviceKeyFrom(privateKey);
}

/** Builds the device view of a private key given as a KeyObject, PEM (SEC1 or PKCS#8) or DER. */
export function deviceKeyFrom(privateKeyInput: KeyInput): DeviceKey {
  const privateKey = loadPrivateKey(privateKeyInput);
  const publicKey = createPublicKey(privateKey);
  const spki = spkiDer(publicKey);
  return { privateKey, publicKey, spki, id: deviceId(spki) };
}

/** A P-256 private key from a KeyObject, PEM text or buffer (SEC1 or PKCS#8), or DER (PKCS#8 or SEC1). */
export function loadPrivateKey(input: KeyInput): KeyObject {
  let key: KeyObject;
  if (isKeyObject(input)) {
    key = input;
  } else if (isPem(input)) {
    key = attempt(() => createPrivateKey({ key: input, format: 'pem' }), 'private key PEM');
  } else {
    const der = input as Buffer;
    key = attempt(
      () => tryEach(
        () => createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }),
        () => createPrivateKey({ key: der, format: 'der', type: 'sec1' }),
      ),
      'private key DER (neither PKCS#8 nor SEC1)',
    );
  }
  if (key.type !== 'private') throw badKey(`expected a private key, got a ${key.type} key`);
  return assertP256(key);
}

/** A P-256 public key from a KeyObject (a private key yields its public half), SPKI PEM or SPKI DER. */
export function loadPublicKey(input: KeyInput): KeyObject {
  let key: KeyObject;
  if (isKeyObject(input)) {
    key = input.type === 'private' ? createPublicKey(input) : input;
  } else if (isPem(input)) {
    key = attempt(() => createPublicKey({ key: input, format: 'pem' }), 'public key PEM');
  } else {
    key = attempt(() => createPublicKey({ key: input as Buffer, format: 'der', type: 'spki' }), 'SPKI DER');
  }
  if (key.type !== 'public') throw badKey(`expected a public key, got a ${key.type} key`);
  return assertP256(key);
}

/** SubjectPublicKeyInfo DER of a public key, or of a private key's public half. */
export function spkiDer(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return publicKey.export({ type: 'spki', format: 'der' });
}

/** Private key DER for servers and files: node-mbed-dtls takes SEC1 or PKCS#8. */
export function privateKeyDer(key: KeyObject, type: 'pkcs8' | 'sec1' = 'pkcs8'): Buffer {
  return key.export({ type, format: 'der' });
}

export function privateKeyPem(key: KeyObject, type: 'pkcs8' | 'sec1' = 'pkcs8'): string {
  return key.export({ type, format: 'pem' }) as string;
}

function assertP256(key: KeyObject): KeyObject {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    throw badKey(`expected a P-256 EC key, got ${key.asymmetricKeyType ?? 'unknown'} ${curve ?? ''}`.trim());
  }
  return key;
}

function isKeyObject(input: KeyInput): input is KeyObject {
  return typeof input === 'object' && !Buffer.isBuffer(input);
}

function isPem(input: KeyInput): input is string | Buffer {
  const text = typeof input === 'string' ? input : (input as Buffer).subarray(0, 64).toString('latin1');
  return text.trimStart().startsWith('-----BEGIN');
}

function tryEach<T>(...attempts: Array<() => T>): T {
  let lastError: unknown;
  for (const attemptOnce of attempts) {
    try {
      return attemptOnce();
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

function attempt<T>(load: () => T, what: string): T {
  try {
    return load();
  } catch (cause) {
    throw new DtlsClientError('ERR_DTLS_BAD_KEY', `cannot load ${what}`, { cause });
  }
}

function badKey(message: string): DtlsClientError {
  return new DtlsClientError('ERR_DTLS_BAD_KEY', message);
}
