/**
 * Kubernetes API failures as errors a user can act on. The semantic ones become the orchestrator's errors
 * (../../errors.ts: not found, already exists, conflict, unavailable), so the step machine reacts to a 409 here as
 * to the local platform's; the rest (credentials, RBAC, a refused field, a config that cannot be used) are
 * KubernetesPlatformErrors whose message says what to change. Callers branch on `code`, never on instanceof.
 * Pure: works on what the client threw, does no I/O.
 */
import { alreadyExistsError, conflictError, notFoundError, unavailableError, type OrchestratorError } from '../../errors.ts';

export const KubeErrorCode = {
  /** No usable kubeconfig, context, cluster or user; or an option that cannot work. */
  Config: 'ERR_KUBE_CONFIG',
  /** 401: the API server did not accept the credentials. */
  Unauthorized: 'ERR_KUBE_UNAUTHORIZED',
  /** 403: RBAC (or an admission policy) refused the call. */
  Forbidden: 'ERR_KUBE_FORBIDDEN',
  /** 400/422: the API server refused the object or a field of it. */
  Invalid: 'ERR_KUBE_INVALID',
  /** 405/406/415/501: the API server does not support the call as made (an old or unusual server). */
  Unsupported: 'ERR_KUBE_UNSUPPORTED',
  /** The API server's certificate does not verify against the kubeconfig's certificate authority. */
  ServerTls: 'ERR_KUBE_SERVER_TLS',
  /** The active StatefulSet cannot be copied into a new set (no relay container, an overlapping selector). */
  Template: 'ERR_KUBE_TEMPLATE',
  /** relayctl's operator certificate for the relays' management API is missing or unusable. */
  MgmtTls: 'ERR_KUBE_MGMT_TLS',
} as const;
export type KubeErrorCode = (typeof KubeErrorCode)[keyof typeof KubeErrorCode];

export class KubernetesPlatformError extends Error {
  override name = 'KubernetesPlatformError';
  readonly code: KubeErrorCode;
  /** The API call that failed, when one did. */
  readonly call: ApiCall | undefined;
  /** HTTP status of the API server's answer, when there was one. */
  readonly status: number | undefined;

  constructor(code: KubeErrorCode, message: string, options: { call?: ApiCall; status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.call = options.call;
    this.status = options.status;
  }
}

export function isKubernetesPlatformError(value: unknown): value is KubernetesPlatformError {
  if (typeof value !== 'object' || value === null) return false;
  const code = (value as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_KUBE_');
}

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

/** One API call as RBAC sees it: what a 403 must name so that the Role can be fixed. */
export interface ApiCall {
  verb: Verb;
  /** API group; '' for the core group. */
  group: string;
  /** Plural resource, with its subresource: `statefulsets`, `pods`, `pods/portforward`. */
  resource: string;
  namespace: string;
  name?: string;
  /** Other verbs RBAC checks on the same call (a WebSocket port-forward is a GET checked as create too). */
  alsoVerbs?: readonly Verb[];
}

/** `statefulsets.apps`, `pods`: the resource as kubectl names it. */
export function qualifiedResource(call: Pick<ApiCall, 'group' | 'resource'>): string {
  return call.group === '' ? call.resource : `${call.resource}.${call.group}`;
}

export function describeCall(call: ApiCall): string {
  return `${call.verb} ${qualifiedResource(call)}${call.name === undefined ? '' : ` ${call.name}`} in namespace ${call.namespace}`;
}

/** The Role rule that allows `call`, in the manifests' YAML flow style. */
export function roleRuleFor(call: ApiCall): string {
  const verbs = [call.verb, ...(call.alsoVerbs ?? [])].map((verb) => `"${verb}"`).join(', ');
  return `{ apiGroups: ["${call.group}"], resources: ["${call.resource}"], verbs: [${verbs}] }`;
}

/** What the API server says about a failure (a metav1.Status), as far as it said it. */
export interface ApiStatus {
  code: number;
  reason: string;
  message: string;
  causes: Array<{ field: string; message: string; reason: string }>;
  retryAfterSeconds: number | null;
  /** details.kind / details.name: the object the status is about (a missing namespace names itself here). */
  kind: string;
  name: string;
}

/** Who and where, for messages: "user ci-deployer (context prod) at https://...". */
export interface CallContext {
  identity: string;
  server: string;
}

/**
 * Maps anything a client-node call threw to the error relayctl reports. `call` says what was asked, so a 403 names
 * the missing rule even when the server's Status was not readable.
 */
export function toPlatformError(error: unknown, call: ApiCall, context: CallContext): Error {
  const status = apiStatusOf(error);
  if (status !== null) return fromStatus(status, call, context, error);
  return fromTransport(error, call, context);
}

function fromStatus(status: ApiStatus, call: ApiCall, context: CallContext, cause: unknown): Error {
  const what = describeCall(call);
  const said = status.message === '' ? '' : ` (API server: ${status.message})`;
  const kube = (code: KubeErrorCode, message: string): KubernetesPlatformError =>
    new KubernetesPlatformError(code, message, { call, status: status.code, cause });
  switch (status.code) {
    case 400:
      return kube(KubeErrorCode.Invalid, `${what}: the API server refused the request as malformed${said}`);
    case 401:
      return kube(
        KubeErrorCode.Unauthorized,
        `${what}: the API server at ${context.server} did not accept the credentials of ${context.identity} (401 Unauthorized): ` +
          'the token or client certificate is missing, expired or not trusted by this cluster; refresh the kubeconfig (or the service account token) and run again',
      );
    case 403:
      return kube(KubeErrorCode.Forbidden, forbiddenMessage(status, call, context));
    case 404:
      // A create in a namespace that does not exist says so in details.kind.
      if (status.kind === 'namespaces') return notFoundError(`namespace ${status.name} (${what})`);
      return notFoundError(`${subjectOf(call)} in namespace ${call.namespace}`);
    case 409:
      if (status.reason === 'AlreadyExists') return alreadyExistsError(`${subjectOf(call)} in namespace ${call.namespace}`);
      return conflictError(subjectOf(call), undefined, 'a newer version');
    case 410:
      return unavailableError(`${what}: 410 Gone${said}`, cause);
    case 405:
    case 406:
    case 415:
    case 501:
      return kube(KubeErrorCode.Unsupported, `${what}: the API server does not support this call as made (${status.code} ${status.reason || 'unsupported'})${said}`);
    case 422:
      return kube(KubeErrorCode.Invalid, invalidMessage(status, call));
    case 429: {
      const after = status.retryAfterSeconds === null ? '' : `, retry after ${status.retryAfterSeconds} s`;
      return unavailableError(`${what}: 429 Too Many Requests (API priority and fairness or a rate limit${after})${said}`, cause);
    }
    default:
      if (status.code >= 500) return unavailableError(`${what}: ${status.code} ${status.reason || 'server error'}${said}`, cause);
      return kube(KubeErrorCode.Invalid, `${what}: unexpected answer ${status.code} ${status.reason}${said}`);
  }
}

function forbiddenMessage(status: ApiStatus, call: ApiCall, context: CallContext): string {
  const what = describeCall(call);
  // RBAC's message reads `... cannot <verb> resource "<resource>" ...`; anything else that answers 403 (a quota, a
  // pod security or webhook admission) has its own reason, which the rule would not fix.
  const rbac = status.message === '' || /\bcannot\b/.test(status.message);
  if (!rbac) return `${what}: refused by the cluster's admission (403): ${status.message}`;
  const verbs = [call.verb, ...(call.alsoVerbs ?? [])].join(' and ');
  return (
    `${what}: forbidden for ${context.identity}: its Role in namespace ${call.namespace} must allow ${verbs} on ` +
    `${call.group === '' ? '' : `${call.group}/`}${call.resource}; add the rule ${roleRuleFor(call)} ` +
    `(manifests/ ships the Role relayctl needs)${status.message === '' ? '' : `. API server: ${status.message}`}`
  );
}

function invalidMessage(status: ApiStatus, call: ApiCall): string {
  const fields = status.causes
    .filter((cause) => cause.field !== '' || cause.message !== '')
    .map((cause) => (cause.field === '' ? cause.message : `${cause.field}: ${cause.message}`));
  const detail = fields.length > 0 ? fields.join('; ') : status.message;
  return `${describeCall(call)}: the API server refused it (422 Invalid): ${detail}`;
}

const KIND_OF: Readonly<Record<string, string>> = { statefulsets: 'StatefulSet', pods: 'pod', leases: 'Lease', secrets: 'Secret' };

/** "StatefulSet relay-b", "pod relay-a-0": what a not-found or conflict is about. */
function subjectOf(call: ApiCall): string {
  const kind = KIND_OF[call.resource] ?? call.resource;
  return call.name === undefined ? kind : `${kind} ${call.name}`;
}

/**
 * The Status of an HTTP answer, whatever shape client-node gave it: ApiException (`code`, `body` as the response
 * text, `headers`), the Watch's Error (`statusCode`, no body), or a WebSocket upgrade refusal ("Unexpected server
 * response: 403"). Null when no HTTP answer came (a transport failure).
 */
export function apiStatusOf(error: unknown): ApiStatus | null {
  if (typeof error !== 'object' || error === null) return null;
  const record = error as { code?: unknown; statusCode?: unknown; body?: unknown; headers?: unknown; message?: unknown };
  let code: number | null = null;
  if (typeof record.code === 'number') code = record.code;
  else if (typeof record.statusCode === 'number') code = record.statusCode;
  else if (typeof record.message === 'string') {
    const upgrade = /Unexpected server response: (\d{3})/.exec(record.message);
    if (upgrade !== null) code = Number(upgrade[1]);
  }
  if (code === null || code < 100 || code > 599) return null;
  const body = parseStatusBody(record.body);
  const retryAfter = headerValue(record.headers, 'retry-after');
  const retryAfterSeconds = body.retryAfterSeconds ?? (retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null);
  return { ...body, code, retryAfterSeconds };
}

function parseStatusBody(body: unknown): Omit<ApiStatus, 'code'> {
  const empty = { reason: '', message: '', causes: [], retryAfterSeconds: null, kind: '', name: '' };
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return { ...empty, message: body.slice(0, 500).trim() };
    }
  }
  if (typeof value !== 'object' || value === null) return empty;
  const status = value as { reason?: unknown; message?: unknown; details?: unknown };
  const details = (typeof status.details === 'object' && status.details !== null ? status.details : {}) as {
    causes?: unknown;
    retryAfterSeconds?: unknown;
    kind?: unknown;
    name?: unknown;
  };
  const causes = Array.isArray(details.causes)
    ? details.causes.map((cause: { field?: unknown; message?: unknown; reason?: unknown }) => ({
        field: typeof cause?.field === 'string' ? cause.field : '',
        message: typeof cause?.message === 'string' ? cause.message : '',
        reason: typeof cause?.reason === 'string' ? cause.reason : '',
      }))
    : [];
  return {
    reason: typeof status.reason === 'string' ? status.reason : '',
    message: typeof status.message === 'string' ? status.message : '',
    causes,
    retryAfterSeconds: typeof details.retryAfterSeconds === 'number' ? details.retryAfterSeconds : null,
    kind: typeof details.kind === 'string' ? details.kind : '',
    name: typeof details.name === 'string' ? details.name : '',
  };
}

function headerValue(headers: unknown, name: string): string | null {
  if (typeof headers !== 'object' || headers === null) return null;
  const value = (headers as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : null;
}

/** Node's codes for a server certificate that does not verify: retrying will not help, the kubeconfig must change. */
const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function fromTransport(error: unknown, call: ApiCall, context: CallContext): OrchestratorError | KubernetesPlatformError {
  const what = describeCall(call);
  const codes = causeChain(error).map((link) => link.code).filter((code): code is string => code !== undefined);
  const tls = codes.find((code) => TLS_VERIFY_CODES.has(code));
  if (tls !== undefined) {
    return new KubernetesPlatformError(
      KubeErrorCode.ServerTls,
      `${what}: the certificate of the API server at ${context.server} does not verify (${tls}): check certificate-authority(-data) and tls-server-name of the cluster in the kubeconfig`,
      { call, cause: error },
    );
  }
  const chain = causeChain(error);
  const timedOut = chain.some((link) => link.name === 'TimeoutError');
  // A request that never left (a kubeconfig exec plugin or token file that failed) is not worth retrying.
  const network = timedOut || chain.some((link) => link.message === 'fetch failed') || codes.some((code) => NETWORK_CODE.test(code));
  const innermost = chain.at(-1);
  if (!network) {
    return new KubernetesPlatformError(
      KubeErrorCode.Config,
      `${what}: the request could not be made with the credentials of ${context.identity}: ${innermost?.message ?? String(error)}`,
      { call, cause: error },
    );
  }
  const detail = timedOut ? 'no answer in time' : `${codes.at(-1) ?? ''} ${innermost?.message ?? String(error)}`.trim();
  return unavailableError(`${what}: cannot reach the API server at ${context.server}: ${detail}`, error);
}

/** Socket and DNS failures (and undici's own, UND_ERR_*): the API server may answer a moment later. */
const NETWORK_CODE = /^(E[A-Z]+|UND_ERR_[A-Z_]+)$/;

function causeChain(error: unknown): Array<{ code?: string; name?: string; message?: string }> {
  const chain: Array<{ code?: string; name?: string; message?: string }> = [];
  let current: unknown = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    const link = current as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
    chain.push({
      code: typeof link.code === 'string' ? link.code : undefined,
      name: typeof link.name === 'string' ? link.name : undefined,
      message: typeof link.message === 'string' ? link.message : undefined,
    });
    current = link.cause;
  }
  return chain;
}
