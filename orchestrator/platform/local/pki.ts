/**
 * The local platform's PKI folder, <stateDir>/pki: a private CA, the relays' certificate (relay role), relayctl's
 * client certificate (operator role) and the relays' DTLS identity key, made on first use so a newcomer needs
 * nothing but Node. ensureLocalPki validates what is there and regenerates what is wrong; loadLocalPki only
 * validates. Generation and the checks are ../../../pki/.
 *
 * Hostname verification on loopback
 * ---------------------------------
 * Local relays listen on assorted 127.x.y.z addresses and a SAN cannot name an IP range. Rather than turning
 * hostname verification off, the relay certificate carries the DNS name `relay.local` (RELAY_TLS_SERVERNAME), and
 * clients connect to the relay's IP while verifying against that name:
 *
 *   node:https / node:tls   https.request({ host: '127.0.0.7', port, servername: 'relay.local', ca, cert, key })
 *   undici                  new Agent({ connect: { ca, cert, key, servername: 'relay.local' } })
 *
 * Node verifies the peer certificate against `servername` when it is set, otherwise against `host` (an IP then has
 * to be an IP SAN). Setting it also sends it as SNI, which relays ignore: they have a single certificate.
 * 127.0.0.1, ::1 and localhost are in the SANs too, so those work as plain hosts. A local relay certificate proves
 * "issued by this state folder's CA", which is exactly the trust boundary of the local platform (one user, one
 * machine). Use relayClientTlsOptions() / operatorClientTlsOptions() rather than assembling options by hand.
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { checkCa, checkCertificateAndKey, checkIssuedBy, checkRoleProfile, type CheckFailure, type CheckResult } from '../../../pki/checks.ts';
import { checkValidityDays, createCa, DAY_MS, generateDtlsKeyPair, hideFromLogs, invalid, parseP256PrivateKey, type IssuedCertificate } from '../../../pki/certificates.ts';
import { PkiError, type PkiErrorCode } from '../../../pki/errors.ts';
import { issueForRole, operatorProfile, relayProfile, type RoleProfile } from '../../../pki/roles.ts';
import { removeStaleTempFiles, syncDirectory, withFileLock, writeFileAtomic, type FileErrors } from './atomic-files.ts';

/** The DNS name every local relay certificate carries; clients verify relays against it (see the header). */
export const RELAY_TLS_SERVERNAME = 'relay.local';

const CA_COMMON_NAME = 'relayctl local CA';
const LEAVES: ReadonlyArray<{ item: 'relay' | 'operator'; profile: RoleProfile }> = [
  { item: 'relay', profile: relayProfile({ dnsNames: [RELAY_TLS_SERVERNAME, 'localhost'], ipAddresses: ['127.0.0.1', '::1'] }) },
  { item: 'operator', profile: operatorProfile() },
];
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;
const DIR_MODE = 0o700;

const PKI_ERRORS: FileErrors = {
  io: (message, file, cause) => new PkiError('ERR_PKI_IO', message, { file, cause }),
  lockTimeout: (message, file) => new PkiError('ERR_PKI_LOCK_TIMEOUT', `timed out waiting: ${message}`, { file }),
};

export interface LocalPkiPaths {
  /** <stateDir>/pki, mode 0700. */
  dir: string;
  /** CA certificate: the trust anchor every relay and client is given as `ca`. */
  ca: string;
  /** CA private key (0600); only needed to issue certificates. */
  caKey: string;
  /** Relay certificate (relay role). */
  relayCert: string;
  relayKey: string;
  /** Operator (relayctl) client certificate (operator role). */
  operatorCert: string;
  operatorKey: string;
  /** Relay DTLS identity key, PKCS#8 PEM (0600). */
  dtlsKey: string;
  /** Its SubjectPublicKeyInfo, DER: what devices pin. */
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

/**
 * Why an item was wrong. CheckFailure's, plus: missing; ca-replaced (a certificate of the CA that had to be
 * replaced); permissions (a key file others could read: its mode is set back to 0600, its bytes are kept).
 */
export type LocalPkiChangeReason = 'missing' | CheckFailure | 'ca-replaced' | 'permissions';

/** An item ensureLocalPki found wrong and made again (a derived public key or a file mode: fixed in place). */
export interface LocalPkiChange {
  item: LocalPkiItem;
  reason: LocalPkiChangeReason;
  /** Names the file and what was expected. Never contains key material. */
  detail: string;
}

interface Material {
  cert: Buffer;
  key: Buffer;
  notAfter: Date;
  /** SHA-256, colon-separated hex (X509Certificate.fingerprint256): says which certificate a process runs with. */
  fingerprint256: string;
}

export interface LocalPki {
  paths: LocalPkiPaths;
  /** What clients must verify relay certificates against (RELAY_TLS_SERVERNAME). */
  servername: string;
  /** created: the folder was empty; reused: nothing was wrong; updated: see `changes`. */
  status: 'created' | 'reused' | 'updated';
  changes: LocalPkiChange[];
  ca: { cert: Buffer; notAfter: Date };
  relay: Material;
  operator: Material;
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

/**
 * Makes sure `<stateDir>/pki` holds a complete, valid PKI and returns it: validate every item, regenerate what is
 * wrong (missing, corrupt, expiring, not from the current CA, or not what this version issues, e.g. without its
 * role), reuse the rest byte for byte. A new CA means new certificates for both roles. The DTLS key never expires
 * and is replaced only when unreadable, because devices pin it.
 *
 * Processes already running with a replaced certificate keep the old one in memory: deploy restarts them.
 *
 * Safe to call from several processes and async callers at once (a lock file; atomic writes). Prefer the returned
 * buffers over re-reading the files: they are the set that was validated together.
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
  return withFileLock(paths.lock, { timeoutMs: options.lockTimeoutMs ?? 30_000, staleMs: 120_000 }, PKI_ERRORS, async () => {
    await removeStaleTempFiles(paths.dir, 60_000);
    const found = await inspectFolder(paths, { now: Date.now(), renewBeforeMs: renewBeforeDays * DAY_MS });
    return regenerateWrong(paths, found, { caValidityDays, leafValidityDays });
  });
}

/**
 * Read-only counterpart of ensureLocalPki for processes that must not mint certificates (the platform, the local
 * service). Throws PkiError ERR_PKI_MISSING, ERR_PKI_CORRUPT (outdated material included: deploy regenerates it)
 * or ERR_PKI_EXPIRED naming the first wrong file.
 */
export async function loadLocalPki(stateDir: string, options: { renewBeforeDays?: number; lockTimeoutMs?: number } = {}): Promise<LocalPki> {
  const paths = localPkiPaths(stateDir);
  try {
    await fs.access(paths.dir);
  } catch {
    throw new PkiError('ERR_PKI_MISSING', `${paths.ca} does not exist (no PKI in ${paths.dir})`, { file: paths.ca });
  }
  // The lock keeps us from reading a set that ensureLocalPki is halfway through replacing.
  return withFileLock(paths.lock, { timeoutMs: options.lockTimeoutMs ?? 30_000, staleMs: 120_000 }, PKI_ERRORS, async () => {
    const found = await inspectFolder(paths, { now: Date.now(), renewBeforeMs: (options.renewBeforeDays ?? 0) * DAY_MS });
    // In this order, so the error names the root cause (a bad CA before the leaves it makes wrong).
    const [ca, relay, operator, dtls] = [must(found.ca), must(found.leaves.relay), must(found.leaves.operator), must(found.dtls)];
    if (found.dtlsPublicKey !== null) throw toPkiError(found.dtlsPublicKey);
    return assemble(paths, 'reused', [], ca, relay, operator, dtls);
  });
}

/** TLS options for a relay's management HTTPS server: mTLS required, only this CA trusted. */
export function relayServerTlsOptions(pki: LocalPki): { ca: Buffer; cert: Buffer; key: Buffer; requestCert: true; rejectUnauthorized: true } {
  return { ca: pki.ca.cert, cert: pki.relay.cert, key: pki.relay.key, requestCert: true, rejectUnauthorized: true };
}

/** Client TLS options for relay-to-relay calls (node:https options or undici `connect`): the relay role. */
export function relayClientTlsOptions(pki: LocalPki): { ca: Buffer; cert: Buffer; key: Buffer; servername: string } {
  return { ca: pki.ca.cert, cert: pki.relay.cert, key: pki.relay.key, servername: pki.servername };
}

/** Client TLS options for relayctl talking to relays (node:https options or undici `connect`): the operator role. */
export function operatorClientTlsOptions(pki: LocalPki): { ca: Buffer; cert: Buffer; key: Buffer; servername: string } {
  return { ca: pki.ca.cert, cert: pki.operator.cert, key: pki.operator.key, servername: pki.servername };
}

// ---- validate --------------------------------------------------------------------------------------------------

interface Wrong {
  item: LocalPkiItem;
  reason: LocalPkiChangeReason;
  file: string;
  detail: string;
}

type Checked<T> = { ok: true; value: T } | { ok: false; wrong: Wrong };

interface CertPair {
  certBuf: Buffer;
  keyBuf: Buffer;
  cert: X509Certificate;
}

interface DtlsKey {
  key: Buffer;
  publicKeyDer: Buffer;
}

interface Inspection {
  ca: Checked<CertPair>;
  leaves: Record<'relay' | 'operator', Checked<CertPair>>;
  dtls: Checked<DtlsKey>;
  /** dtls-pub.der missing or not the key's public key (derived from the key, never a reason to change it). */
  dtlsPublicKey: Wrong | null;
  /** Key files others may read. */
  widenedKeys: Wrong[];
}

async function inspectFolder(paths: LocalPkiPaths, at: { now: number; renewBeforeMs: number }): Promise<Inspection> {
  const ca = await inspectPair('ca', paths.ca, paths.caKey, at, (cert) => checkCa(cert));
  const leaf = async (item: 'relay' | 'operator', profile: RoleProfile): Promise<Checked<CertPair>> => {
    const [certFile, keyFile] = leafFiles(paths, item);
    if (!ca.ok) {
      // Nothing to check a leaf against: it goes with the CA.
      const missing = await readPair(item, certFile, keyFile);
      return missing.ok ? { ok: false, wrong: { item, reason: 'ca-replaced', file: certFile, detail: `${certFile} was issued by the CA being replaced` } } : missing;
    }
    const caName = path.basename(paths.ca);
    return inspectPair(item, certFile, keyFile, at, (cert) => {
      const issued = checkIssuedBy(cert, ca.value.cert, caName);
      return issued.ok ? checkRoleProfile(cert, profile) : issued;
    });
  };
  const leaves = {} as Inspection['leaves'];
  for (const { item, profile } of LEAVES) leaves[item] = await leaf(item, profile);
  const dtls = await inspectDtlsKey(paths);
  let dtlsPublicKey: Wrong | null = null;
  if (dtls.ok) {
    const onDisk = await readOptional(paths.dtlsPublicKey);
    if (onDisk === undefined) {
      dtlsPublicKey = { item: 'dtls-pub', reason: 'missing', file: paths.dtlsPublicKey, detail: `${paths.dtlsPublicKey} does not exist; derived from ${paths.dtlsKey}` };
    } else if (!onDisk.equals(dtls.value.publicKeyDer)) {
      dtlsPublicKey = {
        item: 'dtls-pub',
        reason: 'corrupt',
        file: paths.dtlsPublicKey,
        detail: `${paths.dtlsPublicKey}: expected the DER SubjectPublicKeyInfo of ${paths.dtlsKey}; derived it again`,
      };
    }
  }
  const widenedKeys: Wrong[] = [];
  if (process.platform !== 'win32') {
    for (const [item, file] of [['ca', paths.caKey], ['relay', paths.relayKey], ['operator', paths.operatorKey], ['dtls-key', paths.dtlsKey]] as const) {
      const mode = ((await fs.stat(file).catch(() => undefined))?.mode ?? KEY_MODE) & 0o777;
      if (mode !== KEY_MODE) widenedKeys.push({ item, reason: 'permissions', file, detail: `${file} had mode 0${mode.toString(8)}; set to 0600` });
    }
  }
  return { ca, leaves, dtls, dtlsPublicKey, widenedKeys };
}

async function inspectPair(
  item: LocalPkiItem,
  certFile: string,
  keyFile: string,
  at: { now: number; renewBeforeMs: number },
  check: (cert: X509Certificate) => CheckResult<object>,
): Promise<Checked<CertPair>> {
  const pair = await readPair(item, certFile, keyFile);
  if (!pair.ok) return pair;
  const { certBuf, keyBuf } = pair.value;
  const wrong = (failed: Extract<CheckResult<object>, { ok: false }>): Checked<CertPair> => {
    const file = failed.in === 'key' ? keyFile : certFile;
    return { ok: false, wrong: { item, reason: failed.failure, file, detail: `${file}: expected ${failed.expected}` } };
  };
  const sound = checkCertificateAndKey(certBuf, keyBuf, at);
  if (!sound.ok) return wrong(sound);
  const fits = check(sound.cert);
  if (!fits.ok) return wrong(fits);
  return { ok: true, value: { certBuf, keyBuf, cert: sound.cert } };
}

async function inspectDtlsKey(paths: LocalPkiPaths): Promise<Checked<DtlsKey>> {
  const keyBuf = await readOptional(paths.dtlsKey);
  if (keyBuf === undefined) return { ok: false, wrong: { item: 'dtls-key', reason: 'missing', file: paths.dtlsKey, detail: `${paths.dtlsKey} does not exist` } };
  const key = parseP256PrivateKey(keyBuf);
  if (!key.ok) {
    return { ok: false, wrong: { item: 'dtls-key', reason: 'corrupt', file: paths.dtlsKey, detail: `${paths.dtlsKey}: expected a PEM P-256 private key: ${key.problem}` } };
  }
  return { ok: true, value: { key: keyBuf, publicKeyDer: createPublicKey(key.key).export({ type: 'spki', format: 'der' }) } };
}

async function readPair(item: LocalPkiItem, certFile: string, keyFile: string): Promise<Checked<{ certBuf: Buffer; keyBuf: Buffer }>> {
  const [certBuf, keyBuf] = await Promise.all([readOptional(certFile), readOptional(keyFile)]);
  if (certBuf === undefined || keyBuf === undefined) {
    const missing = certBuf === undefined ? certFile : keyFile;
    return { ok: false, wrong: { item, reason: 'missing', file: missing, detail: `${missing} does not exist` } };
  }
  return { ok: true, value: { certBuf, keyBuf } };
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

function leafFiles(paths: LocalPkiPaths, item: 'relay' | 'operator'): [string, string] {
  return item === 'relay' ? [paths.relayCert, paths.relayKey] : [paths.operatorCert, paths.operatorKey];
}

const ERROR_CODES: Readonly<Record<LocalPkiChangeReason, PkiErrorCode>> = {
  missing: 'ERR_PKI_MISSING',
  corrupt: 'ERR_PKI_CORRUPT',
  outdated: 'ERR_PKI_CORRUPT',
  'ca-replaced': 'ERR_PKI_CORRUPT',
  permissions: 'ERR_PKI_CORRUPT',
  expiring: 'ERR_PKI_EXPIRED',
  'not-yet-valid': 'ERR_PKI_EXPIRED',
};

function toPkiError(wrong: Wrong): PkiError {
  const hint = wrong.reason === 'outdated' ? ' (issued by an older relayctl: deploy regenerates it)' : '';
  return new PkiError(ERROR_CODES[wrong.reason], `${wrong.detail}${hint}`, { file: wrong.file });
}

function must<T>(checked: Checked<T>): T {
  if (!checked.ok) throw toPkiError(checked.wrong);
  return checked.value;
}

// ---- regenerate what is wrong -----------------------------------------------------------------------------------

async function regenerateWrong(
  paths: LocalPkiPaths,
  found: Inspection,
  validity: { caValidityDays: number; leafValidityDays: number },
): Promise<LocalPki> {
  const changes: LocalPkiChange[] = [];
  const regenerated = new Set<LocalPkiItem>();
  const note = (wrong: Wrong): void => {
    changes.push({ item: wrong.item, reason: wrong.reason, detail: wrong.detail });
    regenerated.add(wrong.item);
  };

  let ca: CertPair;
  if (found.ca.ok) {
    ca = found.ca.value;
  } else {
    note(found.ca.wrong);
    ca = await writePair(paths.ca, paths.caKey, await createCa({ commonName: CA_COMMON_NAME, validityDays: validity.caValidityDays }));
  }
  const leaves = {} as Record<'relay' | 'operator', CertPair>;
  for (const { item, profile } of LEAVES) {
    const checked = found.leaves[item];
    if (checked.ok) {
      leaves[item] = checked.value;
      continue;
    }
    note(checked.wrong);
    const [certFile, keyFile] = leafFiles(paths, item);
    leaves[item] = await writePair(certFile, keyFile, await issueForRole({ certPem: ca.certBuf, keyPem: ca.keyBuf }, profile, validity.leafValidityDays));
  }
  let dtls: DtlsKey;
  if (found.dtls.ok) {
    dtls = found.dtls.value;
    if (found.dtlsPublicKey !== null) {
      note(found.dtlsPublicKey);
      await writeFileAtomic(paths.dtlsPublicKey, dtls.publicKeyDer, CERT_MODE, PKI_ERRORS);
    }
  } else {
    note(found.dtls.wrong);
    const fresh = await generateDtlsKeyPair();
    dtls = { key: Buffer.from(fresh.privateKeyPkcs8Pem), publicKeyDer: fresh.publicKeySpkiDer };
    await writeFileAtomic(paths.dtlsKey, dtls.key, KEY_MODE, PKI_ERRORS);
    await writeFileAtomic(paths.dtlsPublicKey, dtls.publicKeyDer, CERT_MODE, PKI_ERRORS);
  }
  // A key copied with `cp` or under an unusual umask: private again, same bytes. A rewritten one already is.
  for (const wrong of found.widenedKeys.filter((w) => !regenerated.has(w.item))) {
    await fs.chmod(wrong.file, KEY_MODE);
    changes.push({ item: wrong.item, reason: wrong.reason, detail: wrong.detail });
  }
  if (process.platform !== 'win32' && ((await fs.stat(paths.dir)).mode & 0o777) !== DIR_MODE) await fs.chmod(paths.dir, DIR_MODE);

  if (regenerated.size > 0) await syncDirectory(paths.dir);
  const created = ['ca', 'relay', 'operator', 'dtls-key'].every((item) => changes.some((c) => c.item === item && c.reason === 'missing'));
  const status = changes.length === 0 ? 'reused' : created ? 'created' : 'updated';
  return assemble(paths, status, changes, ca, leaves.relay, leaves.operator, dtls);
}

async function writePair(certFile: string, keyFile: string, issued: IssuedCertificate): Promise<CertPair> {
  const keyBuf = Buffer.from(issued.keyPem);
  const certBuf = Buffer.from(issued.certPem);
  await writeFileAtomic(keyFile, keyBuf, KEY_MODE, PKI_ERRORS);
  await writeFileAtomic(certFile, certBuf, CERT_MODE, PKI_ERRORS);
  return { certBuf, keyBuf, cert: new X509Certificate(certBuf) };
}

function assemble(
  paths: LocalPkiPaths,
  status: LocalPki['status'],
  changes: LocalPkiChange[],
  ca: CertPair,
  relay: CertPair,
  operator: CertPair,
  dtls: DtlsKey,
): LocalPki {
  const material = (pair: CertPair): Material => ({
    cert: pair.certBuf,
    key: pair.keyBuf,
    notAfter: new Date(pair.cert.validTo),
    fingerprint256: pair.cert.fingerprint256,
  });
  const pki: LocalPki = {
    paths,
    servername: RELAY_TLS_SERVERNAME,
    status,
    changes,
    ca: { cert: ca.certBuf, notAfter: new Date(ca.cert.validTo) },
    relay: material(relay),
    operator: material(operator),
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
