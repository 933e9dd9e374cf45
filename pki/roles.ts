/**
 * The certificate each party of the management plane gets, by role (api/management-roles.ts, contracts.md
 * "Management API roles"): relays get a relay certificate (serverAuth for their management server, clientAuth to
 * call each other for handovers and claims), relayctl gets an operator certificate (clientAuth only). Each carries
 * its role as a URI SAN. One definition per role, RoleProfile, serves issuing (here) and checking an existing
 * certificate (checks.ts), so what is checked is exactly what is issued.
 */
import { roleUri, type ManagementRole } from '../api/management-roles.ts';
import { invalid, issueCertificate, type CaMaterial, type CertificateUsage, type IssuedCertificate } from './certificates.ts';

export interface RoleProfile {
  role: ManagementRole;
  commonName: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  usage: CertificateUsage;
}

export interface RelayNames {
  /** What peers verify relays against; at least one. On Kubernetes: relayPeerDnsNames(). */
  dnsNames: readonly string[];
  ipAddresses?: readonly string[];
  /** Default: the first DNS name. */
  commonName?: string;
}

export const OPERATOR_COMMON_NAME = 'relayctl-operator';

/**
 * DNS SANs of a relay certificate on Kubernetes (contracts.md): the headless peers Service, and any name under it
 * (a pod's own), so relays and relayctl verify a relay against the Service's name whether they connect by pod IP,
 * through the Service or through a port-forward.
 */
export function relayPeerDnsNames(name: string, namespace: string): string[] {
  const service = `${name}-peers.${namespace}.svc`;
  return [service, `*.${service}`];
}

export function relayProfile(names: RelayNames): RoleProfile {
  const [first] = names.dnsNames;
  if (first === undefined) throw invalid('a relay certificate needs at least one DNS name: peers verify relays against it');
  return {
    role: 'relay',
    commonName: names.commonName ?? first,
    dnsNames: [...names.dnsNames],
    ipAddresses: [...(names.ipAddresses ?? [])],
    usage: 'both',
  };
}

export function operatorProfile(commonName: string = OPERATOR_COMMON_NAME): RoleProfile {
  return { role: 'operator', commonName, dnsNames: [], ipAddresses: [], usage: 'client' };
}

/** Issues the certificate `profile` describes, its role as a URI SAN. */
export function issueForRole(ca: CaMaterial, profile: RoleProfile, validityDays: number): Promise<IssuedCertificate> {
  return issueCertificate(ca, {
    commonName: profile.commonName,
    dnsNames: profile.dnsNames,
    ipAddresses: profile.ipAddresses,
    uris: [roleUri(profile.role)],
    usage: profile.usage,
    validityDays,
  });
}

export async function issueRelayCertificate(ca: CaMaterial, options: RelayNames & { validityDays: number }): Promise<IssuedCertificate> {
  return issueForRole(ca, relayProfile(options), options.validityDays);
}

export async function issueOperatorCertificate(ca: CaMaterial, options: { commonName?: string; validityDays: number }): Promise<IssuedCertificate> {
  return issueForRole(ca, operatorProfile(options.commonName), options.validityDays);
}
