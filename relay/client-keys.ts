import { createPublicKey } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { RelayError } from './errors.ts';

/**
 * The allowed device keys: a PEM file with one or more PUBLIC KEY blocks, or a folder of .pem and
 * .der files (one key each, or several PEM blocks). Keys are indexed by their SPKI DER in hex,
 * which is exactly what a device sends in its RFC 7250 Certificate.
 */
export async function loadClientKeys(path: string): Promise<Set<string>> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw new RelayError('ERR_RELAY_CLIENT_KEYS', `--client-keys ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const files = info.isDirectory()
    ? (await readdir(path)).filter((name) => /\.(pem|der)$/i.test(name)).sort().map((name) => join(path, name))
    : [path];
  const keys = new Set<string>();
  for (const file of files) {
    for (const spki of parseKeyFile(await readFile(file), file)) keys.add(spki.toString('hex'));
  }
  if (keys.size === 0) throw new RelayError('ERR_RELAY_CLIENT_KEYS', `--client-keys ${path}: no public keys found (expected PEM "PUBLIC KEY" blocks or .der SubjectPublicKeyInfo files)`);
  return keys;
}

export function parseKeyFile(content: Buffer, file: string): Buffer[] {
  const text = content.toString('latin1');
  const blocks = text.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g);
  const inputs = blocks === null ? [{ key: content, format: 'der' as const, type: 'spki' as const }] : blocks.map((block) => ({ key: block, format: 'pem' as const }));
  return inputs.map((input, index) => {
    try {
      const key = createPublicKey(input);
      if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
        throw new Error(`expected an EC P-256 public key, got ${key.asymmetricKeyType}`);
      }
      return key.export({ format: 'der', type: 'spki' });
    } catch (error) {
      throw new RelayError('ERR_RELAY_CLIENT_KEYS', `${file}${blocks === null ? '' : ` (key ${index + 1})`}: not a usable device public key: ${(error as Error).message}`);
    }
  });
}
