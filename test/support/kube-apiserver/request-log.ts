/**
 * Every API request, in arrival order, with what authorization saw: who, which verb on which resource,
 * subresource, name and namespace, and the details a test asserts on (dry run, patch content type, field manager,
 * selectors), plus the response code once it is known. Tests derive the exact sequence of calls and the set of
 * RBAC rules a client needs from it.
 */
export interface RecordedRequest {
  /** 1, 2, 3, ... in arrival order. */
  seq: number;
  user: string;
  groups: readonly string[];
  method: string;
  path: string;
  /** The RBAC verb: get list watch create update patch delete deletecollection (or the method, lowercase, for non-resource paths). */
  verb: string;
  apiGroup: string;
  resource: string;
  subresource: string;
  name: string;
  namespace: string;
  isResourceRequest: boolean;
  /** dryRun=All. */
  dryRun: boolean;
  /** The request's Content-Type, without parameters (PATCH: the patch type). */
  contentType: string | undefined;
  fieldManager: string | undefined;
  labelSelector: string | undefined;
  fieldSelector: string | undefined;
  resourceVersion: string | undefined;
  /**
   * Every verb authorization checked on this resource; more than `verb` for a WebSocket port-forward, which needs
   * both `get` (its HTTP method) and `create` (the check Kubernetes 1.35 added for WebSocket upgrades).
   */
  authorizedVerbs: readonly string[];
  /** HTTP status of the response (0 until it is sent; 101 for an upgraded port-forward). */
  code: number;
  /** The Status reason when the request failed. */
  reason: string | undefined;
}

/** An RBAC rule a request needed, as a Role would grant it. */
export interface RequiredRule {
  apiGroup: string;
  /** `pods` or `pods/portforward`. */
  resource: string;
  verb: string;
}

export class RequestLog {
  private readonly entries: RecordedRequest[] = [];

  record(fields: Omit<RecordedRequest, 'seq' | 'code' | 'reason'>): RecordedRequest {
    const entry: RecordedRequest = { seq: this.entries.length + 1, ...fields, code: 0, reason: undefined };
    this.entries.push(entry);
    return entry;
  }

  /** A copy of the log, optionally only one user's requests. */
  all(user?: string): RecordedRequest[] {
    return this.entries.filter((e) => user === undefined || e.user === user).map((e) => ({ ...e }));
  }

  clear(): void {
    this.entries.length = 0;
  }

  /** The RBAC rules a user's resource requests needed (every verb authorization checked), sorted and unique. */
  requiredRules(user: string): RequiredRule[] {
    const seen = new Map<string, RequiredRule>();
    for (const entry of this.entries) {
      if (entry.user !== user || !entry.isResourceRequest) continue;
      const resource = entry.subresource === '' ? entry.resource : `${entry.resource}/${entry.subresource}`;
      for (const verb of entry.authorizedVerbs) seen.set(`${entry.apiGroup}|${resource}|${verb}`, { apiGroup: entry.apiGroup, resource, verb });
    }
    const order = (r: RequiredRule): string[] => [r.apiGroup, r.resource, r.verb];
    return [...seen.values()].sort((a, b) => {
      const [x, y] = [order(a), order(b)];
      for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
      return 0;
    });
  }
}
