import { ensureLocalPki, loadLocalPki, localPkiPaths, RELAY_TLS_SERVERNAME, type LocalPki } from '../../orchestrator/platform/local/pki.ts';
import { issueCertificate } from '../../pki/certificates.ts';
import { PkiError } from '../../pki/errors.ts';
import { execFile } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inspect, promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { roleFromSubjectAltName } from '../../api/management-roles.ts';

const execFileAsync = promisify(execFile);
const PKI_MODULE = fileURLToPath(new URL('../../orchestrator/platform/local/pki.ts', import.meta.url));
const POSIX = process.platform !== 'win32';

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'relayctl-pki-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function snapshot(pki: LocalPki): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, file] of Object.entries(pki.paths)) {
    if (name === 'dir' || name === 'lock') continue;
    out[name] = sha256(await fs.readFile(file));
  }
  return out;
}

/** Everything a relay or client relies on: chain, key/cert pairs and their roles, DTLS public key. */
async function expectConsistent(stateDir: string): Promise<void> {
  const p = localPkiPaths(stateDir);
  const ca = new X509Certificate(await fs.readFile(p.ca));
  expect(ca.checkPrivateKey(createPrivateKey(await fs.readFile(p.caKey)))).toBe(true);
  for (const [certFile, keyFile, role] of [
    [p.relayCert, p.relayKey, 'relay'],
    [p.operatorCert, p.operatorKey, 'operator'],
  ] as const) {
    const cert = new X509Certificate(await fs.readFile(certFile));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(await fs.readFile(keyFile)))).toBe(true);
    expect(roleFromSubjectAltName(cert.subjectAltName)).toBe(role);
  }
  const dtlsPub = createPublicKey(createPrivateKey(await fs.readFile(p.dtlsKey))).export({ type: 'spki', format: 'der' });
  expect(dtlsPub.equals(await fs.readFile(p.dtlsPublicKey))).toBe(true);
  // No temp file or lock left behind.
  expect((await fs.readdir(p.dir)).filter((name) => name.startsWith('.'))).toEqual([]);
}

describe('roles in the local state folder', () => {
  it('gives the relays a relay certificate and relayctl an operator certificate, with the usages each needs', async () => {
    const pki = await ensureLocalPki(await tempDir());
    const relay = new X509Certificate(pki.relay.cert);
    const operator = new X509Certificate(pki.operator.cert);
    expect(relay.subjectAltName).toBe('DNS:relay.local, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, URI:spiffe://relayctl.dev/role/relay');
    expect(operator.subjectAltName).toBe('URI:spiffe://relayctl.dev/role/operator');
    expect([...(relay.keyUsage ?? [])].sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(operator.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(pki.relay.fingerprint256).toBe(relay.fingerprint256);
    expect(pki.operator.fingerprint256).toBe(operator.fingerprint256);
  });

  it('regenerates certificates issued before roles, keeping the CA and the DTLS identity devices pinned', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    // What an older relayctl wrote: the same CA, names and usages, no role.
    const ca = { certPem: first.ca.cert, keyPem: await fs.readFile(first.paths.caKey) };
    const oldRelay = await issueCertificate(ca, { commonName: RELAY_TLS_SERVERNAME, dnsNames: ['localhost', RELAY_TLS_SERVERNAME], ipAddresses: ['127.0.0.1', '::1'], usage: 'both', validityDays: 365 });
    const oldOperator = await issueCertificate(ca, { commonName: 'relayctl-operator', usage: 'client', validityDays: 365 });
    await fs.writeFile(first.paths.relayCert, oldRelay.certPem);
    await fs.writeFile(first.paths.relayKey, oldRelay.keyPem, { mode: 0o600 });
    await fs.writeFile(first.paths.operatorCert, oldOperator.certPem);
    await fs.writeFile(first.paths.operatorKey, oldOperator.keyPem, { mode: 0o600 });
    const before = await snapshot(first);

    // Processes that must not mint certificates refuse it, and say what to do.
    await expect(loadLocalPki(stateDir)).rejects.toMatchObject({
      code: 'ERR_PKI_CORRUPT',
      file: first.paths.relayCert,
      message: `${first.paths.relayCert}: expected subjectAltName URI:spiffe://relayctl.dev/role/relay (the relay role, and no other) (issued by an older relayctl: deploy regenerates it)`,
    });

    const second = await ensureLocalPki(stateDir);
    expect(second.status).toBe('updated');
    expect(second.changes).toEqual([
      { item: 'relay', reason: 'outdated', detail: `${first.paths.relayCert}: expected subjectAltName URI:spiffe://relayctl.dev/role/relay (the relay role, and no other)` },
      { item: 'operator', reason: 'outdated', detail: `${first.paths.operatorCert}: expected subjectAltName URI:spiffe://relayctl.dev/role/operator (the operator role, and no other)` },
    ]);
    const after = await snapshot(second);
    for (const kept of ['ca', 'caKey', 'dtlsKey', 'dtlsPublicKey']) expect(after[kept]).toBe(before[kept]);
    for (const replaced of ['relayCert', 'relayKey', 'operatorCert', 'operatorKey']) expect(after[replaced]).not.toBe(before[replaced]);
    expect(second.relay.fingerprint256).not.toBe(new X509Certificate(oldRelay.certPem).fingerprint256);
    await expectConsistent(stateDir);
    expect((await loadLocalPki(stateDir)).relay.cert.equals(second.relay.cert)).toBe(true);
  });
});

describe('ensureLocalPki', () => {
  it('creates the layout with private key modes, then reuses it byte for byte', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    expect(first.status).toBe('created');
    expect(first.changes.map((c) => `${c.item}:${c.reason}`).sort()).toEqual(['ca:missing', 'dtls-key:missing', 'operator:missing', 'relay:missing']);
    expect((await fs.readdir(first.paths.dir)).sort()).toEqual([
      'ca-key.pem',
      'ca.pem',
      'dtls-key.pem',
      'dtls-pub.der',
      'operator-key.pem',
      'operator.pem',
      'relay-key.pem',
      'relay.pem',
    ]);
    if (POSIX) {
      for (const file of [first.paths.caKey, first.paths.relayKey, first.paths.operatorKey, first.paths.dtlsKey]) {
        expect(((await fs.stat(file)).mode & 0o777).toString(8)).toBe('600');
      }
      expect(((await fs.stat(first.paths.dir)).mode & 0o777).toString(8)).toBe('700');
    }
    // Returned buffers are the bytes on disk.
    expect(first.relay.cert.equals(await fs.readFile(first.paths.relayCert))).toBe(true);
    expect(first.dtls.publicKeyDer.equals(await fs.readFile(first.paths.dtlsPublicKey))).toBe(true);
    const relay = new X509Certificate(first.relay.cert);
    expect(relay.checkHost(RELAY_TLS_SERVERNAME)).toBe(RELAY_TLS_SERVERNAME);
    expect(relay.checkHost('localhost')).toBe('localhost');
    expect(relay.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(relay.checkIP('::1')).toBe('::1');
    await expectConsistent(stateDir);

    const before = await snapshot(first);
    const second = await ensureLocalPki(stateDir);
    expect(second.status).toBe('reused');
    expect(second.changes).toEqual([]);
    expect(await snapshot(second)).toEqual(before);
    for (const [a, b] of [
      [first.ca.cert, second.ca.cert],
      [first.relay.key, second.relay.key],
      [first.operator.cert, second.operator.cert],
      [first.dtls.key, second.dtls.key],
    ] as const) {
      expect(a.equals(b)).toBe(true);
    }
    // The read-only loader agrees.
    const loaded = await loadLocalPki(stateDir);
    expect(loaded.relay.cert.equals(first.relay.cert)).toBe(true);
  });

  it('regenerates only a corrupt leaf, keeping CA and DTLS identity', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    const before = await snapshot(first);
    await fs.writeFile(first.paths.relayCert, 'this is not a certificate\n');

    await expect(loadLocalPki(stateDir)).rejects.toMatchObject({
      code: 'ERR_PKI_CORRUPT',
      file: first.paths.relayCert,
      message: expect.stringContaining('expected a PEM "CERTIFICATE"'),
    });

    const second = await ensureLocalPki(stateDir);
    expect(second.status).toBe('updated');
    expect(second.changes).toEqual([
      expect.objectContaining({ item: 'relay', reason: 'corrupt', detail: expect.stringContaining('relay.pem') }),
    ]);
    const after = await snapshot(second);
    expect(after.relayCert).not.toBe(before.relayCert);
    expect(after.relayKey).not.toBe(before.relayKey);
    for (const unchanged of ['ca', 'caKey', 'operatorCert', 'operatorKey', 'dtlsKey', 'dtlsPublicKey']) {
      expect(after[unchanged]).toBe(before[unchanged]);
    }
    await expectConsistent(stateDir);
  });

  it('treats a half-written CA as corrupt and reissues everything it signed, but not the DTLS key', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    const before = await snapshot(first);
    const ca = await fs.readFile(first.paths.ca);
    await fs.writeFile(first.paths.ca, ca.subarray(0, ca.length >> 1));

    const second = await ensureLocalPki(stateDir);
    expect(second.changes.map((c) => `${c.item}:${c.reason}`)).toEqual([
      'ca:corrupt',
      'relay:ca-replaced',
      'operator:ca-replaced',
    ]);
    const after = await snapshot(second);
    expect(after.caKey).not.toBe(before.caKey);
    expect(after.dtlsKey).toBe(before.dtlsKey);
    expect(after.dtlsPublicKey).toBe(before.dtlsPublicKey);
    await expectConsistent(stateDir);
  });

  it('notices a key that does not belong to its certificate and a missing key file', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    await fs.copyFile(first.paths.operatorKey, first.paths.relayKey);
    await fs.rm(first.paths.operatorKey);

    const second = await ensureLocalPki(stateDir);
    expect(second.changes).toEqual([
      expect.objectContaining({ item: 'relay', reason: 'corrupt', detail: expect.stringContaining('different key') }),
      expect.objectContaining({ item: 'operator', reason: 'missing' }),
    ]);
    await expectConsistent(stateDir);
  });

  it('renews certificates inside the renewal window (7 days by default)', async () => {
    const stateDir = await tempDir();
    // Valid for 3 days: fine with a 1-day window, due for renewal with the default 7-day window.
    const first = await ensureLocalPki(stateDir, { leafValidityDays: 3, renewBeforeDays: 1 });
    expect((await ensureLocalPki(stateDir, { renewBeforeDays: 1 })).status).toBe('reused');

    const second = await ensureLocalPki(stateDir);
    expect(second.changes.map((c) => `${c.item}:${c.reason}`)).toEqual([
      'relay:expiring',
      'operator:expiring',
    ]);
    expect(second.ca.cert.equals(first.ca.cert)).toBe(true);
    expect(second.relay.notAfter.getTime()).toBeGreaterThan(Date.now() + 300 * 86_400_000);
    await expect(loadLocalPki(stateDir, { renewBeforeDays: 400 })).rejects.toMatchObject({ code: 'ERR_PKI_EXPIRED' });
    await expectConsistent(stateDir);
  });

  it('renews an expiring CA and with it every leaf', async () => {
    const stateDir = await tempDir();
    await ensureLocalPki(stateDir, { caValidityDays: 3, leafValidityDays: 2, renewBeforeDays: 1 });
    const second = await ensureLocalPki(stateDir);
    expect(second.changes.map((c) => `${c.item}:${c.reason}`)).toEqual(['ca:expiring', 'relay:ca-replaced', 'operator:ca-replaced']);
    await expectConsistent(stateDir);
  });

  it('derives a missing or wrong dtls-pub.der from the key instead of changing the DTLS identity', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    await fs.rm(first.paths.dtlsPublicKey);
    const second = await ensureLocalPki(stateDir);
    expect(second.changes).toEqual([expect.objectContaining({ item: 'dtls-pub', reason: 'missing' })]);
    expect(second.dtls.publicKeyDer.equals(first.dtls.publicKeyDer)).toBe(true);

    await fs.writeFile(first.paths.dtlsPublicKey, Buffer.from([0x30, 0x00]));
    const third = await ensureLocalPki(stateDir);
    expect(third.changes).toEqual([expect.objectContaining({ item: 'dtls-pub', reason: 'corrupt' })]);
    expect((await fs.readFile(first.paths.dtlsPublicKey)).equals(first.dtls.publicKeyDer)).toBe(true);
    expect(third.dtls.key.equals(first.dtls.key)).toBe(true);
  });

  it('replaces an unreadable DTLS key', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    await fs.writeFile(first.paths.dtlsKey, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    await expect(loadLocalPki(stateDir)).rejects.toMatchObject({ code: 'ERR_PKI_CORRUPT', file: first.paths.dtlsKey });
    const second = await ensureLocalPki(stateDir);
    expect(second.changes).toEqual([expect.objectContaining({ item: 'dtls-key', reason: 'corrupt' })]);
    expect(second.dtls.publicKeyDer.equals(first.dtls.publicKeyDer)).toBe(false);
    await expectConsistent(stateDir);
  });

  it.runIf(POSIX)('resets a widened key file mode to 0600', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    await fs.chmod(first.paths.relayKey, 0o644);
    const second = await ensureLocalPki(stateDir);
    expect(second.changes).toEqual([expect.objectContaining({ item: 'relay', reason: 'permissions' })]);
    expect((await fs.stat(first.paths.relayKey)).mode & 0o777).toBe(0o600);
    expect(second.relay.key.equals(first.relay.key)).toBe(true);
  });

  it('loadLocalPki reports a missing folder as ERR_PKI_MISSING with the file name', async () => {
    const stateDir = await tempDir();
    const err = await loadLocalPki(stateDir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PkiError);
    expect(err).toMatchObject({ code: 'ERR_PKI_MISSING', file: localPkiPaths(stateDir).ca });
    await fs.mkdir(localPkiPaths(stateDir).dir);
    await expect(loadLocalPki(stateDir)).rejects.toMatchObject({ code: 'ERR_PKI_MISSING', file: localPkiPaths(stateDir).ca });
  });

  it('serialises concurrent async callers: one creates, the others reuse the same bytes', async () => {
    const stateDir = await tempDir();
    const results = await Promise.all(Array.from({ length: 6 }, () => ensureLocalPki(stateDir)));
    expect(results.map((r) => r.status).sort()).toEqual(['created', 'reused', 'reused', 'reused', 'reused', 'reused']);
    const cas = new Set(results.map((r) => sha256(r.ca.cert)));
    const relays = new Set(results.map((r) => sha256(r.relay.key)));
    const dtls = new Set(results.map((r) => sha256(r.dtls.publicKeyDer)));
    expect([cas.size, relays.size, dtls.size]).toEqual([1, 1, 1]);
    await expectConsistent(stateDir);
  });

  it('serialises separate processes starting at the same moment', async () => {
    const stateDir = await tempDir();
    // Each child imports the module first, then waits for a shared start time so they really race.
    const script = `
      const { ensureLocalPki } = await import(${JSON.stringify(PKI_MODULE)});
      const { createHash } = await import('node:crypto');
      const [stateDir, startAt] = process.argv.slice(1);
      await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));
      const pki = await ensureLocalPki(stateDir);
      const h = (b) => createHash('sha256').update(b).digest('hex');
      process.stdout.write(JSON.stringify({ status: pki.status, ca: h(pki.ca.cert), relay: h(pki.relay.cert), dtls: h(pki.dtls.publicKeyDer) }));
    `;
    const startAt = String(Date.now() + 1_500);
    const env = { ...process.env, NODE_OPTIONS: '' };
    const children = Array.from({ length: 4 }, () =>
      execFileAsync(process.execPath, ['--input-type=module', '-e', script, stateDir, startAt], { env, timeout: 20_000 }),
    );
    const outputs = (await Promise.all(children)).map((c) => JSON.parse(c.stdout) as Record<string, string>);
    expect(outputs.filter((o) => o.status === 'created')).toHaveLength(1);
    expect(outputs.filter((o) => o.status === 'reused')).toHaveLength(3);
    expect(new Set(outputs.map((o) => `${o.ca}/${o.relay}/${o.dtls}`)).size).toBe(1);
    await expectConsistent(stateDir);
    const inProcess = await ensureLocalPki(stateDir);
    expect(inProcess.status).toBe('reused');
    expect(sha256(inProcess.ca.cert)).toBe(outputs[0]!.ca);
  });

  it('breaks a lock left by a dead process, and times out on a live one', async () => {
    const stateDir = await tempDir();
    const paths = localPkiPaths(stateDir);
    await fs.mkdir(paths.dir, { recursive: true });
    const dead = await execFileAsync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const lock = (pid: number) => JSON.stringify({ pid, host: os.hostname(), token: 'x', createdAt: Date.now() });

    await fs.writeFile(paths.lock, lock(Number(dead.stdout)));
    expect((await ensureLocalPki(stateDir)).status).toBe('created');

    await fs.writeFile(paths.lock, lock(process.pid));
    const err = await ensureLocalPki(stateDir, { lockTimeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'PkiError', code: 'ERR_PKI_LOCK_TIMEOUT', file: paths.lock });
    await fs.rm(paths.lock);
  });

  it('rejects option combinations that would renew on every call', async () => {
    await expect(ensureLocalPki(await tempDir(), { leafValidityDays: 5 })).rejects.toMatchObject({
      code: 'ERR_PKI_INVALID_ARGUMENT',
    });
  });

  it('keeps key bytes out of inspect() and JSON', async () => {
    const pki = await ensureLocalPki(await tempDir());
    const keyBody = pki.relay.key.toString().split('\n')[1]!;
    expect(inspect(pki, { depth: 10 })).not.toContain(keyBody);
    const json = JSON.stringify(pki);
    expect(json).not.toContain(keyBody);
    expect(json).not.toContain(JSON.stringify(pki.relay.key.toJSON().data.slice(0, 16)).slice(1, -1));
  });

  it('dtls-key.pem loads with createPrivateKey and its public key equals dtls-pub.der', async () => {
    const pki = await ensureLocalPki(await tempDir());
    const key = createPrivateKey(await fs.readFile(pki.paths.dtlsKey));
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
    expect(spki.equals(await fs.readFile(pki.paths.dtlsPublicKey))).toBe(true);
    expect(spki.equals(pki.dtls.publicKeyDer)).toBe(true);
  });
});
