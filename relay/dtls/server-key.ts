import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { RelayError } from '../errors.ts';

export interface ServerKey {
  /** SEC1 DER: the one form the bundled mbedtls parses without a trailing NUL. */
  der: Buffer;
  /** SubjectPublicKeyInfo DER: what devices pin. */
  publicKey: Buffer;
}

/** Accepts PEM or DER, SEC1 or PKCS#8; insists on P-256, the only curve the server profile has. */
export function loadServerKey(input: Buffer, source = 'server key'): ServerKey {
  let key: KeyObject;
  try {
    const pem = input.subarray(0, 11).toString('latin1') === '-----BEGIN ';
    key = pem
      ? createPrivateKey({ key: input, format: 'pem' })
      : tryDer(input);
  } catch (error) {
    throw new RelayError('ERR_RELAY_SERVER_KEY', `${source}: not a private key in PEM or DER (SEC1 or PKCS#8): ${(error as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new RelayError('ERR_RELAY_SERVER_KEY', `${source}: expected an EC P-256 (prime256v1) private key, got ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ''}`.trim());
  }
  return {
    der: key.export({ format: 'der', type: 'sec1' }),
    publicKey: createPublicKey(key).export({ format: 'der', type: 'spki' }),
  };
}

function tryDer(input: Buffer): KeyObject {
  try {
    return createPrivateKey({ key: input, format: 'der', type: 'pkcs8' });
  } catch {
    return createPrivateKey({ key: input, format: 'der', type: 'sec1' });
  }
}
