/**
 * How relayctl reaches the relays' management API, with mutual TLS end to end either way:
 *   direct        the pod IP and management port (relayctl runs in the cluster, or pod IPs are routed to it);
 *   port-forward  through the API server (pods/portforward over WebSocket), TLS running inside the tunnel.
 * auto is direct when relayctl runs on the in-cluster service account (it acts on the cluster it runs in), else
 * port-forward, which works from anywhere the API server can be reached (a CI runner).
 *
 * The relay's certificate is checked against `<name>-peers.<namespace>.svc` (its DNS SAN) on both paths; relayctl
 * presents the operator certificate given as files or read from Secret `<name>-relayctl-tls`.
 */
import type { V1Secret } from '@kubernetes/client-node';
import { ManagementClient } from '../../../api/management-client.ts';
import type { PodInfo } from '../platform.ts';
import type { KubeApi } from './kube-api.ts';
import { KubeErrorCode, KubernetesPlatformError } from './kube-errors.ts';
import { fleetNames } from '../../../api/fleet.ts';
import { peersServername } from './labels.ts';
import { portForwardTunnel, type PortForwardOptions } from './port-forward.ts';

export type MgmtAccessMode = 'auto' | 'direct' | 'port-forward';
export type MgmtPath = 'direct' | 'port-forward';

export function chooseMgmtPath(requested: MgmtAccessMode, inCluster: boolean): MgmtPath {
  if (requested === 'auto') return inCluster ? 'direct' : 'port-forward';
  return requested;
}

/** PEM: the CA that signed the relays' certificates, and relayctl's operator certificate and key. */
export interface MgmtTlsMaterial {
  ca: Buffer | string;
  cert: Buffer | string;
  key: Buffer | string;
}

/** The operator certificate from a kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt). */
export function tlsFromSecret(secret: V1Secret): MgmtTlsMaterial {
  const name = secret.metadata?.name ?? '(unnamed)';
  const data = secret.data ?? {};
  const missing = ['tls.crt', 'tls.key', 'ca.crt'].filter((key) => typeof data[key] !== 'string' || data[key] === '');
  if (missing.length > 0) {
    throw new KubernetesPlatformError(
      KubeErrorCode.MgmtTls,
      `Secret ${name} lacks ${missing.join(', ')}: it must be a kubernetes.io/tls Secret with tls.crt, tls.key (the operator certificate) and ca.crt (the CA of the relays)`,
    );
  }
  const decode = (key: string): Buffer => Buffer.from(data[key]!, 'base64');
  return { ca: decode('ca.crt'), cert: decode('tls.crt'), key: decode('tls.key') };
}

export interface MgmtAccessOptions {
  path: MgmtPath;
  api: KubeApi;
  fleet: string;
  /** Files given by the user; else the Secret is read on first use. */
  tls?: MgmtTlsMaterial;
  portForward: Omit<PortForwardOptions, 'namespace'>;
  /** Status calls and connection setup. Default 10 s. */
  timeoutMs?: number;
}

export class MgmtAccess {
  readonly path: MgmtPath;
  readonly #options: MgmtAccessOptions;
  #client: Promise<ManagementClient> | null = null;

  constructor(options: MgmtAccessOptions) {
    this.path = options.path;
    this.#options = options;
  }

  /**
   * The URL the management client is given for `pod`: its management address when direct, else its name (the
   * tunnel opens a port-forward to that pod) with the same port.
   */
  urlOf(pod: Pick<PodInfo, 'name'> & { mgmtUrl: string }): string {
    if (this.path === 'direct') return pod.mgmtUrl;
    return `https://${pod.name}:${new URL(pod.mgmtUrl).port || '443'}`;
  }

  /** The mTLS client, made on first use (reading the Secret then); a failure is tried again next time. */
  client(): Promise<ManagementClient> {
    this.#client ??= this.#makeClient().catch((error: unknown) => {
      this.#client = null;
      throw error;
    });
    return this.#client;
  }

  async close(): Promise<void> {
    const client = await this.#client?.catch(() => null);
    await client?.close();
  }

  async #makeClient(): Promise<ManagementClient> {
    const { api, fleet } = this.#options;
    const material = this.#options.tls ?? (await this.#fromSecret());
    const tls = {
      ca: Buffer.from(material.ca),
      cert: Buffer.from(material.cert),
      key: Buffer.from(material.key),
      servername: peersServername(fleet, api.namespace),
    };
    const timeoutMs = this.#options.timeoutMs ?? 10_000;
    if (this.path === 'direct') return new ManagementClient(tls, { timeoutMs });
    return new ManagementClient(tls, {
      timeoutMs,
      tunnel: portForwardTunnel({ ...this.#options.portForward, namespace: api.namespace }),
    });
  }

  async #fromSecret(): Promise<MgmtTlsMaterial> {
    const { api, fleet } = this.#options;
    const name = fleetNames(fleet).secrets.relayctlTls;
    const secret = await api.getSecret(name);
    if (secret === null) {
      throw new KubernetesPlatformError(
        KubeErrorCode.MgmtTls,
        `Secret ${name} not found in namespace ${api.namespace}: relayctl needs its operator certificate to call the relays; ` +
          'create the Secret (kubernetes.io/tls with tls.crt, tls.key, ca.crt) or pass --mgmt-cert, --mgmt-key and --mgmt-ca',
      );
    }
    return tlsFromSecret(secret);
  }
}
