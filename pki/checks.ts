/**
 * Checks of existing material, pure: a certificate and its key belong together and are valid now (and for a
 * while), it was issued by a given CA, and it is what a role's profile issues today (names, usages, role). The
 * local platform's folder uses them to decide what to regenerate; they serve any other store of the same material.
 * A failed check says what was expected, never what the bytes held.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { parseSubjectAltName, roleFromSubjectAltName, roleUri } from '../api/management-roles.ts';
import { EXTENDED_KEY_USAGES, parseCertificate, parseP256PrivateKey } from './certificates.ts';
import type { RoleProfile } from './roles.ts';

/**
 * corrupt: unreadable, mismatched or not from the expected issuer. expiring: expired or inside the renewal
 * window. not-yet-valid: starts in the future (a clock went back). outdated: sound, but not what its profile
 * issues now (a role, name or usage added since).
 */
export type CheckFailure = 'corrupt' | 'expiring' | 'not-yet-valid' | 'outdated';

export type CheckResult<T> = ({ ok: true } & T) | { ok: false; failure: CheckFailure; in: 'certificate' | 'key'; expected: string };

export interface ValidityCheck {
  now: number;
  /** Fail certificates that expire within this many ms. */
  renewBeforeMs: number;
}

/** Parses a PEM certificate and its P-256 key, checks they belong together and the validity window. */
export function checkCertificateAndKey(certPem: Buffer, keyPem: Buffer, at: ValidityCheck): CheckResult<{ cert: X509Certificate; key: KeyObject }> {
  const cert = parseCertificate(certPem);
  if (!cert || !certPem.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
    return { ok: false, failure: 'corrupt', in: 'certificate', expected: 'a PEM "CERTIFICATE"' };
  }
  const key = parseP256PrivateKey(keyPem);
  if (!key.ok) return { ok: false, failure: 'corrupt', in: 'key', expected: `a PEM P-256 private key: ${key.problem}` };
  if (!cert.checkPrivateKey(key.key)) return { ok: false, failure: 'corrupt', in: 'key', expected: 'the private key of its certificate, found a different key' };
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (notBefore > at.now) {
    return { ok: false, failure: 'not-yet-valid', in: 'certificate', expected: `a certificate valid now, it is not valid before ${cert.validFrom} (clock went back?)` };
  }
  if (notAfter - at.renewBeforeMs <= at.now) {
    const state = notAfter <= at.now ? 'expired' : 'expires';
    return { ok: false, failure: 'expiring', in: 'certificate', expected: `a certificate valid for a while, it ${state} at ${new Date(notAfter).toISOString()}` };
  }
  return { ok: true, cert, key: key.key };
}

export function checkCa(cert: X509Certificate): CheckResult<object> {
  return cert.ca ? { ok: true } : { ok: false, failure: 'corrupt', in: 'certificate', expected: 'a CA certificate (basicConstraints CA:TRUE)' };
}

export function checkIssuedBy(cert: X509Certificate, ca: X509Certificate, caName: string): CheckResult<object> {
  if (cert.checkIssued(ca) && cert.verify(ca.publicKey)) return { ok: true };
  return { ok: false, failure: 'corrupt', in: 'certificate', expected: `a certificate issued by ${caName}, found one from "${cert.issuer}"` };
}

/** Whether `cert` carries everything `profile` issues: its role, DNS and IP names, and exactly its key usages. */
export function checkRoleProfile(cert: X509Certificate, profile: RoleProfile): CheckResult<object> {
  const outdated = (expected: string): CheckResult<object> => ({ ok: false, failure: 'outdated', in: 'certificate', expected });
  if (roleFromSubjectAltName(cert.subjectAltName) !== profile.role) {
    return outdated(`subjectAltName URI:${roleUri(profile.role)} (the ${profile.role} role, and no other)`);
  }
  const dnsNames = new Set((parseSubjectAltName(cert.subjectAltName ?? '') ?? []).filter((name) => name.type === 'DNS').map((name) => name.value.toLowerCase()));
  for (const name of profile.dnsNames) {
    if (!dnsNames.has(name.toLowerCase())) return outdated(`subjectAltName DNS:${name}`);
  }
  // checkIP is the very check TLS makes against an IP address.
  for (const ip of profile.ipAddresses) {
    if (cert.checkIP(ip) === undefined) return outdated(`subjectAltName IP:${ip}`);
  }
  const usages = [...(cert.keyUsage ?? [])].sort(); // node:crypto names the extended key usage list `keyUsage`
  const wanted = [...EXTENDED_KEY_USAGES[profile.usage]].sort();
  if (usages.join() !== wanted.join()) return outdated(`extendedKeyUsage ${wanted.join(', ')} (found ${usages.join(', ') || 'none'})`);
  return { ok: true };
}
