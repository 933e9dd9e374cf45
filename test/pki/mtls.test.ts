/**
 * The local platform's certificates in real mutual TLS on loopback, with node:https and undici: who is let in, how
 * relays are verified on 127.x addresses, and which role the server reads from each client certificate.
 */
import { ensureLocalPki, operatorClientTlsOptions, RELAY_TLS_SERVERNAME, relayClientTlsOptions, relayServerTlsOptions, type LocalPki } from '../../orchestrator/platform/local/pki.ts';
import { createCa, issueCertificate, type IssuedCertificate } from '../../pki/certificates.ts';
import fs from 'node:fs/promises';
import type https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import type { buildConnector } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpsGet, rejectionCode, startServer, type TestServer } from './tls-helpers.ts';

async function canListen(host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}

let stateDir: string;
let pki: LocalPki;
let foreignCa: IssuedCertificate;
let foreignClient: IssuedCertificate;
let serverOnly: IssuedCertificate;
let roleless: IssuedCertificate;
const servers: TestServer[] = [];
let v4: TestServer; // 127.0.0.1, in the relay certificate's IP SANs
let other: TestServer; // 127.0.0.2, like any local relay on 127.x.y.z: not in the SANs

beforeAll(async () => {
  stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'relayctl-mtls-'));
  pki = await ensureLocalPki(stateDir);
  const caMaterial = { certPem: pki.ca.cert, keyPem: await fs.readFile(pki.paths.caKey) };
  foreignCa = await createCa({ commonName: 'relayctl local CA', validityDays: 30 }); // same name, other key
  foreignClient = await issueCertificate(foreignCa, { commonName: 'relayctl-operator', uris: ['spiffe://relayctl.dev/role/operator'], usage: 'client', validityDays: 5 });
  serverOnly = await issueCertificate(caMaterial, { commonName: 'server-only', uris: ['spiffe://relayctl.dev/role/relay'], usage: 'server', validityDays: 5 });
  roleless = await issueCertificate(caMaterial, { commonName: 'roleless', usage: 'client', validityDays: 5 });
  v4 = await startServer('127.0.0.1', relayServerTlsOptions(pki));
  other = await startServer('127.0.0.2', relayServerTlsOptions(pki));
  servers.push(v4, other);
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await fs.rm(stateDir, { recursive: true, force: true });
});

describe('node:https', () => {
  it('lets the operator and a relay in, and the server reads each one\'s role from its certificate', async () => {
    const asOperator = await httpsGet({ host: other.host, port: other.port, ...operatorClientTlsOptions(pki) });
    expect(asOperator).toEqual({ status: 200, peer: { cn: 'relayctl-operator', authorized: true, role: 'operator' } });
    const asRelay = await httpsGet({ host: other.host, port: other.port, ...relayClientTlsOptions(pki) });
    expect(asRelay).toEqual({ status: 200, peer: { cn: 'relay.local', authorized: true, role: 'relay' } });
    // Signed by the CA but issued without a role: let in by TLS, granted no role (the server's 403s are its own).
    const asRoleless = await httpsGet({ host: other.host, port: other.port, ca: pki.ca.cert, servername: RELAY_TLS_SERVERNAME, cert: roleless.certPem, key: roleless.keyPem });
    expect(asRoleless).toEqual({ status: 200, peer: { cn: 'roleless', authorized: true, role: null } });
  });

  const refused: Array<[string, () => https.RequestOptions, RegExp]> = [
    // TLS 1.3: the server's "certificate required" alert; a reset can overtake it if the server closes with our
    // request still unread.
    ['no client certificate', () => ({}), /ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ECONNRESET/],
    // Node's server verifies after the handshake and destroys the socket: the client sees a reset.
    ['a client certificate from another CA with the same CA name', () => ({ cert: foreignClient.certPem, key: foreignClient.keyPem }), /ECONNRESET|EPIPE|ERR_SSL/],
    ['a certificate of this CA without clientAuth, whatever role it names', () => ({ cert: serverOnly.certPem, key: serverOnly.keyPem }), /ECONNRESET|EPIPE|ERR_SSL/],
  ];
  it.each(refused)('refuses %s before any request is handled', async (_name, client, code) => {
    const before = other.handled();
    expect(await rejectionCode(httpsGet({ host: other.host, port: other.port, ca: pki.ca.cert, servername: RELAY_TLS_SERVERNAME, ...client() }))).toMatch(code);
    expect(other.handled()).toBe(before);
  });

  it('verifies the relay certificate: another CA is not trusted', async () => {
    const code = await rejectionCode(httpsGet({ host: other.host, port: other.port, ...operatorClientTlsOptions(pki), ca: foreignCa.certPem }));
    // The relay sends its chain (leaf + CA); the CA is self-signed and unknown to this client.
    expect(code).toMatch(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });

  it('hostname verification stays on: which host / servername combinations pass', async () => {
    const tls = { ca: pki.ca.cert, cert: pki.operator.cert, key: pki.operator.key };
    // 127.0.0.1 is an IP SAN, so the bare IP verifies.
    expect((await httpsGet({ ...tls, host: v4.host, port: v4.port })).status).toBe(200);
    // Any other 127.x address: the IP is not in the certificate, so Node refuses ...
    expect(await rejectionCode(httpsGet({ ...tls, host: other.host, port: other.port }))).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    // ... unless the client verifies against the relay's DNS name (what every client must do).
    for (const servername of [RELAY_TLS_SERVERNAME, 'localhost']) {
      expect((await httpsGet({ ...tls, host: other.host, port: other.port, servername })).status).toBe(200);
    }
    // A name the certificate does not carry is refused: verification is really on.
    expect(await rejectionCode(httpsGet({ ...tls, host: other.host, port: other.port, servername: 'relay.example' }))).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
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
    const connect = { ca: pki.ca.cert, cert: pki.operator.cert, key: pki.operator.key, servername: RELAY_TLS_SERVERNAME };
    expect(await get(`https://${other.host}:${other.port}/`, connect)).toEqual({
      status: 200,
      peer: { cn: 'relayctl-operator', authorized: true, role: 'operator' },
    });
    // The helper produces exactly those options.
    expect(operatorClientTlsOptions(pki)).toEqual(connect);
  });

  it('refuses no client certificate and a certificate from another CA', async () => {
    const before = other.handled();
    const url = `https://${other.host}:${other.port}/`;
    expect(await rejectionCode(get(url, { ca: pki.ca.cert, servername: RELAY_TLS_SERVERNAME }))).toMatch(/UND_ERR_SOCKET|ECONNRESET|ERR_SSL/);
    const foreign = await rejectionCode(get(url, { ca: pki.ca.cert, cert: foreignClient.certPem, key: foreignClient.keyPem, servername: RELAY_TLS_SERVERNAME }));
    expect(foreign).toMatch(/UND_ERR_SOCKET|ECONNRESET|ERR_SSL/);
    expect(other.handled()).toBe(before);
  });

  it('keeps hostname verification on: 127.x without servername fails, 127.0.0.1 passes on its IP SAN', async () => {
    const tls = { ca: pki.ca.cert, cert: pki.operator.cert, key: pki.operator.key };
    expect(await rejectionCode(get(`https://${other.host}:${other.port}/`, tls))).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect((await get(`https://${v4.host}:${v4.port}/`, tls)).status).toBe(200);
    expect(await rejectionCode(get(`https://${other.host}:${other.port}/`, { ...tls, servername: 'relay.example' }))).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('does not trust a relay certificate from another CA', async () => {
    const code = await rejectionCode(get(`https://${other.host}:${other.port}/`, { ...operatorClientTlsOptions(pki), ca: foreignCa.certPem }));
    expect(code).toMatch(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });
});
