/**
 * Where relayctl finds its cluster, as kubectl does (client-go's loading rules):
 *   1. --kubeconfig: that file only; it must exist.
 *   2. $KUBECONFIG: a list of files (':' separated, ';' on Windows), merged; missing files are skipped. For every
 *      cluster, user and context name, and for current-context, the first file that sets it wins.
 *   3. ~/.kube/config.
 *   4. The in-cluster service account (KUBERNETES_SERVICE_HOST/PORT and the mounted token).
 * Then --context (else current-context) picks the cluster and user, and the namespace is -n, else the context's
 * namespace, else "default" (in-cluster: $POD_NAMESPACE, else the service account's namespace).
 */
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { isIPv6 } from 'node:net';
import { KubeConfig, type Cluster, type Context, type User } from '@kubernetes/client-node';
import { KubeErrorCode, KubernetesPlatformError } from './kube-errors.ts';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface ConfigOptions {
  /** --kubeconfig */
  kubeconfig?: string;
  /** --context */
  context?: string;
  /** -n/--namespace */
  namespace?: string;
}

/** What the resolution reads besides the files it names; tests pass their own. */
export interface ConfigEnvironment {
  env: Readonly<Record<string, string | undefined>>;
  /** Home directory (for ~/.kube/config), or null. */
  home: string | null;
  serviceAccountDir: string;
}

export interface ResolvedConfig {
  kubeConfig: KubeConfig;
  context: string;
  namespace: string;
  server: string;
  /** The kubeconfig user, or the service account (system:serviceaccount:<ns>:<name>) in a cluster. */
  user: string;
  /** Loaded from the in-cluster service account: relayctl runs in the cluster it acts on. */
  inCluster: boolean;
  /** Where the configuration came from: the files, or "in-cluster service account". */
  source: string;
}

export function systemEnvironment(): ConfigEnvironment {
  return { env: process.env, home: process.env.HOME ?? process.env.USERPROFILE ?? null, serviceAccountDir: SERVICE_ACCOUNT_DIR };
}

export function resolveConfig(options: ConfigOptions = {}, environment: ConfigEnvironment = systemEnvironment()): ResolvedConfig {
  const loaded = loadConfig(options, environment);
  const kc = loaded.kubeConfig;
  const contextName = options.context ?? kc.getCurrentContext();
  if (contextName === undefined || contextName === '') {
    throw configError(`${loaded.source} sets no current-context; pass --context (one of: ${names(kc.getContexts())})`);
  }
  const context = kc.getContextObject(contextName);
  if (context === null) {
    throw configError(`context "${contextName}" is not in ${loaded.source} (contexts there: ${names(kc.getContexts())})`);
  }
  kc.setCurrentContext(contextName);
  const cluster = kc.getCluster(context.cluster);
  if (cluster === null) throw configError(`context "${contextName}" names cluster "${context.cluster}", which ${loaded.source} does not define`);
  const user = kc.getUser(context.user);
  if (user === null) throw configError(`context "${contextName}" names user "${context.user}", which ${loaded.source} does not define`);
  if (cluster.server.startsWith('http:')) {
    throw configError(`cluster "${cluster.name}" is reached over plain http (${cluster.server}); relayctl talks to the API server over https only`);
  }
  const namespace = options.namespace ?? context.namespace ?? 'default';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace) || namespace.length > 63) {
    throw configError(`namespace "${namespace}" is not a valid namespace name (a DNS label)`);
  }
  return {
    kubeConfig: kc,
    context: contextName,
    namespace,
    server: cluster.server,
    user: loaded.inCluster ? (loaded.serviceAccount ?? user.name) : user.name,
    inCluster: loaded.inCluster,
    source: loaded.source,
  };
}

interface Loaded {
  kubeConfig: KubeConfig;
  source: string;
  inCluster: boolean;
  serviceAccount?: string;
}

function loadConfig(options: ConfigOptions, environment: ConfigEnvironment): Loaded {
  if (options.kubeconfig !== undefined) {
    if (!existsSync(options.kubeconfig)) throw configError(`--kubeconfig ${options.kubeconfig}: no such file`);
    return { kubeConfig: mergeFiles([options.kubeconfig]), source: options.kubeconfig, inCluster: false };
  }
  const list = environment.env.KUBECONFIG;
  if (list !== undefined && list !== '') {
    const files = [...new Set(list.split(delimiter).filter((file) => file !== ''))];
    const present = files.filter((file) => existsSync(file));
    if (present.length === 0) throw configError(`KUBECONFIG names ${files.join(', ')}, and none of them exists`);
    return { kubeConfig: mergeFiles(present), source: `KUBECONFIG (${present.join(delimiter)})`, inCluster: false };
  }
  if (environment.home !== null) {
    const home = join(environment.home, '.kube', 'config');
    if (existsSync(home)) return { kubeConfig: mergeFiles([home]), source: home, inCluster: false };
  }
  const inCluster = loadInCluster(environment);
  if (inCluster !== null) return inCluster;
  throw configError(
    'no Kubernetes configuration found: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a pod with a service account',
  );
}

/** kubectl's merge: the first file to define a name (or current-context) wins; later ones only add. */
function mergeFiles(files: readonly string[]): KubeConfig {
  const clusters = new Map<string, Cluster>();
  const users = new Map<string, User>();
  const contexts = new Map<string, Context>();
  let currentContext: string | undefined;
  for (const file of files) {
    const one = new KubeConfig();
    try {
      one.loadFromFile(file);
    } catch (error) {
      throw configError(`${file} is not a usable kubeconfig: ${(error as Error).message}`, error);
    }
    for (const cluster of one.getClusters()) if (!clusters.has(cluster.name)) clusters.set(cluster.name, cluster);
    for (const user of one.getUsers()) if (!users.has(user.name)) users.set(user.name, user);
    for (const context of one.getContexts()) if (!contexts.has(context.name)) contexts.set(context.name, context);
    const current = one.getCurrentContext();
    if (currentContext === undefined && typeof current === 'string' && current !== '') currentContext = current;
  }
  const merged = new KubeConfig();
  merged.loadFromOptions({ clusters: [...clusters.values()], users: [...users.values()], contexts: [...contexts.values()], currentContext });
  return merged;
}

function loadInCluster(environment: ConfigEnvironment): Loaded | null {
  const host = environment.env.KUBERNETES_SERVICE_HOST;
  const port = environment.env.KUBERNETES_SERVICE_PORT;
  const dir = environment.serviceAccountDir;
  const tokenFile = join(dir, 'token');
  if (host === undefined || host === '' || port === undefined || port === '' || !existsSync(tokenFile)) return null;
  const namespaceFile = join(dir, 'namespace');
  const namespace = environment.env.POD_NAMESPACE || (existsSync(namespaceFile) ? readFileSync(namespaceFile, 'utf8').trim() : '') || undefined;
  const kc = new KubeConfig();
  // Like client-node's loadFromCluster, with the token re-read from its file (projected tokens rotate).
  kc.loadFromOptions({
    clusters: [{ name: 'in-cluster', server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`, caFile: join(dir, 'ca.crt'), skipTLSVerify: false }],
    users: [{ name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile } } }],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster', namespace }],
    currentContext: 'in-cluster',
  });
  return {
    kubeConfig: kc,
    source: 'in-cluster service account',
    inCluster: true,
    serviceAccount: serviceAccountOf(readFileSync(tokenFile, 'utf8')),
  };
}

/** The subject of a service account token (its public claims; the signature is not needed to read them). */
export function serviceAccountOf(token: string): string | undefined {
  const payload = token.trim().split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof claims.sub === 'string' ? claims.sub : undefined;
  } catch {
    return undefined;
  }
}

function names(list: ReadonlyArray<{ name: string }>): string {
  return list.length === 0 ? 'none' : list.map((item) => item.name).join(', ');
}

function configError(message: string, cause?: unknown): KubernetesPlatformError {
  return new KubernetesPlatformError(KubeErrorCode.Config, message, { cause });
}
