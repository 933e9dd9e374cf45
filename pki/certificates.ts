/**
 * Certificate and key generation, with no notion of where the material goes: a private CA, leaf certificates it
 * signs, and the relay's DTLS identity key. The relay and operator certificates (which names, usages and role each
 * carries) are in roles.ts; the local platform writes all of it to its state folder
 * (orchestrator/platform/local/pki.ts), and the same functions serve Kubernetes Secrets or files.
 *
 * Everything is ECDSA P-256 with SHA-256: what node-mbed-dtls's ECDHE-ECDSA suite and Node's TLS both take.
 */
// tsyringe (under @peculiar/x509) needs a Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, generateKeyPair, KeyObject, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import type { webcrypto as WebCrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { inspect, promisify } from 'node:util';
import { PkiError } from './errors.ts';

// As @peculiar/x509's docs say for Node: hand it Node's WebCrypto (globalThis.crypto is node:crypto's webcrypto).
// It would find it on its own; being explicit removes the guesswork.
x509.cryptoProvider.set(globalThis.crypto);

const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNATURE = { name: 'ECDSA', hash: 'SHA-256' } as const;
export const DAY_MS = 86_400_000;
// Certificates start slightly in the past so a peer whose clock is a little behind still accepts them.
const BACKDATE_MS = 5 * 60_000;

/** Which extended key usages a leaf gets: serverAuth, clientAuth, or both. */
export type CertificateUsage = 'server' | 'client' | 'both';

export const EXTENDED_KEY_USAGES: Readonly<Record<CertificateUsage, readonly string[]>> = {
  server: [x509.ExtendedKeyUsage.serverAuth],
  client: [x509.ExtendedKeyUsage.clientAuth],
  both: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
};

export interface CreateCaOptions {
  commonName: string;
  validityDays: number;
}

export interface IssueCertificateOptions {
  commonName: string;
  dnsNames?: readonly string[];
  /** IPv4 or IPv6 literals, e.g. '127.0.0.1', '::1'. */
  ipAddresses?: readonly string[];
  /** URI SANs, e.g. a role (api/management-roles.ts). */
  uris?: readonly string[];
  usage: CertificateUsage;
  /** Clamped so the certificate never outlives its CA. */
  validityDays: number;
}

/** A certificate and its private key. Logging it (inspect / JSON) never shows the key. */
export interface IssuedCertificate {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
  /** Hex, as in the certificate. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 fingerprint, colon-separated hex (as node:crypto prints it). */
  fingerprint256: string;
}

/** What issueCertificate needs from a CA: its certificate and key, PEM (PKCS#8 or SEC1 key). */
export interface CaMaterial {
  certPem: string | Buffer;
  keyPem: string | Buffer;
}

export interface DtlsKeyPair {
  /** P-256 private key, PKCS#8 PEM ("BEGIN PRIVATE KEY"). */
  privateKeyPkcs8Pem: string;
  /** The same key, SEC1 PEM ("BEGIN EC PRIVATE KEY"), for stacks that only take that form. */
  privateKeySec1Pem: string;
  /** SubjectPublicKeyInfo DER: what devices pin and what api/device-identity.ts hashes. */
  publicKeySpkiDer: Buffer;
}

/** Creates a self-signed CA that may only issue end-entity certificates. */
export async function createCa(options: CreateCaOptions): Promise<IssuedCertificate> {
  checkCommonName(options.commonName);
  checkValidityDays(options.validityDays, 'validityDays');
  const keys = await generateEcKeys();
  const { notBefore, notAfter } = validityWindow(options.validityDays);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [options.commonName] }],
    notBefore,
    notAfter,
    signingAlgorithm: SIGNATURE,
    keys,
    extensions: [
      // pathLength 0: this CA signs leaves only, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return toIssued(cert, keys.privateKey);
}

/** Issues a leaf certificate signed by `ca`. */
export async function issueCertificate(ca: CaMaterial, options: IssueCertificateOptions): Promise<IssuedCertificate> {
  checkCommonName(options.commonName);
  checkValidityDays(options.validityDays, 'validityDays');
  if (!Object.hasOwn(EXTENDED_KEY_USAGES, options.usage)) {
    throw invalid(`usage must be 'server', 'client' or 'both', got ${JSON.stringify(options.usage)}`);
  }
  const dnsNames = [...(options.dnsNames ?? [])];
  const ipAddresses = [...(options.ipAddresses ?? [])];
  const uris = [...(options.uris ?? [])];
  for (const name of dnsNames) checkDnsName(name);
  for (const ip of ipAddresses) {
    if (isIP(ip) === 0) throw invalid(`ipAddresses: ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
  }
  for (const uri of uris) checkUri(uri);

  const caCert = parseCertificate(ca.certPem);
  if (!caCert) throw invalid('ca.certPem is not a PEM/DER X.509 certificate');
  if (!caCert.ca) throw invalid(`ca.certPem (${caCert.subject}) is not a CA certificate`);
  const caKey = parseP256PrivateKey(ca.keyPem);
  if (!caKey.ok) throw invalid(`ca.keyPem: ${caKey.problem}`);
  if (!caCert.checkPrivateKey(caKey.key)) throw invalid('ca.keyPem does not match ca.certPem');
  const caX509 = new x509.X509Certificate(caCert.raw);
  if (caX509.notAfter.getTime() <= Date.now()) {
    throw new PkiError('ERR_PKI_EXPIRED', `the CA certificate expired at ${caX509.notAfter.toISOString()}`);
  }

  const signingKey = await webcrypto.subtle.importKey('pkcs8', caKey.key.export({ type: 'pkcs8', format: 'der' }), EC_KEY, false, ['sign']);
  // The AKI must equal the CA's SKI byte for byte, so copy it when present rather than recompute.
  const caSki = caX509.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const aki = caSki ? new x509.AuthorityKeyIdentifierExtension(caSki) : await x509.AuthorityKeyIdentifierExtension.create(caX509.publicKey);

  const keys = await generateEcKeys();
  const { notBefore, notAfter } = validityWindow(options.validityDays, caX509.notAfter);
  const names: x509.JsonGeneralName[] = [
    ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
    ...uris.map((value) => ({ type: 'url' as const, value })),
  ];

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [options.commonName] }],
    // The CA's own encoded name, so issuer/subject match byte for byte during chain building.
    issuer: caX509.subjectName,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNATURE,
    publicKey: keys.publicKey,
    signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      // ECDHE-ECDSA only ever signs with the key; keyEncipherment does not apply to EC keys.
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([...EXTENDED_KEY_USAGES[options.usage]], false),
      // An empty SAN extension is invalid DER, so omit it for a certificate without names.
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
      aki,
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return toIssued(cert, keys.privateKey);
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** A fresh P-256 key pair for the relay's DTLS identity (raw public key, devices pin it). */
export async function generateDtlsKeyPair(): Promise<DtlsKeyPair> {
  const { privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return hideFromLogs(
    {
      privateKeyPkcs8Pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      privateKeySec1Pem: privateKey.export({ type: 'sec1', format: 'pem' }) as string,
      publicKeySpkiDer: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }),
    },
    (k) => ({ publicKeySpkiDer: k.publicKeySpkiDer.toString('base64'), privateKey: '[redacted]' }),
  );
}

// ---- parsing, shared with checks.ts ------------------------------------------------------------------------------

export function parseCertificate(data: string | Buffer): X509Certificate | undefined {
  try {
    return new X509Certificate(data);
  } catch {
    return undefined;
  }
}

export function parseP256PrivateKey(data: string | Buffer): { ok: true; key: KeyObject } | { ok: false; problem: string } {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: data, format: 'pem' });
  } catch (err) {
    // OpenSSL's message describes the decoding failure, not the bytes, so it is safe to surface.
    return { ok: false, problem: `not a readable unencrypted PEM private key (${(err as Error).message})` };
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const kind = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? '?'}` : key.asymmetricKeyType;
    return { ok: false, problem: `found a ${kind} key, expected EC P-256` };
  }
  return { ok: true, key };
}

/**
 * Makes `util.inspect` and `JSON.stringify` (and so pino) show `view(obj)` instead of the object, so a stray log
 * line cannot leak a private key. Properties stay ordinary and enumerable.
 */
export function hideFromLogs<T extends object>(obj: T, view: (o: T) => unknown): T {
  Object.defineProperty(obj, 'toJSON', { value: () => view(obj), enumerable: false });
  Object.defineProperty(obj, inspect.custom, {
    value: (_depth: number, opts: object) => inspect(view(obj), opts),
    enumerable: false,
  });
  return obj;
}

export function invalid(message: string): PkiError {
  return new PkiError('ERR_PKI_INVALID_ARGUMENT', message);
}

export function checkValidityDays(days: unknown, what: string): void {
  if (typeof days !== 'number' || !Number.isFinite(days) || days <= 0 || days > 36_500) {
    throw invalid(`${what} must be a number of days in (0, 36500]`);
  }
}

// ---- internals ---------------------------------------------------------------------------------------------------

async function generateEcKeys(): Promise<WebCrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as WebCrypto.CryptoKeyPair;
}

function toIssued(cert: x509.X509Certificate, privateKey: WebCrypto.CryptoKey): IssuedCertificate {
  const certPem = `${cert.toString('pem')}\n`;
  const keyPem = KeyObject.from(privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  return hideFromLogs(
    {
      certPem,
      keyPem,
      serialNumber: cert.serialNumber,
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      fingerprint256: new X509Certificate(certPem).fingerprint256,
    },
    (c) => ({ ...c, keyPem: '[redacted]' }),
  );
}

/** 16 random bytes, first byte 0x01-0x7f: positive and minimally encoded as a DER INTEGER. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) || 0x01;
  return bytes.toString('hex');
}

function validityWindow(days: number, notAfterCap?: Date): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  let notAfter = now + days * DAY_MS;
  if (notAfterCap && notAfterCap.getTime() < notAfter) notAfter = notAfterCap.getTime();
  // X.509 times have one-second resolution; truncate so what we report equals what is encoded.
  const second = (t: number): Date => new Date(Math.floor(t / 1000) * 1000);
  return { notBefore: second(now - BACKDATE_MS), notAfter: second(notAfter) };
}

function checkCommonName(cn: unknown): void {
  // 64 is the X.520 upper bound for commonName.
  if (typeof cn !== 'string' || cn.length === 0 || cn.length > 64) {
    throw invalid('commonName must be a string of 1 to 64 characters');
  }
}

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

function checkDnsName(name: unknown): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 253) {
    throw invalid(`dnsNames: ${JSON.stringify(name)} is not a DNS name`);
  }
  // An IP in a DNS SAN never matches (clients compare IPs against IP SANs only), so refuse it early.
  if (isIP(name) !== 0) throw invalid(`dnsNames: ${name} is an IP address; put it in ipAddresses`);
  const labels = name.split('.');
  const ok = labels.every((label, i) => DNS_LABEL.test(label) || (i === 0 && label === '*' && labels.length > 2));
  if (!ok) throw invalid(`dnsNames: ${JSON.stringify(name)} is not a valid DNS name`);
}

function checkUri(uri: unknown): void {
  // Printable ASCII without spaces, quotes or commas: what an IA5String URI holds, and what peers read back from
  // Node's SAN string without any unquoting.
  if (typeof uri !== 'string' || !/^[a-z][a-z0-9+.-]*:[\x21\x23-\x2b\x2d-\x7e]+$/i.test(uri) || !URL.canParse(uri)) {
    throw invalid(`uris: ${JSON.stringify(uri)} is not an absolute URI`);
  }
}
