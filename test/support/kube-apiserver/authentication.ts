/**
 * Who is calling, as the real authenticator chain decides: a client certificate signed by the cluster CA (x509),
 * else a bearer token (static users, and service-account tokens the kubelet stand-in mounts into pods). Nothing
 * else authenticates: anonymous requests get 401, as with --anonymous-auth=false.
 *
 * Simplification: a certificate user is recognised by the certificate's fingerprint (the stand-in issued it)
 * and takes its name and groups from the user's definition; the real server reads them from the subject's CN
 * and O. The certificates are issued with CN = the user name, so both agree.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

export const GROUP_AUTHENTICATED = 'system:authenticated';
export const GROUP_MASTERS = 'system:masters';

export interface UserInfo {
  name: string;
  /** Includes system:authenticated. */
  groups: readonly string[];
}

export function serviceAccountUser(namespace: string, name: string): UserInfo {
  return {
    name: `system:serviceaccount:${namespace}:${name}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, GROUP_AUTHENTICATED],
  };
}

/** `system:serviceaccount:<ns>:<name>` -> { namespace, name }, else null. */
export function parseServiceAccountName(user: string): { namespace: string; name: string } | null {
  const match = user.match(/^system:serviceaccount:([^:]+):([^:]+)$/);
  return match === null ? null : { namespace: match[1]!, name: match[2]! };
}

export class Authenticator {
  private readonly tokens = new Map<string, UserInfo>();
  private readonly certificates = new Map<string, UserInfo>();
  private readonly serviceAccountExists: (namespace: string, name: string) => boolean;

  /** `serviceAccountExists`: a service-account token stops working once its ServiceAccount is deleted. */
  constructor(serviceAccountExists: (namespace: string, name: string) => boolean) {
    this.serviceAccountExists = serviceAccountExists;
  }

  addToken(token: string, user: UserInfo): void {
    this.tokens.set(token, user);
  }

  /** `fingerprint256` as node:crypto prints it. */
  addCertificate(fingerprint256: string, user: UserInfo): void {
    this.certificates.set(fingerprint256, user);
  }

  /** A new opaque token for a service account (what the kubelet projects into a pod). */
  issueServiceAccountToken(namespace: string, name: string): string {
    const token = `sa.${randomBytes(24).toString('base64url')}`;
    this.tokens.set(token, serviceAccountUser(namespace, name));
    return token;
  }

  authenticate(request: IncomingMessage): UserInfo | null {
    const socket = request.socket as TLSSocket;
    if (socket.authorized === true) {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      const user = fingerprint === undefined ? undefined : this.certificates.get(fingerprint);
      if (user !== undefined) return user;
    }
    const header = request.headers.authorization;
    if (header === undefined) return null;
    const match = header.match(/^Bearer\s+(\S+)\s*$/i);
    if (match === null) return null;
    const user = this.tokens.get(match[1]!);
    if (user === undefined) return null;
    const account = parseServiceAccountName(user.name);
    if (account !== null && !this.serviceAccountExists(account.namespace, account.name)) return null;
    return user;
  }
}
