import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { RelayError } from '../errors.ts';

/**
 * The little relayd reads from the Kubernetes API: one pod by name (`get pods`), for the start-up restore
 * decision. Plain HTTPS with the service-account token; relayd never loads @kubernetes/client-node (it is
 * relayctl's, and its start-up cost and size have no place in a relay).
 */

export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export type KubernetesApiConfig =
  | {
      kind: 'api';
      /** https://host:port of the API server. */
      server: string;
      /** Read again before each request: projected tokens rotate. */
      tokenFile: string;
      ca: Buffer;
      namespace: string;
    }
  | { kind: 'off'; reason: string };

async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}

/**
 * `auto`: the in-cluster API (KUBERNETES_SERVICE_HOST/PORT) when the service-account token is mounted, else off.
 * `off`. Or an https URL: that server, with the token and CA from the service-account folder (required then).
 * The namespace is the pod's (downward API), else the service account's.
 */
export async function resolveKubernetesApi(input: {
  setting: string;
  serviceAccountDir: string;
  podNamespace: string | null;
  env: Readonly<Record<string, string | undefined>>;
}): Promise<KubernetesApiConfig> {
  const { setting, serviceAccountDir: dir, env } = input;
  if (setting === 'off') return { kind: 'off', reason: '--kubernetes-api off' };
  const tokenFile = join(dir, 'token');
  const [token, caText, saNamespace] = await Promise.all([readText(tokenFile), readText(join(dir, 'ca.crt')), readText(join(dir, 'namespace'))]);
  let server: string;
  if (setting === 'auto') {
    const host = env['KUBERNETES_SERVICE_HOST'];
    if (host === undefined || host === '') return { kind: 'off', reason: 'not in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set)' };
    if (token === null) return { kind: 'off', reason: `no service-account token in ${dir} (automountServiceAccountToken off?)` };
    const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
    server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  } else {
    server = setting;
    if (token === null) throw new RelayError('ERR_RELAY_CONFIG', `--kubernetes-api ${setting}: no token in ${tokenFile} (set --service-account-dir)`);
  }
  if (caText === null) {
    if (setting === 'auto') return { kind: 'off', reason: `no ca.crt in ${dir}` };
    throw new RelayError('ERR_RELAY_CONFIG', `--kubernetes-api ${setting}: no ca.crt in ${dir} (set --service-account-dir)`);
  }
  const namespace = input.podNamespace ?? saNamespace;
  if (namespace === null || namespace === '') {
    if (setting === 'auto') return { kind: 'off', reason: `no namespace: neither --pod-namespace nor ${join(dir, 'namespace')}` };
    throw new RelayError('ERR_RELAY_CONFIG', `--kubernetes-api ${setting}: no namespace (set --pod-namespace)`);
  }
  return { kind: 'api', server, tokenFile, ca: Buffer.from(caText), namespace };
}

/** What the restore decision needs to know of a pod. */
export interface PodFacts {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** null while the pod has no address yet. */
  podIp: string | null;
  /** The container port named `mgmt`, when the spec names one. */
  mgmtPort: number | null;
  /** Being deleted (deletionTimestamp set). */
  terminating: boolean;
}

export class KubernetesReadError extends Error {
  readonly code = 'ERR_RELAY_KUBERNETES_API';
  /** HTTP status, when the API server answered. */
  readonly status: number | null;
  constructor(message: string, status: number | null = null, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KubernetesReadError';
    this.status = status;
  }
}

export interface PodReader {
  /** The pod, or null when it does not exist (404). Throws KubernetesReadError when the API cannot tell. */
  getPod(name: string): Promise<PodFacts | null>;
  close(): Promise<void>;
}

/** A pod object is a few KB; anything much larger is not what we asked for. */
const MAX_BODY_BYTES = 1024 * 1024;
const TIMEOUT_MS = 5_000;
const POD_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export class KubernetesPodReader implements PodReader {
  private readonly api: Extract<KubernetesApiConfig, { kind: 'api' }>;
  private readonly agent: Agent;

  constructor(api: Extract<KubernetesApiConfig, { kind: 'api' }>, options: { timeoutMs?: number } = {}) {
    this.api = api;
    const timeout = options.timeoutMs ?? TIMEOUT_MS;
    this.agent = new Agent({ connect: { ca: api.ca, timeout }, headersTimeout: timeout, bodyTimeout: timeout, connections: 2 });
  }

  async getPod(name: string): Promise<PodFacts | null> {
    if (!POD_NAME.test(name)) throw new KubernetesReadError(`"${name}" is not a pod name`);
    const { namespace, server, tokenFile } = this.api;
    const token = await readText(tokenFile);
    if (token === null) throw new KubernetesReadError(`cannot read the service-account token ${tokenFile}`);
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
    let response;
    try {
      response = await request(new URL(path, server), {
        method: 'GET',
        dispatcher: this.agent,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      });
    } catch (error) {
      throw new KubernetesReadError(`GET ${path} on ${server}: ${(error as Error).message}`, null, { cause: error });
    }
    const body = await readBounded(response.body, path);
    if (response.statusCode === 404) return null;
    if (response.statusCode !== 200) throw new KubernetesReadError(`GET ${path}: ${describeFailure(response.statusCode, body, namespace)}`, response.statusCode);
    let object: unknown;
    try {
      object = JSON.parse(body);
    } catch {
      throw new KubernetesReadError(`GET ${path}: the answer is not JSON`, 200);
    }
    return podFacts(object, name);
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

async function readBounded(body: AsyncIterable<Buffer> & { destroy(): unknown }, path: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      body.destroy();
      throw new KubernetesReadError(`GET ${path}: answer over ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describeFailure(status: number, body: string, namespace: string): string {
  let message = '';
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') message = parsed.message.slice(0, 300);
  } catch {
    // Not a Status object; the code says enough.
  }
  const hint = status === 401 ? 'the service-account token was refused'
    : status === 403 ? `the relays' Role must grant get on pods in namespace ${namespace}`
    : `HTTP ${status}`;
  return message === '' ? hint : `${hint}: ${message}`;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The fields we use, checked: the API server is trusted to authenticate, not to be well-formed. */
export function podFacts(object: unknown, expectedName: string): PodFacts {
  const fail = (what: string): never => {
    throw new KubernetesReadError(`pod ${expectedName}: ${what}`, 200);
  };
  if (!isRecord(object) || object['kind'] !== 'Pod') return fail('the answer is not a Pod object');
  const metadata = isRecord(object['metadata']) ? object['metadata'] : fail('no metadata');
  if (metadata['name'] !== expectedName) fail(`the answer names pod ${String(metadata['name'])}`);
  const labels: Record<string, string> = {};
  if (metadata['labels'] !== undefined) {
    if (!isRecord(metadata['labels'])) fail('metadata.labels is not a map');
    for (const [key, value] of Object.entries(metadata['labels'] as Record<string, unknown>)) {
      if (typeof value !== 'string') fail(`label ${key} is not a string`);
      labels[key] = value as string;
    }
  }
  const status = isRecord(object['status']) ? object['status'] : {};
  const podIp = typeof status['podIP'] === 'string' && status['podIP'] !== '' ? status['podIP'] : null;
  let mgmtPort: number | null = null;
  const spec = isRecord(object['spec']) ? object['spec'] : {};
  const containers = Array.isArray(spec['containers']) ? spec['containers'] : [];
  for (const container of containers) {
    const ports = isRecord(container) && Array.isArray(container['ports']) ? container['ports'] : [];
    for (const port of ports) {
      if (isRecord(port) && port['name'] === 'mgmt' && Number.isInteger(port['containerPort'])) {
        const value = port['containerPort'] as number;
        if (value > 0 && value < 65536) mgmtPort = value;
      }
    }
  }
  return { name: expectedName, labels, podIp, mgmtPort, terminating: metadata['deletionTimestamp'] != null };
}
