/**
 * The stand-in cluster's PKI: its own CA, the API server's certificate (127.0.0.1, localhost and the in-cluster
 * names), and client certificates for users who authenticate with one. Issued with the project's PKI
 * helpers (pki/certificates.ts, ECDSA P-256), in memory, for the life of the server.
 */
import { createCa, issueCertificate, type IssuedCertificate } from '../../../pki/certificates.ts';

export interface ClusterPki {
  ca: IssuedCertificate;
  server: IssuedCertificate;
}

export async function createClusterPki(): Promise<ClusterPki> {
  const ca = await createCa({ commonName: 'kube-apiserver-standin-ca', validityDays: 7 });
  const server = await issueCertificate(ca, {
    commonName: 'kube-apiserver',
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
    ipAddresses: ['127.0.0.1', '::1'],
    usage: 'server',
    validityDays: 7,
  });
  return { ca, server };
}

/** A client certificate with CN = the user name. */
export function issueClientCertificate(pki: ClusterPki, user: string): Promise<IssuedCertificate> {
  return issueCertificate(pki.ca, { commonName: user, usage: 'client', validityDays: 7 });
}
