// pki.ts must load before @peculiar/x509: it installs the Reflect metadata polyfill x509 needs.
import {
  createCa,
  ensureLocalPki,
  generateDtlsKeyPair,
  issueCertificate,
  loadLocalPki,
  localPkiPaths,
  operatorClientTlsOptions,
  PkiError,
  RELAY_TLS_SERVERNAME,
  relayClientTlsOptions,
  relayServerTlsOptions,
} from '../../orchestrator/platform/local/pki.ts';
import type { IssuedCertificate, LocalPki } from '../../orchestrator/platform/local/pki.ts';
import * as x509 from '@peculiar/x509';
import { execFile } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, sign, verify, X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { inspect, promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import type { buildConnector } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpsGet, rejectionCode, startServer } from './tls-helpers.ts';
import type { TestServer } from './tls-helpers.ts';

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

async function canListen(host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function snapshot(pki: LocalPki): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, file] of Object.entries(pki.paths)) {
    if (name === 'dir' || name === 'lock') continue;
    out[name] = sha256(await fs.readFile(file));
  }
  return out;
}

/** Everything a relay or client relies on: chain, key/cert pairs, DTLS public key. */
async function expectConsistent(stateDir: string): Promise<void> {
  const p = localPkiPaths(stateDir);
  const ca = new X509Certificate(await fs.readFile(p.ca));
  expect(ca.checkPrivateKey(createPrivateKey(await fs.readFile(p.caKey)))).toBe(true);
  for (const [certFile, keyFile] of [
    [p.relayCert, p.relayKey],
    [p.operatorCert, p.operatorKey],
  ] as const) {
    const cert = new X509Certificate(await fs.readFile(certFile));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(await fs.readFile(keyFile)))).toBe(true);
  }
  const dtlsPub = createPublicKey(createPrivateKey(await fs.readFile(p.dtlsKey))).export({ type: 'spki', format: 'der' });
  expect(dtlsPub.equals(await fs.readFile(p.dtlsPublicKey))).toBe(true);
  // No temp file or lock left behind.
  expect((await fs.readdir(p.dir)).filter((name) => name.startsWith('.'))).toEqual([]);
}

// ---------------------------------------------------------------------------------------------

describe('createCa / issueCertificate', () => {
  let ca: IssuedCertificate;
  beforeAll(async () => {
    ca = await createCa({ commonName: 'test CA', validityDays: 30 });
  });

  it('creates a P-256 / SHA-256 CA with critical basicConstraints and keyCertSign|cRLSign', () => {
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=test CA');
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);

    const parsed = new x509.X509Certificate(ca.certPem);
    expect(parsed.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-256' } });
    const bc = parsed.getExtension(x509.BasicConstraintsExtension);
    expect(bc).toMatchObject({ ca: true, critical: true });
    const ku = parsed.getExtension(x509.KeyUsagesExtension);
    expect(ku?.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(ku?.critical).toBe(true);
    expect(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);
  });

  it('issues leaves with the asked EKUs, SANs (DNS + IPv4 + IPv6), AKI = CA SKI, SKI and a random serial', async () => {
    const caSki = new x509.X509Certificate(ca.certPem).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    const ekus = {
      server: [x509.ExtendedKeyUsage.serverAuth],
      client: [x509.ExtendedKeyUsage.clientAuth],
      both: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    } as const;
    const serials = new Set<string>();
    for (const usage of ['server', 'client', 'both'] as const) {
      const leaf = await issueCertificate(ca, {
        commonName: `leaf-${usage}`,
        dnsNames: ['relay.local', 'localhost'],
        ipAddresses: ['127.0.0.1', '::1'],
        usage,
        validityDays: 5,
      });
      serials.add(leaf.serialNumber);
      const cert = new X509Certificate(leaf.certPem);
      expect(cert.ca).toBe(false);
      expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
      expect(cert.checkPrivateKey(createPrivateKey(leaf.keyPem))).toBe(true);
      expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      expect([...(cert.keyUsage ?? [])].sort()).toEqual([...ekus[usage]].sort());
      expect(cert.checkHost('relay.local')).toBe('relay.local');
      expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
      expect(cert.checkIP('::1')).toBe('::1');
      expect(cert.checkIP('127.0.0.2')).toBeUndefined();

      const parsed = new x509.X509Certificate(leaf.certPem);
      expect(parsed.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(caSki);
      expect(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);
      expect(parsed.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
      expect(parsed.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: false, critical: true });
      expect(leaf.serialNumber).toMatch(/^[0-7][0-9a-f]{31}$/);
      expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBeGreaterThan(5 * 86_400_000 - 1_000);
    }
    expect(serials.size).toBe(3);
  });

  it('omits SAN for a name-less client certificate and never outlives its CA', async () => {
    const leaf = await issueCertificate(ca, { commonName: 'op', usage: 'client', validityDays: 365 });
    expect(new X509Certificate(leaf.certPem).subjectAltName).toBeUndefined();
    expect(leaf.notAfter.getTime()).toBeLessThanOrEqual(ca.notAfter.getTime());
  });

  it('refuses bad input with ERR_PKI_INVALID_ARGUMENT', async () => {
    const other = await createCa({ commonName: 'other', validityDays: 1 });
    const base = { commonName: 'x', usage: 'server', validityDays: 1 } as const;
    const cases: Array<Promise<unknown>> = [
      issueCertificate(ca, { ...base, ipAddresses: ['127.0.0.256'] }),
      issueCertificate(ca, { ...base, dnsNames: ['127.0.0.1'] }),
      issueCertificate(ca, { ...base, dnsNames: ['bad name'] }),
      issueCertificate(ca, { ...base, usage: 'peer' as 'server' }),
      issueCertificate(ca, { ...base, validityDays: 0 }),
      issueCertificate({ certPem: ca.certPem, keyPem: other.keyPem }, base),
      issueCertificate({ certPem: 'not a cert', keyPem: ca.keyPem }, base),
      createCa({ commonName: '', validityDays: 1 }),
    ];
    for (const attempt of cases) {
      await expect(attempt).rejects.toMatchObject({ name: 'PkiError', code: 'ERR_PKI_INVALID_ARGUMENT' });
    }
  });

  it('keeps private keys out of inspect() and JSON', () => {
    const body = ca.keyPem.split('\n')[1]!;
    expect(inspect(ca)).not.toContain(body);
    expect(JSON.stringify(ca)).not.toContain(body);
    expect(JSON.stringify(ca)).toContain('[redacted]');
  });
});

// ---------------------------------------------------------------------------------------------

describe('mTLS on loopback', () => {
  let pki: LocalPki;
  let foreignClient: IssuedCertificate;
  let foreignCa: IssuedCertificate;
  let serverOnly: IssuedCertificate;
  const servers: TestServer[] = [];
  let v4: TestServer; // 127.0.0.1, in the relay certificate's IP SANs
  let other: TestServer; // 127.0.0.2, like any local relay on 127.x.y.z: not in the SANs

  beforeAll(async () => {
    pki = await ensureLocalPki(await tempDir());
    foreignCa = await createCa({ commonName: 'relayctl local CA', validityDays: 30 }); // same name, other key
    foreignClient = await issueCertificate(foreignCa, { commonName: 'relayctl-operator', usage: 'client', validityDays: 5 });
    serverOnly = await issueCertificate(
      { certPem: pki.ca.cert, keyPem: await fs.readFile(pki.paths.caKey) },
      { commonName: 'server-only', usage: 'server', validityDays: 5 },
    );
    v4 = await startServer('127.0.0.1', relayServerTlsOptions(pki));
    other = await startServer('127.0.0.2', relayServerTlsOptions(pki));
    servers.push(v4, other);
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  describe('node:https', () => {
    it('accepts the operator certificate and the relay certificate (relay-to-relay)', async () => {
      const asOperator = await httpsGet({ host: other.host, port: other.port, ...operatorClientTlsOptions(pki) });
      expect(asOperator).toEqual({ status: 200, peer: { cn: 'relayctl-operator', authorized: true } });
      const asRelay = await httpsGet({ host: other.host, port: other.port, ...relayClientTlsOptions(pki) });
      expect(asRelay).toEqual({ status: 200, peer: { cn: 'relay.local', authorized: true } });
    });

    it('refuses a client without a certificate', async () => {
      const before = other.handled();
      const code = await rejectionCode(
        httpsGet({ host: other.host, port: other.port, ca: pki.ca.cert, servername: RELAY_TLS_SERVERNAME }),
      );
      // TLS 1.3: the server's "certificate required" alert; a reset can overtake it if the server
      // closes with our request still unread.
      expect(code).toMatch(/ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ECONNRESET/);
      expect(other.handled()).toBe(before);
    });

    it('refuses a client certificate from another CA, even with the same CA name', async () => {
      const before = other.handled();
      const code = await rejectionCode(
        httpsGet({
          host: other.host,
          port: other.port,
          ca: pki.ca.cert,
          servername: RELAY_TLS_SERVERNAME,
          cert: foreignClient.certPem,
          key: foreignClient.keyPem,
        }),
      );
      // Node's server verifies after the handshake and destroys the socket: the client sees a reset.
      expect(code).toMatch(/ECONNRESET|EPIPE|ERR_SSL/);
      expect(other.handled()).toBe(before);
    });

    it('refuses a certificate of this CA that lacks clientAuth', async () => {
      const before = other.handled();
      const code = await rejectionCode(
        httpsGet({
          host: other.host,
          port: other.port,
          ca: pki.ca.cert,
          servername: RELAY_TLS_SERVERNAME,
          cert: serverOnly.certPem,
          key: serverOnly.keyPem,
        }),
      );
      expect(code).toMatch(/ECONNRESET|EPIPE|ERR_SSL/);
      expect(other.handled()).toBe(before);
    });

    it('verifies the relay certificate: another CA is not trusted', async () => {
      const code = await rejectionCode(
        httpsGet({ host: other.host, port: other.port, ...operatorClientTlsOptions(pki), ca: foreignCa.certPem }),
      );
      // The relay sends its chain (leaf + CA); the CA is self-signed and unknown to this client.
      expect(code).toMatch(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    });

    it('hostname verification stays on: which host / servername combinations pass', async () => {
      const tls = { ca: pki.ca.cert, cert: pki.operator.cert, key: pki.operator.key };
      // 127.0.0.1 is an IP SAN, so the bare IP verifies.
      expect((await httpsGet({ ...tls, host: v4.host, port: v4.port })).status).toBe(200);
      // Any other 127.x address: the IP is not in the certificate, so Node refuses ...
      expect(await rejectionCode(httpsGet({ ...tls, host: other.host, port: other.port }))).toBe(
        'ERR_TLS_CERT_ALTNAME_INVALID',
      );
      // ... unless the client verifies against the relay's DNS name (what every client must do).
      for (const servername of [RELAY_TLS_SERVERNAME, 'localhost']) {
        expect((await httpsGet({ ...tls, host: other.host, port: other.port, servername })).status).toBe(200);
      }
      // A name the certificate does not carry is refused: verification is really on.
      expect(
        await rejectionCode(httpsGet({ ...tls, host: other.host, port: other.port, servername: 'relay.example' })),
      ).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    });

    it('verifies the bare ::1 address against its IP SAN', async (ctx) => {
      if (!(await canListen('::1'))) ctx.skip();
      const v6 = await startServer('::1', relayServerTlsOptions(pki));
      servers.push(v6);
      const res = await httpsGet({ host: '::1', port: v6.port, ca: pki.ca.cert, cert: pki.operator.cert, key: pki.operator.key });
      expect(res.status).toBe(200);
    });
  });

  describe('undici', () => {
    const agents: Agent[] = [];
    afterEach(async () => {
      await Promise.all(agents.splice(0).map((agent) => agent.close().catch(() => {})));
    });

    async function get(url: string, connect: buildConnector.BuildOptions) {
      const agent = new Agent({ connect });
      agents.push(agent);
      const res = await request(url, { dispatcher: agent, signal: AbortSignal.timeout(5_000) });
      return { status: res.statusCode, peer: (await res.body.json()) as unknown };
    }

    it('connects with new Agent({ connect: { ca, cert, key, servername } }) to a 127.x relay', async () => {
      const res = await get(`https://${other.host}:${other.port}/`, {
        ca: pki.ca.cert,
        cert: pki.operator.cert,
        key: pki.operator.key,
        servername: RELAY_TLS_SERVERNAME,
      });
      expect(res).toEqual({ status: 200, peer: { cn: 'relayctl-operator', authorized: true } });
      // The helper produces exactly those options.
      expect(operatorClientTlsOptions(pki)).toEqual({
        ca: pki.ca.cert,
        cert: pki.operator.cert,
        key: pki.operator.key,
        servername: RELAY_TLS_SERVERNAME,
      });
    });

    it('refuses no client certificate and a certificate from another CA', async () => {
      const before = other.handled();
      const url = `https://${other.host}:${other.port}/`;
      const noCert = await rejectionCode(get(url, { ca: pki.ca.cert, servername: RELAY_TLS_SERVERNAME }));
      expect(noCert).toMatch(/UND_ERR_SOCKET|ECONNRESET|ERR_SSL/);
      const foreign = await rejectionCode(
        get(url, { ca: pki.ca.cert, cert: foreignClient.certPem, key: foreignClient.keyPem, servername: RELAY_TLS_SERVERNAME }),
      );
      expect(foreign).toMatch(/UND_ERR_SOCKET|ECONNRESET|ERR_SSL/);
      expect(other.handled()).toBe(before);
    });

    it('keeps hostname verification on: 127.x without servername fails, 127.0.0.1 passes on its IP SAN', async () => {
      const tls = { ca: pki.ca.cert, cert: pki.operator.cert, key: pki.operator.key };
      expect(await rejectionCode(get(`https://${other.host}:${other.port}/`, tls))).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
      expect((await get(`https://${v4.host}:${v4.port}/`, tls)).status).toBe(200);
      expect(
        await rejectionCode(get(`https://${other.host}:${other.port}/`, { ...tls, servername: 'relay.example' })),
      ).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    });

    it('does not trust a relay certificate from another CA', async () => {
      const code = await rejectionCode(
        get(`https://${other.host}:${other.port}/`, { ...operatorClientTlsOptions(pki), ca: foreignCa.certPem }),
      );
      expect(code).toMatch(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('ensureLocalPki', () => {
  it('creates the layout with private key modes, then reuses it byte for byte', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    expect(first.status).toBe('created');
    expect(first.changes.map((c) => `${c.item}:${c.action}`).sort()).toEqual(
      ['ca:created', 'dtls-key:created', 'operator:created', 'relay:created'],
    );
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
      expect.objectContaining({ item: 'relay', action: 'regenerated', reason: 'corrupt', detail: expect.stringContaining('relay.pem') }),
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
    expect(second.changes.map((c) => `${c.item}:${c.action}:${c.reason}`)).toEqual([
      'ca:regenerated:corrupt',
      'relay:regenerated:ca-replaced',
      'operator:regenerated:ca-replaced',
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
      expect.objectContaining({ item: 'relay', action: 'regenerated', reason: 'corrupt', detail: expect.stringContaining('different key') }),
      expect.objectContaining({ item: 'operator', action: 'regenerated', reason: 'missing' }),
    ]);
    await expectConsistent(stateDir);
  });

  it('renews certificates inside the renewal window (7 days by default)', async () => {
    const stateDir = await tempDir();
    // Valid for 3 days: fine with a 1-day window, due for renewal with the default 7-day window.
    const first = await ensureLocalPki(stateDir, { leafValidityDays: 3, renewBeforeDays: 1 });
    expect((await ensureLocalPki(stateDir, { renewBeforeDays: 1 })).status).toBe('reused');

    const second = await ensureLocalPki(stateDir);
    expect(second.changes.map((c) => `${c.item}:${c.action}:${c.reason}`)).toEqual([
      'relay:regenerated:expiring',
      'operator:regenerated:expiring',
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
    expect(second.changes).toEqual([expect.objectContaining({ item: 'dtls-pub', action: 'repaired', reason: 'missing' })]);
    expect(second.dtls.publicKeyDer.equals(first.dtls.publicKeyDer)).toBe(true);

    await fs.writeFile(first.paths.dtlsPublicKey, Buffer.from([0x30, 0x00]));
    const third = await ensureLocalPki(stateDir);
    expect(third.changes).toEqual([expect.objectContaining({ item: 'dtls-pub', action: 'repaired', reason: 'corrupt' })]);
    expect((await fs.readFile(first.paths.dtlsPublicKey)).equals(first.dtls.publicKeyDer)).toBe(true);
    expect(third.dtls.key.equals(first.dtls.key)).toBe(true);
  });

  it('replaces an unreadable DTLS key', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    await fs.writeFile(first.paths.dtlsKey, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    await expect(loadLocalPki(stateDir)).rejects.toMatchObject({ code: 'ERR_PKI_CORRUPT', file: first.paths.dtlsKey });
    const second = await ensureLocalPki(stateDir);
    expect(second.changes).toEqual([expect.objectContaining({ item: 'dtls-key', action: 'regenerated', reason: 'corrupt' })]);
    expect(second.dtls.publicKeyDer.equals(first.dtls.publicKeyDer)).toBe(false);
    await expectConsistent(stateDir);
  });

  it.runIf(POSIX)('resets a widened key file mode to 0600', async () => {
    const stateDir = await tempDir();
    const first = await ensureLocalPki(stateDir);
    await fs.chmod(first.paths.relayKey, 0o644);
    const second = await ensureLocalPki(stateDir);
    expect(second.changes).toEqual([expect.objectContaining({ item: 'relay', action: 'repaired', reason: 'permissions' })]);
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
});

// ---------------------------------------------------------------------------------------------

describe('DTLS identity key', () => {
  it('generateDtlsKeyPair: both PEM forms load as the same P-256 key whose SPKI is the returned DER', async () => {
    const pair = await generateDtlsKeyPair();
    expect(pair.privateKeyPkcs8Pem).toContain('-----BEGIN PRIVATE KEY-----');
    expect(pair.privateKeySec1Pem).toContain('-----BEGIN EC PRIVATE KEY-----');
    const pkcs8 = createPrivateKey(pair.privateKeyPkcs8Pem);
    const sec1 = createPrivateKey(pair.privateKeySec1Pem);
    expect(pkcs8.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    for (const key of [pkcs8, sec1]) {
      expect(createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(pair.publicKeySpkiDer)).toBe(true);
    }
    // The pinned public key really verifies what the private key signs.
    const pinned = createPublicKey({ key: pair.publicKeySpkiDer, format: 'der', type: 'spki' });
    const message = Buffer.from('handshake transcript');
    expect(verify('sha256', message, pinned, sign('sha256', message, pkcs8))).toBe(true);
    expect(inspect(pair)).not.toContain(pair.privateKeyPkcs8Pem.split('\n')[1]!);
  });

  it('ensureLocalPki: dtls-key.pem loads with createPrivateKey and its public key equals dtls-pub.der', async () => {
    const pki = await ensureLocalPki(await tempDir());
    const key = createPrivateKey(await fs.readFile(pki.paths.dtlsKey));
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
    expect(spki.equals(await fs.readFile(pki.paths.dtlsPublicKey))).toBe(true);
    expect(spki.equals(pki.dtls.publicKeyDer)).toBe(true);
  });
});
