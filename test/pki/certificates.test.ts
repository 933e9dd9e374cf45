// certificates.ts must load before @peculiar/x509: it installs the Reflect metadata polyfill x509 needs.
import { createCa, generateDtlsKeyPair, issueCertificate, type IssuedCertificate } from '../../pki/certificates.ts';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, sign, verify, X509Certificate } from 'node:crypto';
import { inspect } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { roleFromSubjectAltName } from '../../api/management-roles.ts';
import { checkCa, checkCertificateAndKey, checkIssuedBy, checkRoleProfile } from '../../pki/checks.ts';
import {
  issueOperatorCertificate,
  issueRelayCertificate,
  operatorProfile,
  relayPeerDnsNames,
  relayProfile,
} from '../../pki/roles.ts';

const DAY = 86_400_000;
const SERVER_AUTH = x509.ExtendedKeyUsage.serverAuth as string;
const CLIENT_AUTH = x509.ExtendedKeyUsage.clientAuth as string;

const cert = (issued: IssuedCertificate): X509Certificate => new X509Certificate(issued.certPem);
const usages = (issued: IssuedCertificate): string[] => [...(cert(issued).keyUsage ?? [])].sort();

let ca: IssuedCertificate;
beforeAll(async () => {
  ca = await createCa({ commonName: 'test CA', validityDays: 30 });
});

describe('createCa / issueCertificate', () => {
  it('creates a P-256 / SHA-256 CA with critical basicConstraints and keyCertSign|cRLSign', () => {
    const caCert = cert(ca);
    expect(caCert.ca).toBe(true);
    expect(caCert.subject).toBe('CN=test CA');
    expect(caCert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(caCert.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(true);
    expect(caCert.verify(caCert.publicKey)).toBe(true);

    const parsed = new x509.X509Certificate(ca.certPem);
    expect(parsed.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-256' } });
    expect(parsed.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: true, critical: true });
    const ku = parsed.getExtension(x509.KeyUsagesExtension);
    expect(ku?.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(ku?.critical).toBe(true);
    expect(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);
  });

  it('issues leaves with the asked EKUs, SANs (DNS, IPv4, IPv6, URI), AKI = CA SKI, SKI and a random serial', async () => {
    const caSki = new x509.X509Certificate(ca.certPem).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    const ekus = { server: [SERVER_AUTH], client: [CLIENT_AUTH], both: [SERVER_AUTH, CLIENT_AUTH] } as const;
    const serials = new Set<string>();
    for (const usage of ['server', 'client', 'both'] as const) {
      const leaf = await issueCertificate(ca, {
        commonName: `leaf-${usage}`,
        dnsNames: ['relay.local', 'localhost'],
        ipAddresses: ['127.0.0.1', '::1'],
        uris: ['spiffe://example.org/leaf'],
        usage,
        validityDays: 5,
      });
      serials.add(leaf.serialNumber);
      const leafCert = cert(leaf);
      expect(leafCert.ca).toBe(false);
      expect(leafCert.verify(cert(ca).publicKey)).toBe(true);
      expect(leafCert.checkPrivateKey(createPrivateKey(leaf.keyPem))).toBe(true);
      expect(leafCert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      expect(usages(leaf)).toEqual([...ekus[usage]].sort());
      expect(leafCert.checkHost('relay.local')).toBe('relay.local');
      expect(leafCert.checkIP('127.0.0.1')).toBe('127.0.0.1');
      expect(leafCert.checkIP('::1')).toBe('::1');
      expect(leafCert.checkIP('127.0.0.2')).toBeUndefined();
      expect(leafCert.subjectAltName).toContain('URI:spiffe://example.org/leaf');

      const parsed = new x509.X509Certificate(leaf.certPem);
      expect(parsed.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(caSki);
      expect(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);
      expect(parsed.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
      expect(parsed.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: false, critical: true });
      expect(leaf.serialNumber).toMatch(/^[0-7][0-9a-f]{31}$/);
      expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBeGreaterThan(5 * DAY - 1_000);
    }
    expect(serials.size).toBe(3);
  });

  it('omits the SAN extension for a certificate without names and never outlives its CA', async () => {
    const leaf = await issueCertificate(ca, { commonName: 'op', usage: 'client', validityDays: 365 });
    expect(cert(leaf).subjectAltName).toBeUndefined();
    expect(leaf.notAfter.getTime()).toBeLessThanOrEqual(ca.notAfter.getTime());
  });

  it('refuses bad input with ERR_PKI_INVALID_ARGUMENT', async () => {
    const other = await createCa({ commonName: 'other', validityDays: 1 });
    const base = { commonName: 'x', usage: 'server', validityDays: 1 } as const;
    const cases: Array<Promise<unknown>> = [
      issueCertificate(ca, { ...base, ipAddresses: ['127.0.0.256'] }),
      issueCertificate(ca, { ...base, dnsNames: ['127.0.0.1'] }),
      issueCertificate(ca, { ...base, dnsNames: ['bad name'] }),
      issueCertificate(ca, { ...base, uris: ['not a uri'] }),
      // A comma or quote would have to be quoted in Node's SAN string: refused at the source.
      issueCertificate(ca, { ...base, uris: ['spiffe://a/b,c'] }),
      issueCertificate(ca, { ...base, usage: 'peer' as 'server' }),
      issueCertificate(ca, { ...base, validityDays: 0 }),
      issueCertificate({ certPem: ca.certPem, keyPem: other.keyPem }, base),
      issueCertificate({ certPem: 'not a cert', keyPem: ca.keyPem }, base),
      createCa({ commonName: '', validityDays: 1 }),
      issueRelayCertificate(ca, { dnsNames: [], validityDays: 1 }),
      issueRelayCertificate(ca, { dnsNames: relayPeerDnsNames('Relay_', 'prod'), validityDays: 1 }),
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

describe('certificates by role', () => {
  it('a relay certificate on Kubernetes: the peers Service names, the relay role, serverAuth and clientAuth', async () => {
    expect(relayPeerDnsNames('relay', 'prod')).toEqual(['relay-peers.prod.svc', '*.relay-peers.prod.svc']);
    const relay = await issueRelayCertificate(ca, { dnsNames: relayPeerDnsNames('relay', 'prod'), validityDays: 5 });
    const relayCert = cert(relay);
    expect(relayCert.subject).toBe('CN=relay-peers.prod.svc');
    expect(relayCert.subjectAltName).toBe('DNS:relay-peers.prod.svc, DNS:*.relay-peers.prod.svc, URI:spiffe://relayctl.dev/role/relay');
    expect(roleFromSubjectAltName(relayCert.subjectAltName)).toBe('relay');
    expect(usages(relay)).toEqual([CLIENT_AUTH, SERVER_AUTH].sort());
    // What peers verify against: the Service's name, and a pod's name under it (checkHost returns the SAN that matched).
    expect(relayCert.checkHost('relay-peers.prod.svc')).toBe('relay-peers.prod.svc');
    expect(relayCert.checkHost('relay-a-0.relay-peers.prod.svc')).toBe('*.relay-peers.prod.svc');
    expect(relayCert.checkHost('relay-peers.staging.svc')).toBeUndefined();
    expect(relayCert.verify(cert(ca).publicKey)).toBe(true);
  });

  it('an operator certificate: the operator role and clientAuth only, no host names', async () => {
    const operator = await issueOperatorCertificate(ca, { validityDays: 5 });
    const operatorCert = cert(operator);
    expect(operatorCert.subject).toBe('CN=relayctl-operator');
    expect(operatorCert.subjectAltName).toBe('URI:spiffe://relayctl.dev/role/operator');
    expect(roleFromSubjectAltName(operatorCert.subjectAltName)).toBe('operator');
    expect(usages(operator)).toEqual([CLIENT_AUTH]);
    expect(cert(await issueOperatorCertificate(ca, { commonName: 'ci@example', validityDays: 5 })).subject).toBe('CN=ci@example');
  });

  it('checkRoleProfile accepts what the profile issues and names what an older or other certificate lacks', async () => {
    const relayNames = { dnsNames: ['relay.local', 'localhost'], ipAddresses: ['127.0.0.1'] };
    const relay = cert(await issueRelayCertificate(ca, { ...relayNames, validityDays: 5 }));
    const operator = cert(await issueOperatorCertificate(ca, { validityDays: 5 }));
    expect(checkRoleProfile(relay, relayProfile(relayNames))).toEqual({ ok: true });
    expect(checkRoleProfile(operator, operatorProfile())).toEqual({ ok: true });

    // A relay certificate as relayctl issued it before roles: the same names and usages, no role.
    const roleless = cert(await issueCertificate(ca, { commonName: 'relay.local', ...relayNames, usage: 'both', validityDays: 5 }));
    expect(checkRoleProfile(roleless, relayProfile(relayNames))).toEqual({
      ok: false,
      failure: 'outdated',
      in: 'certificate',
      expected: 'subjectAltName URI:spiffe://relayctl.dev/role/relay (the relay role, and no other)',
    });
    expect(checkRoleProfile(operator, relayProfile(relayNames))).toMatchObject({ ok: false, failure: 'outdated' });
    expect(checkRoleProfile(relay, relayProfile({ dnsNames: ['relay.local', 'relay.example'] }))).toMatchObject({
      ok: false,
      expected: 'subjectAltName DNS:relay.example',
    });
    expect(checkRoleProfile(relay, relayProfile({ dnsNames: ['relay.local'], ipAddresses: ['::1'] }))).toMatchObject({
      ok: false,
      expected: 'subjectAltName IP:::1',
    });
    // An operator certificate that could also serve is not what the operator profile issues.
    const serving = cert(await issueCertificate(ca, { commonName: 'op', uris: ['spiffe://relayctl.dev/role/operator'], usage: 'both', validityDays: 5 }));
    expect(checkRoleProfile(serving, operatorProfile())).toMatchObject({ ok: false, failure: 'outdated', expected: expect.stringContaining('extendedKeyUsage') });
  });

  it('checkCertificateAndKey, checkCa and checkIssuedBy say what was expected', async () => {
    const leaf = await issueOperatorCertificate(ca, { validityDays: 10 });
    const other = await issueOperatorCertificate(ca, { validityDays: 10 });
    const [certPem, keyPem] = [Buffer.from(leaf.certPem), Buffer.from(leaf.keyPem)];
    const now = Date.now();
    expect(checkCertificateAndKey(certPem, keyPem, { now, renewBeforeMs: DAY })).toMatchObject({ ok: true });
    expect(checkCertificateAndKey(Buffer.from('junk'), keyPem, { now, renewBeforeMs: 0 })).toMatchObject({ ok: false, failure: 'corrupt', in: 'certificate' });
    expect(checkCertificateAndKey(certPem, Buffer.from(other.keyPem), { now, renewBeforeMs: 0 })).toMatchObject({
      ok: false,
      failure: 'corrupt',
      in: 'key',
      expected: 'the private key of its certificate, found a different key',
    });
    expect(checkCertificateAndKey(certPem, keyPem, { now, renewBeforeMs: 11 * DAY })).toMatchObject({ ok: false, failure: 'expiring' });
    expect(checkCertificateAndKey(certPem, keyPem, { now: now + 11 * DAY, renewBeforeMs: 0 })).toMatchObject({
      ok: false,
      failure: 'expiring',
      expected: expect.stringContaining('expired at'),
    });
    expect(checkCertificateAndKey(certPem, keyPem, { now: now - DAY, renewBeforeMs: 0 })).toMatchObject({ ok: false, failure: 'not-yet-valid' });

    expect(checkCa(cert(ca))).toEqual({ ok: true });
    expect(checkCa(cert(leaf))).toMatchObject({ ok: false, failure: 'corrupt' });
    const foreignCa = await createCa({ commonName: 'test CA', validityDays: 30 });
    expect(checkIssuedBy(cert(leaf), cert(ca), 'ca.pem')).toEqual({ ok: true });
    expect(checkIssuedBy(cert(leaf), cert(foreignCa), 'ca.pem')).toMatchObject({
      ok: false,
      failure: 'corrupt',
      expected: 'a certificate issued by ca.pem, found one from "CN=test CA"',
    });
  });
});

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
});
