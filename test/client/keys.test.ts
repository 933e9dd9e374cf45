import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  deviceKeyFrom,
  generateDeviceKey,
  loadPrivateKey,
  loadPublicKey,
  privateKeyDer,
  privateKeyPem,
  spkiDer,
} from '../../client/keys.ts';

describe('device keys', () => {
  it('generates P-256 keys whose id is the SHA-256 of the 91-byte SPKI', () => {
    const key = generateDeviceKey();
    expect(key.spki.length).toBe(91);
    expect(key.id).toBe(createHash('sha256').update(key.spki).digest('hex'));
    expect(key.privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(spkiDer(key.privateKey)).toEqual(key.spki);
  });

  it('loads private keys from SEC1 and PKCS#8, PEM and DER, to the same identity', () => {
    const key = generateDeviceKey();
    const forms = [
      privateKeyDer(key.privateKey, 'pkcs8'),
      privateKeyDer(key.privateKey, 'sec1'),
      privateKeyPem(key.privateKey, 'pkcs8'),
      privateKeyPem(key.privateKey, 'sec1'),
      Buffer.from(privateKeyPem(key.privateKey, 'sec1')),
    ];
    for (const form of forms) expect(deviceKeyFrom(form).id).toBe(key.id);
  });

  it('loads public keys from SPKI DER, PEM, a public KeyObject or a private one', () => {
    const key = generateDeviceKey();
    const pem = key.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    for (const form of [key.spki, pem, key.publicKey, key.privateKey]) {
      expect(spkiDer(loadPublicKey(form))).toEqual(key.spki);
    }
  });

  it('refuses other curves, other algorithms, the wrong key half and garbage', () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const ed = generateKeyPairSync('ed25519');
    expect(() => loadPrivateKey(p384.privateKey)).toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_KEY' }));
    expect(() => loadPublicKey(ed.publicKey)).toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_KEY' }));
    expect(() => loadPrivateKey(generateDeviceKey().publicKey)).toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_KEY' }));
    expect(() => loadPrivateKey(Buffer.from('not a key'))).toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_KEY' }));
    expect(() => loadPublicKey('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'))
      .toThrow(expect.objectContaining({ code: 'ERR_DTLS_BAD_KEY' }));
  });
});
