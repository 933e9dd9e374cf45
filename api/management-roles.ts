/**
 * Roles on the relay's management API (mutual TLS), as docs/design/contracts.md "Management API roles" defines
 * them. The issuer decides a certificate's role by one URI SAN, `spiffe://relayctl.dev/role/<role>`; the relay's
 * management server reads it back from the verified peer certificate. The certificate generator (pki/) and the
 * server both import this module, so the names and the format cannot drift apart.
 */

export const MANAGEMENT_ROLES = ['operator', 'relay'] as const;
/** operator: relayctl and the platforms' clients. relay: a relay calling another (handover, claims). */
export type ManagementRole = (typeof MANAGEMENT_ROLES)[number];

export const ROLE_URI_PREFIX = 'spiffe://relayctl.dev/role/';

/** The URI SAN a certificate of `role` carries. */
export function roleUri(role: ManagementRole): string {
  return `${ROLE_URI_PREFIX}${role}`;
}

/**
 * The role a certificate grants, from its subject alternative names as Node prints them
 * (`tlsSocket.getPeerCertificate().subjectaltname`, `X509Certificate.subjectAltName`). Call it only for a
 * certificate the TLS layer verified against the management CA: the role is what that CA's issuer decided.
 *
 * null (no role) when the certificate carries no role URI, a role this version does not know, two different
 * roles (an issuer's mistake grants nothing rather than the larger of the two), or a string that is not a
 * well-formed SAN list. URIs are compared exactly: the issuer writes them from roleUri().
 */
export function roleFromSubjectAltName(subjectaltname: string | undefined): ManagementRole | null {
  if (subjectaltname === undefined || subjectaltname === '') return null;
  const names = parseSubjectAltName(subjectaltname);
  if (names === null) return null;
  const claimed = new Set(names.filter((name) => name.type === 'URI' && name.value.startsWith(ROLE_URI_PREFIX)).map((name) => name.value));
  if (claimed.size !== 1) return null;
  const [uri] = claimed;
  return MANAGEMENT_ROLES.find((role) => roleUri(role) === uri) ?? null;
}

export interface SubjectAltName {
  /** As Node prints it: DNS, IP Address, URI, email, ... */
  type: string;
  value: string;
}

// A JSON string literal, as Node writes a SAN value that holds a comma, a quote or a control character.
const JSON_STRING = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/;

/**
 * Splits Node's SAN string ("DNS:a, URI:b") into entries. Node quotes a value as a JSON string literal when it
 * holds ", " or a quote (CVE-2021-44532), so splitting at ", " alone would let a crafted value smuggle in an
 * entry of its own. Returns null when the string is malformed.
 */
export function parseSubjectAltName(subjectaltname: string): SubjectAltName[] | null {
  const entries: string[] = [];
  let current = '';
  let offset = 0;
  while (offset < subjectaltname.length) {
    const separator = subjectaltname.indexOf(', ', offset);
    const quote = subjectaltname.indexOf('"', offset);
    if (quote !== -1 && (separator === -1 || quote < separator)) {
      const literal = JSON_STRING.exec(subjectaltname.slice(quote));
      if (literal === null) return null;
      current += subjectaltname.slice(offset, quote) + (JSON.parse(literal[0]) as string);
      offset = quote + literal[0].length;
    } else if (separator !== -1) {
      entries.push(current + subjectaltname.slice(offset, separator));
      current = '';
      offset = separator + 2;
    } else {
      current += subjectaltname.slice(offset);
      offset = subjectaltname.length;
    }
  }
  entries.push(current);
  const names: SubjectAltName[] = [];
  for (const entry of entries) {
    const colon = entry.indexOf(':');
    if (colon <= 0) return null;
    names.push({ type: entry.slice(0, colon), value: entry.slice(colon + 1) });
  }
  return names;
}
