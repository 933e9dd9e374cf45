/**
 * PKI for the local platform: a private CA, the relays' mTLS certificate, the operator's client
 * certificate and the relay's DTLS identity key, generated on first use into the state folder so a
 * newcomer needs nothing but Node.
 *
 * Hostname verification on loopback
 * ---------------------------------
 * Local relays listen on assorted 127.x.y.z addresses and a SAN cannot name an IP range. Rather
 * than turning hostname verification off, every relay certificate carries the DNS name
 * `relay.local` (RELAY_TLS_SERVERNAME), and clients connect to the relay's IP while verifying
 * against that name:
 *
 *   node:https / node:tls   https.request({ host: '127.0.0.7', port, servername: 'relay.local', ca, cert, key })
 *   undici                  new Agent({ connect: { ca, cert, key, servername: 'relay.local' } })
 *
 * Node verifies the peer certificate against `servername` when it is set, otherwise against
 * `host` (an IP then has to be an IP SAN). Setting it also sends it as SNI, which relays ignore:
 * they have a single certificate. In undici, `connect.servername` applies unless a request sets
 * its own `servername` or a Host header with a DNS name. The equivalent without servername is
 * `checkServerIdentity: (_host, cert) => tls.checkServerIdentity(RELAY_TLS_SERVERNAME, cert)`.
 * 127.0.0.1, ::1 and localhost are in the SANs too, so those work as plain hosts. A local relay
 * certificate proves "issued by this state folder's CA", which is exactly the trust boundary of
 * the local platform (one user, one machine). Use relayClientTlsOptions() /
 * operatorClientTlsOptions() rather than assembling options by hand.
 *
 * State folder layout: see localPkiPaths().
 */
// tsyringe (under @peculiar/x509) needs a Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, generateKeyPair, KeyObject, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import type { webcrypto as WebCrypto } from 'node:crypto';
import fs from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { inspect, promisify } from 'node:util';
import { PkiError } from './pki-errors.ts';
import type { PkiErrorCode } from './pki-errors.ts';
import { atomicWriteFile, removeStaleTempFiles, syncDirectory, withFileLock } from './pki-fs.ts';

export { PkiError } from './pki-errors.ts';
export type { PkiErrorCode } from './pki-errors.ts';

// As @peculiar/x509's docs say for Node: hand it Node's WebCrypto (globalThis.crypto is
// node:crypto's webcrypto). It would find it on its own; being explicit removes the guesswork.
x509.cryptoProvider.set(globalThis.crypto);

/** The DNS name every relay certificate carries; clients verify relays against it (see the header). */
export const RELAY_TLS_SERVERNAME = 'relay.local';

const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNATURE = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
// Certificates start slightly in the past so a peer whose clock is a little behind still accepts them.
const BACKDATE_MS = 5 * 60_000;
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;
const DIR_MODE = 0o700;

export type CertificateUsage = 'server' | 'client' | 'both';

export interface CreateCaOptions {
  commonName: string;
  validityDays: number;
}

export interface IssueCertificateOptions {
  commonName: string;
  dnsNames?: readonly string[];
  /** IPv4 or IPv6 literals, e.g. '127.0.0.1', '::1'. */
  ipAddresses?: readonly string[];
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

// ---------------------------------------------------------------------------------------------
// Certificate and key generation
// ---------------------------------------------------------------------------------------------

/** Creates a self-signed CA (ECDSA P-256, SHA-256) that may only issue end-entity certificates. */
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

/** Issues a leaf certificate (ECDSA P-256) signed by `ca`. */
export async function issueCertificate(ca: CaMaterial, options: IssueCertificateOptions): Promise<IssuedCertificate> {
  checkCommonName(options.commonName);
  checkValidityDays(options.validityDays, 'validityDays');
  if (options.usage !== 'server' && options.usage !== 'client' && options.usage !== 'both') {
    throw invalid(`usage must be 'server', 'client' or 'both', got ${JSON.stringify(options.usage)}`);
  }
  const dnsNames = [...(options.dnsNames ?? [])];
  const ipAddresses = [...(options.ipAddresses ?? [])];
  for (const name of dnsNames) checkDnsName(name);
  for (const ip of ipAddresses) {
    if (isIP(ip) === 0) throw invalid(`ipAddresses: ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
  }

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

  const signingKey = await webcrypto.subtle.importKey(
    'pkcs8',
    caKey.key.export({ type: 'pkcs8', format: 'der' }),
    EC_KEY,
    false,
    ['sign'],
  );
  // The AKI must equal the CA's SKI byte for byte, so copy it when present rather than recompute.
  const caSki = caX509.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const aki = caSki
    ? new x509.AuthorityKeyIdentifierExtension(caSki)
    : await x509.AuthorityKeyIdentifierExtension.create(caX509.publicKey);

  const keys = await generateEcKeys();
  const { notBefore, notAfter } = validityWindow(options.validityDays, caX509.notAfter);
  const ekus: string[] = [];
  if (options.usage !== 'client') ekus.push(x509.ExtendedKeyUsage.serverAuth);
  if (options.usage !== 'server') ekus.push(x509.ExtendedKeyUsage.clientAuth);
  const names: x509.JsonGeneralName[] = [
    ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
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
      new x509.ExtendedKeyUsageExtension(ekus, false),
      // An empty SAN extension is invalid DER, so omit it for name-less client certificates.
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
  return dtlsKeyPairFrom(privateKey);
}

function dtlsKeyPairFrom(privateKey: KeyObject): DtlsKeyPair {
  return hideFromLogs(
    {
      privateKeyPkcs8Pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      privateKeySec1Pem: privateKey.export({ type: 'sec1', format: 'pem' }) as string,
      publicKeySpkiDer: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }),
    },
    (k) => ({ publicKeySpkiDer: k.publicKeySpkiDer.toString('base64'), privateKey: '[redacted]' }),
  );
}

// ---------------------------------------------------------------------------------------------
// The local state folder
// ---------------------------------------------------------------------------------------------

export interface LocalPkiPaths {
  /** <stateDir>/pki, mode 0700. */
  dir: string;
  /** CA certificate: the trust anchor every relay and client is given as `ca`. */
  ca: string;
  /** CA private key (0600). Not loaded by ensureLocalPki; only needed to issue more certificates. */
  caKey: string;
  /** Relay certificate (serverAuth + clientAuth: relays also call each other for handover). */
  relayCert: string;
  relayKey: string;
  /** Operator (relayctl) client certificate. */
  operatorCert: string;
  operatorKey: string;
  /** Relay DTLS identity key, PKCS#8 PEM (0600). */
  dtlsKey: string;
  /** Its SubjectPublicKeyInfo, DER. */
  dtlsPublicKey: string;
  /** Held while the folder is inspected or written. */
  lock: string;
}

export function localPkiPaths(stateDir: string): LocalPkiPaths {
  const dir = path.join(path.resolve(stateDir), 'pki');
  return {
    dir,
    ca: path.join(dir, 'ca.pem'),
    caKey: path.join(dir, 'ca-key.pem'),
    relayCert: path.join(dir, 'relay.pem'),
    relayKey: path.join(dir, 'relay-key.pem'),
    operatorCert: path.join(dir, 'operator.pem'),
    operatorKey: path.join(dir, 'operator-key.pem'),
    dtlsKey: path.join(dir, 'dtls-key.pem'),
    dtlsPublicKey: path.join(dir, 'dtls-pub.der'),
    lock: path.join(dir, '.lock'),
  };
}

export type LocalPkiItem = 'ca' | 'relay' | 'operator' | 'dtls-key' | 'dtls-pub';

export type LocalPkiChangeReason =
  | 'missing'
  | 'corrupt'
  | 'expiring'
  | 'not-yet-valid'
  /** The CA was replaced, so certificates it signed had to be reissued. */
  | 'ca-replaced'
  /** A key file was readable by others; its mode was reset to 0600. */
  | 'permissions';

export interface LocalPkiChange {
  item: LocalPkiItem;
  /** created: nothing was there; regenerated: replaced with new key material; repaired: fixed without new key material. */
  action: 'created' | 'regenerated' | 'repaired';
  reason: LocalPkiChangeReason;
  /** Human-readable, names the file and what was wrong. Never contains key material. */
  detail: string;
}

export interface LocalPki {
  paths: LocalPkiPaths;
  /** What clients must verify relay certificates against (RELAY_TLS_SERVERNAME). */
  servername: string;
  /** created: the folder was empty; reused: nothing changed; updated: see `changes`. */
  status: 'created' | 'reused' | 'updated';
  changes: LocalPkiChange[];
  ca: { cert: Buffer; notAfter: Date };
  relay: { cert: Buffer; key: Buffer; notAfter: Date };
  operator: { cert: Buffer; key: Buffer; notAfter: Date };
  dtls: { key: Buffer; publicKeyDer: Buffer };
}

export interface EnsureLocalPkiOptions {
  /** Reissue certificates that expire within this many days. Default 7. */
  renewBeforeDays?: number;
  /** Default 3650. */
  caValidityDays?: number;
  /** Default 365. */
  leafValidityDays?: number;
  /** How long to wait for another process that is generating the PKI. Default 30 000 ms. */
  lockTimeoutMs?: number;
}

interface LeafProfile {
  item: 'relay' | 'operator';
  commonName: string;
  dnsNames: string[];
  ipAddresses: string[];
  usage: CertificateUsage;
}

const RELAY_PROFILE: LeafProfile = {
  item: 'relay',
  commonName: RELAY_TLS_SERVERNAME,
  dnsNames: ['localhost', RELAY_TLS_SERVERNAME],
  ipAddresses: ['127.0.0.1', '::1'],
  usage: 'both',
};

const OPERATOR_PROFILE: LeafProfile = {
  item: 'operator',
  commonName: 'relayctl-operator',
  dnsNames: [],
  ipAddresses: [],
  usage: 'client',
};

const CA_COMMON_NAME = 'relayctl local CA';

/**
 * Makes sure `<stateDir>/pki` holds a complete, valid PKI and returns it. Idempotent: existing
 * material is reused byte for byte; an item is (re)generated only if missing, corrupt, not issued
 * by the current CA, not matching the expected profile, or expiring within `renewBeforeDays`.
 * The DTLS key never expires and is only replaced when unreadable, because devices pin it.
 *
 * Safe to call from several processes and async callers at once: work happens under a lock file
 * and every file is written atomically. Prefer the returned buffers over re-reading the files,
 * since they are the set that was validated together.
 */
export async function ensureLocalPki(stateDir: string, options: EnsureLocalPkiOptions = {}): Promise<LocalPki> {
  const renewBeforeDays = options.renewBeforeDays ?? 7;
  const caValidityDays = options.caValidityDays ?? 3650;
  const leafValidityDays = options.leafValidityDays ?? 365;
  if (!Number.isFinite(renewBeforeDays) || renewBeforeDays < 0) throw invalid('renewBeforeDays must be >= 0');
  checkValidityDays(caValidityDays, 'caValidityDays');
  checkValidityDays(leafValidityDays, 'leafValidityDays');
  // Otherwise every call would find the fresh certificates already due for renewal.
  if (caValidityDays <= renewBeforeDays || leafValidityDays <= renewBeforeDays) {
    throw invalid('caValidityDays and leafValidityDays must be greater than renewBeforeDays');
  }
  if (typeof stateDir !== 'string' || stateDir === '') throw invalid('stateDir must be a non-empty path');

  const paths = localPkiPaths(stateDir);
  try {
    await fs.mkdir(paths.dir, { recursive: true, mode: DIR_MODE });
  } catch (err) {
    throw new PkiError('ERR_PKI_IO', `could not create ${paths.dir}: ${(err as Error).message}`, { file: paths.dir, cause: err });
  }
  return withFileLock(paths.lock, { timeoutMs: options.lockTimeoutMs ?? 30_000, staleMs: 120_000 }, () =>
    ensureLocked(paths, { renewMs: renewBeforeDays * DAY_MS, caValidityDays, leafValidityDays }),
  );
}

/**
 * Read-only counterpart of ensureLocalPki for processes that must not mint certificates (e.g. a
 * relay started by the platform after it ran ensureLocalPki). Throws PkiError ERR_PKI_MISSING,
 * ERR_PKI_CORRUPT or ERR_PKI_EXPIRED naming the first bad file.
 */
export async function loadLocalPki(
  stateDir: string,
  options: { renewBeforeDays?: number; lockTimeoutMs?: number } = {},
): Promise<LocalPki> {
  const paths = localPkiPaths(stateDir);
  const renewMs = (options.renewBeforeDays ?? 0) * DAY_MS;
  try {
    await fs.access(paths.dir);
  } catch {
    throw new PkiError('ERR_PKI_MISSING', `${paths.ca} does not exist (no PKI in ${paths.dir})`, { file: paths.ca });
  }
  // The lock keeps us from reading a set that ensureLocalPki is halfway through replacing.
  return withFileLock(paths.lock, { timeoutMs: options.lockTimeoutMs ?? 30_000, staleMs: 120_000 }, () =>
    loadLocked(paths, renewMs),
  );
}

async function loadLocked(paths: LocalPkiPaths, renewMs: number): Promise<LocalPki> {
  const now = Date.now();
  const ca = await inspectCa(paths, now, renewMs);
  if (!ca.ok) throw ca.problem.toError();
  const relay = await inspectLeaf(paths, RELAY_PROFILE, ca.cert, now, renewMs);
  if (!relay.ok) throw relay.problem.toError();
  const operator = await inspectLeaf(paths, OPERATOR_PROFILE, ca.cert, now, renewMs);
  if (!operator.ok) throw operator.problem.toError();
  const dtls = await inspectDtls(paths);
  if (!dtls.ok) throw dtls.problem.toError();
  if (!dtls.publicKeyDer) {
    throw new PkiError('ERR_PKI_CORRUPT', `${paths.dtlsPublicKey}: expected the DER SubjectPublicKeyInfo of ${paths.dtlsKey}`, {
      file: paths.dtlsPublicKey,
    });
  }
  return assemble(paths, 'reused', [], ca, relay, operator, { key: dtls.key, publicKeyDer: dtls.publicKeyDer });
}

/** TLS options for a relay's management HTTPS server: mTLS required, only this CA trusted. */
export function relayServerTlsOptions(pki: LocalPki): {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  requestCert: true;
  rejectUnauthorized: true;
} {
  return { ca: pki.ca.cert, cert: pki.relay.cert, key: pki.relay.key, requestCert: true, rejectUnauthorized: true };
}

/** Client TLS options for relay-to-relay calls (node:https options or undici `connect`). */
export function relayClientTlsOptions(pki: LocalPki): { ca: Buffer; cert: Buffer; key: Buffer; servername: string } {
  return { ca: pki.ca.cert, cert: pki.relay.cert, key: pki.relay.key, servername: pki.servername };
}

/** Client TLS options for relayctl talking to relays (node:https options or undici `connect`). */
export function operatorClientTlsOptions(pki: LocalPki): { ca: Buffer; cert: Buffer; key: Buffer; servername: string } {
  return { ca: pki.ca.cert, cert: pki.operator.cert, key: pki.operator.key, servername: pki.servername };
}

// ---------------------------------------------------------------------------------------------
// ensureLocalPki internals
// ---------------------------------------------------------------------------------------------

/** Why an item cannot be reused. Becomes a LocalPkiChange (ensure) or a PkiError (load). */
class Problem {
  readonly code: PkiErrorCode;
  readonly reason: LocalPkiChangeReason;
  readonly file: string;
  readonly message: string;
  /** True when none of the item's files existed (so "created" rather than "regenerated"). */
  readonly absent: boolean;

  constructor(code: PkiErrorCode, reason: LocalPkiChangeReason, file: string, message: string, absent = false) {
    this.code = code;
    this.reason = reason;
    this.file = file;
    this.message = message;
    this.absent = absent;
  }

  toError(): PkiError {
    return new PkiError(this.code, this.message, { file: this.file });
  }
}

type Inspected<T> = ({ ok: true } & T) | { ok: false; problem: Problem };

interface CertPair {
  certBuf: Buffer;
  keyBuf: Buffer;
  cert: X509Certificate;
}

async function readOptional(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // Unreadable (EACCES, EISDIR...) is not something to paper over by overwriting.
    throw new PkiError('ERR_PKI_IO', `could not read ${file}: ${(err as Error).message}`, { file, cause: err });
  }
}

async function readPair(certFile: string, keyFile: string): Promise<Inspected<{ certBuf: Buffer; keyBuf: Buffer }>> {
  const [certBuf, keyBuf] = await Promise.all([readOptional(certFile), readOptional(keyFile)]);
  if (!certBuf || !keyBuf) {
    const missing = !certBuf ? certFile : keyFile;
    return {
      ok: false,
      problem: new Problem('ERR_PKI_MISSING', 'missing', missing, `${missing} does not exist`, !certBuf && !keyBuf),
    };
  }
  return { ok: true, certBuf, keyBuf };
}

/** Checks a certificate/key pair on disk: parses, key is P-256 and matches, validity window. */
function checkPair(
  certFile: string,
  keyFile: string,
  certBuf: Buffer,
  keyBuf: Buffer,
  now: number,
  renewMs: number,
): Inspected<{ cert: X509Certificate }> {
  const cert = parseCertificate(certBuf);
  if (!cert || !certBuf.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
    return corrupt(certFile, 'expected a PEM "CERTIFICATE"');
  }
  const key = parseP256PrivateKey(keyBuf);
  if (!key.ok) return corrupt(keyFile, `expected a PEM P-256 private key: ${key.problem}`);
  if (!cert.checkPrivateKey(key.key)) return corrupt(keyFile, `expected the private key of ${path.basename(certFile)}, found a different key`);
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (notBefore > now) {
    return {
      ok: false,
      problem: new Problem('ERR_PKI_EXPIRED', 'not-yet-valid', certFile, `${certFile} is not valid before ${cert.validFrom} (clock went back?)`),
    };
  }
  if (notAfter - renewMs <= now) {
    const state = notAfter <= now ? 'expired' : 'expires';
    return {
      ok: false,
      problem: new Problem('ERR_PKI_EXPIRED', 'expiring', certFile, `${certFile} ${state} at ${new Date(notAfter).toISOString()}`),
    };
  }
  return { ok: true, cert };
}

async function inspectCa(paths: LocalPkiPaths, now: number, renewMs: number): Promise<Inspected<CertPair>> {
  const pair = await readPair(paths.ca, paths.caKey);
  if (!pair.ok) return pair;
  const checked = checkPair(paths.ca, paths.caKey, pair.certBuf, pair.keyBuf, now, renewMs);
  if (!checked.ok) return checked;
  if (!checked.cert.ca) return corrupt(paths.ca, 'expected a CA certificate (basicConstraints CA:TRUE)');
  return { ok: true, certBuf: pair.certBuf, keyBuf: pair.keyBuf, cert: checked.cert };
}

async function inspectLeaf(
  paths: LocalPkiPaths,
  profile: LeafProfile,
  ca: X509Certificate,
  now: number,
  renewMs: number,
): Promise<Inspected<CertPair>> {
  const [certFile, keyFile] = leafFiles(paths, profile);
  const pair = await readPair(certFile, keyFile);
  if (!pair.ok) return pair;
  const checked = checkPair(certFile, keyFile, pair.certBuf, pair.keyBuf, now, renewMs);
  if (!checked.ok) return checked;
  const cert = checked.cert;
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    return corrupt(certFile, `expected a certificate issued by ${path.basename(paths.ca)}, found one from "${cert.issuer}"`);
  }
  // A profile change in a newer version (e.g. a new SAN) must reach existing state folders too.
  // checkHost/checkIP are the very checks TLS hostname verification makes.
  for (const name of profile.dnsNames) {
    if (cert.checkHost(name, { wildcards: false }) === undefined) return corrupt(certFile, `expected subjectAltName DNS:${name}`);
  }
  for (const ip of profile.ipAddresses) {
    if (cert.checkIP(ip) === undefined) return corrupt(certFile, `expected subjectAltName IP:${ip}`);
  }
  const ekus = cert.keyUsage ?? []; // node:crypto names the extended key usage list `keyUsage`.
  const wanted = [
    ...(profile.usage !== 'client' ? [x509.ExtendedKeyUsage.serverAuth as string] : []),
    ...(profile.usage !== 'server' ? [x509.ExtendedKeyUsage.clientAuth as string] : []),
  ];
  for (const oid of wanted) {
    if (!ekus.includes(oid)) return corrupt(certFile, `expected extendedKeyUsage ${oid}`);
  }
  return { ok: true, certBuf: pair.certBuf, keyBuf: pair.keyBuf, cert };
}

async function inspectDtls(paths: LocalPkiPaths): Promise<Inspected<{ key: Buffer; derivedPublicKeyDer: Buffer; publicKeyDer: Buffer | undefined }>> {
  const [keyBuf, pubBuf] = await Promise.all([readOptional(paths.dtlsKey), readOptional(paths.dtlsPublicKey)]);
  if (!keyBuf) {
    return { ok: false, problem: new Problem('ERR_PKI_MISSING', 'missing', paths.dtlsKey, `${paths.dtlsKey} does not exist`, !pubBuf) };
  }
  const key = parseP256PrivateKey(keyBuf);
  if (!key.ok) return corrupt(paths.dtlsKey, `expected a PEM P-256 private key: ${key.problem}`);
  const derived = createPublicKey(key.key).export({ type: 'spki', format: 'der' });
  // A missing or stale public key file is derived again, never a reason to change the identity.
  return { ok: true, key: keyBuf, derivedPublicKeyDer: derived, publicKeyDer: pubBuf && pubBuf.equals(derived) ? pubBuf : undefined };
}

function leafFiles(paths: LocalPkiPaths, profile: LeafProfile): [string, string] {
  return profile.item === 'relay' ? [paths.relayCert, paths.relayKey] : [paths.operatorCert, paths.operatorKey];
}

interface EnsureSettings {
  renewMs: number;
  caValidityDays: number;
  leafValidityDays: number;
}

async function ensureLocked(paths: LocalPkiPaths, settings: EnsureSettings): Promise<LocalPki> {
  await removeStaleTempFiles(paths.dir, 60_000);
  const now = Date.now();
  const changes: LocalPkiChange[] = [];
  let wrote = false;

  const change = (item: LocalPkiItem, problem: Problem, repaired = false): void => {
    changes.push({
      item,
      action: repaired ? 'repaired' : problem.absent ? 'created' : 'regenerated',
      reason: problem.reason,
      detail: problem.message,
    });
  };

  // CA first: if it changes, every leaf must be reissued.
  let ca: CertPair;
  const caInspected = await inspectCa(paths, now, settings.renewMs);
  let caReplaced = false;
  if (caInspected.ok) {
    ca = caInspected;
  } else {
    change('ca', caInspected.problem);
    const fresh = await createCa({ commonName: CA_COMMON_NAME, validityDays: settings.caValidityDays });
    ca = await writePair(paths.ca, paths.caKey, fresh);
    caReplaced = true;
    wrote = true;
  }

  const leaves: Record<'relay' | 'operator', CertPair> = {} as Record<'relay' | 'operator', CertPair>;
  for (const profile of [RELAY_PROFILE, OPERATOR_PROFILE]) {
    const [certFile, keyFile] = leafFiles(paths, profile);
    let problem: Problem | undefined;
    if (caReplaced) {
      const existing = await readPair(certFile, keyFile);
      problem = existing.ok || !existing.problem.absent
        ? new Problem('ERR_PKI_CORRUPT', 'ca-replaced', certFile, `${certFile} was issued by the previous CA`)
        : existing.problem;
    } else {
      const inspected = await inspectLeaf(paths, profile, ca.cert, now, settings.renewMs);
      if (inspected.ok) leaves[profile.item] = inspected;
      else problem = inspected.problem;
    }
    if (problem) {
      change(profile.item, problem);
      const fresh = await issueCertificate(
        { certPem: ca.certBuf, keyPem: ca.keyBuf },
        {
          commonName: profile.commonName,
          dnsNames: profile.dnsNames,
          ipAddresses: profile.ipAddresses,
          usage: profile.usage,
          validityDays: settings.leafValidityDays,
        },
      );
      leaves[profile.item] = await writePair(certFile, keyFile, fresh);
      wrote = true;
    }
  }

  let dtlsKey: Buffer;
  let dtlsPub: Buffer;
  const dtls = await inspectDtls(paths);
  if (dtls.ok) {
    dtlsKey = dtls.key;
    if (dtls.publicKeyDer) {
      dtlsPub = dtls.publicKeyDer;
    } else {
      const existed = (await readOptional(paths.dtlsPublicKey)) !== undefined;
      changes.push({
        item: 'dtls-pub',
        action: 'repaired',
        reason: existed ? 'corrupt' : 'missing',
        detail: existed
          ? `${paths.dtlsPublicKey} did not hold the public key of ${paths.dtlsKey}; derived it again`
          : `${paths.dtlsPublicKey} did not exist; derived it from ${paths.dtlsKey}`,
      });
      dtlsPub = dtls.derivedPublicKeyDer;
      await atomicWriteFile(paths.dtlsPublicKey, dtlsPub, CERT_MODE);
      wrote = true;
    }
  } else {
    change('dtls-key', dtls.problem);
    const fresh = await generateDtlsKeyPair();
    dtlsKey = Buffer.from(fresh.privateKeyPkcs8Pem);
    dtlsPub = fresh.publicKeySpkiDer;
    await atomicWriteFile(paths.dtlsKey, dtlsKey, KEY_MODE);
    await atomicWriteFile(paths.dtlsPublicKey, dtlsPub, CERT_MODE);
    wrote = true;
  }

  // Reused key files must still be private; a copy with `cp` or an unusual umask can widen them.
  if (process.platform !== 'win32') {
    const keyFiles: Array<[LocalPkiItem, string]> = [
      ['ca', paths.caKey],
      ['relay', paths.relayKey],
      ['operator', paths.operatorKey],
      ['dtls-key', paths.dtlsKey],
    ];
    for (const [item, file] of keyFiles) {
      const mode = (await fs.stat(file)).mode & 0o777;
      if (mode !== KEY_MODE) {
        await fs.chmod(file, KEY_MODE);
        changes.push({
          item,
          action: 'repaired',
          reason: 'permissions',
          detail: `${file} had mode 0${mode.toString(8)}; set to 0600`,
        });
      }
    }
    const dirMode = (await fs.stat(paths.dir)).mode & 0o777;
    if (dirMode !== DIR_MODE) await fs.chmod(paths.dir, DIR_MODE);
  }

  if (wrote) await syncDirectory(paths.dir);
  const allCreated = changes.length > 0 && ['ca', 'relay', 'operator', 'dtls-key'].every((item) =>
    changes.some((c) => c.item === item && c.action === 'created'),
  );
  const status = changes.length === 0 ? 'reused' : allCreated ? 'created' : 'updated';
  return assemble(paths, status, changes, ca, leaves.relay, leaves.operator, { key: dtlsKey, publicKeyDer: dtlsPub });
}

async function writePair(certFile: string, keyFile: string, issued: IssuedCertificate): Promise<CertPair> {
  const keyBuf = Buffer.from(issued.keyPem);
  const certBuf = Buffer.from(issued.certPem);
  await atomicWriteFile(keyFile, keyBuf, KEY_MODE);
  await atomicWriteFile(certFile, certBuf, CERT_MODE);
  return { certBuf, keyBuf, cert: new X509Certificate(certBuf) };
}

function assemble(
  paths: LocalPkiPaths,
  status: LocalPki['status'],
  changes: LocalPkiChange[],
  ca: CertPair,
  relay: CertPair,
  operator: CertPair,
  dtls: { key: Buffer; publicKeyDer: Buffer },
): LocalPki {
  const pki: LocalPki = {
    paths,
    servername: RELAY_TLS_SERVERNAME,
    status,
    changes,
    ca: { cert: ca.certBuf, notAfter: new Date(ca.cert.validTo) },
    relay: { cert: relay.certBuf, key: relay.keyBuf, notAfter: new Date(relay.cert.validTo) },
    operator: { cert: operator.certBuf, key: operator.keyBuf, notAfter: new Date(operator.cert.validTo) },
    dtls,
  };
  return hideFromLogs(pki, (p) => ({
    paths: p.paths,
    servername: p.servername,
    status: p.status,
    changes: p.changes,
    notAfter: { ca: p.ca.notAfter, relay: p.relay.notAfter, operator: p.operator.notAfter },
    dtlsPublicKey: p.dtls.publicKeyDer.toString('base64'),
  }));
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function corrupt(file: string, expected: string): { ok: false; problem: Problem } {
  return { ok: false, problem: new Problem('ERR_PKI_CORRUPT', 'corrupt', file, `${file}: ${expected}`) };
}

function invalid(message: string): PkiError {
  return new PkiError('ERR_PKI_INVALID_ARGUMENT', message);
}

function parseCertificate(data: string | Buffer): X509Certificate | undefined {
  try {
    return new X509Certificate(data);
  } catch {
    return undefined;
  }
}

function parseP256PrivateKey(data: string | Buffer): { ok: true; key: KeyObject } | { ok: false; problem: string } {
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

function checkValidityDays(days: unknown, what: string): void {
  if (typeof days !== 'number' || !Number.isFinite(days) || days <= 0 || days > 36_500) {
    throw invalid(`${what} must be a number of days in (0, 36500]`);
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

/**
 * Makes `util.inspect` and `JSON.stringify` (and so pino) show `view(obj)` instead of the object,
 * so a stray log line cannot leak a private key. Properties stay ordinary and enumerable.
 */
function hideFromLogs<T extends object>(obj: T, view: (o: T) => unknown): T {
  Object.defineProperty(obj, 'toJSON', { value: () => view(obj), enumerable: false });
  Object.defineProperty(obj, inspect.custom, {
    value: (_depth: number, opts: object) => inspect(view(obj), opts),
    enumerable: false,
  });
  return obj;
}
