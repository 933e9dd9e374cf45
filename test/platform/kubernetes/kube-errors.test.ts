import { describe, expect, test } from 'vitest';
import { ApiException } from '@kubernetes/client-node';
import { ErrorCode, isOrchestratorError } from '../../../orchestrator/errors.ts';
import {
  KubeErrorCode,
  apiStatusOf,
  isKubernetesPlatformError,
  roleRuleFor,
  toPlatformError,
  type ApiCall,
} from '../../../orchestrator/platform/kubernetes/kube-errors.ts';

const context = { identity: 'ci-deployer (context prod)', server: 'https://api.example:6443' };
const patchSet: ApiCall = { verb: 'patch', group: 'apps', resource: 'statefulsets', namespace: 'relays', name: 'relay-a' };

/** What client-node 2.x throws for an answer outside 2xx: the body is the response text. */
function apiException(code: number, status: object | string | undefined, headers: Record<string, string> = {}): ApiException<unknown> {
  return new ApiException(code, 'Unknown API Status Code!', typeof status === 'string' || status === undefined ? status : JSON.stringify(status), headers);
}

function statusBody(code: number, reason: string, message: string, details: object = {}): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, details, code };
}

describe('Kubernetes API errors become errors a user can act on', () => {
  test('403 from RBAC names the verb, the resource, the namespace and the rule to add', () => {
    const error = toPlatformError(
      apiException(403, statusBody(403, 'Forbidden', 'statefulsets.apps "relay-a" is forbidden: User "system:serviceaccount:ci:relayctl" cannot patch resource "statefulsets" in API group "apps" in the namespace "relays"', { name: 'relay-a', group: 'apps', kind: 'statefulsets' })),
      patchSet,
      context,
    );
    expect(isKubernetesPlatformError(error) && error.code).toBe(KubeErrorCode.Forbidden);
    expect(error.message).toContain('patch statefulsets.apps relay-a in namespace relays: forbidden for ci-deployer (context prod)');
    expect(error.message).toContain('must allow patch on apps/statefulsets');
    expect(error.message).toContain('{ apiGroups: ["apps"], resources: ["statefulsets"], verbs: ["patch"] }');
    expect(error.message).toContain('cannot patch resource "statefulsets"');
  });

  test('403 for a WebSocket port-forward names both verbs it is checked with', () => {
    const call: ApiCall = { verb: 'get', alsoVerbs: ['create'], group: '', resource: 'pods/portforward', namespace: 'relays', name: 'relay-a-0' };
    // What the ws package reports when the upgrade is refused.
    const error = toPlatformError({ type: 'error', message: 'Unexpected server response: 403' }, call, context);
    expect(isKubernetesPlatformError(error) && error.code).toBe(KubeErrorCode.Forbidden);
    expect(error.message).toContain('must allow get and create on pods/portforward');
    expect(roleRuleFor(call)).toBe('{ apiGroups: [""], resources: ["pods/portforward"], verbs: ["get", "create"] }');
  });

  test('403 from admission (a quota) is not blamed on the Role', () => {
    const error = toPlatformError(
      apiException(403, statusBody(403, 'Forbidden', 'pods "relay-b-0" is forbidden: exceeded quota: compute, requested: cpu=1, used: cpu=4, limited: cpu=4')),
      { ...patchSet, verb: 'create' },
      context,
    );
    expect(error.message).toContain('refused by the cluster\'s admission (403): pods "relay-b-0" is forbidden: exceeded quota');
    expect(error.message).not.toContain('Role');
  });

  test('401 says the credentials were not accepted and where', () => {
    // client-node throws 401s without a body.
    const error = toPlatformError(new ApiException(401, 'Unauthorized', undefined, {}), patchSet, context);
    expect(isKubernetesPlatformError(error) && error.code).toBe(KubeErrorCode.Unauthorized);
    expect(error.message).toContain('the API server at https://api.example:6443 did not accept the credentials of ci-deployer (context prod)');
  });

  test('404, 409 AlreadyExists and 409 Conflict become the orchestrator\'s errors', () => {
    const notFound = toPlatformError(apiException(404, statusBody(404, 'NotFound', 'statefulsets.apps "relay-a" not found', { name: 'relay-a', kind: 'statefulsets' })), patchSet, context);
    expect(isOrchestratorError(notFound) && notFound.code).toBe(ErrorCode.NotFound);
    expect(notFound.message).toBe('StatefulSet relay-a in namespace relays not found');

    const noNamespace = toPlatformError(apiException(404, statusBody(404, 'NotFound', 'namespaces "relays" not found', { name: 'relays', kind: 'namespaces' })), { ...patchSet, verb: 'create' }, context);
    expect(noNamespace.message).toBe('namespace relays (create statefulsets.apps relay-a in namespace relays) not found');

    const exists = toPlatformError(apiException(409, statusBody(409, 'AlreadyExists', 'statefulsets.apps "relay-b" already exists')), { ...patchSet, verb: 'create', name: 'relay-b' }, context);
    expect(isOrchestratorError(exists) && exists.code).toBe(ErrorCode.AlreadyExists);

    const conflict = toPlatformError(apiException(409, statusBody(409, 'Conflict', 'Operation cannot be fulfilled on statefulsets.apps "relay-a": the object has been modified; please apply your changes to the latest version and try again')), patchSet, context);
    expect(isOrchestratorError(conflict) && conflict.code).toBe(ErrorCode.Conflict);
    expect(isOrchestratorError(conflict) && conflict.transient).toBe(true);
  });

  test('422 names the fields the API server refused', () => {
    const error = toPlatformError(
      apiException(422, statusBody(422, 'Invalid', 'StatefulSet.apps "relay-b" is invalid: [spec.template.spec.containers[0].image: Required value, spec.selector: Invalid value]', {
        causes: [
          { reason: 'FieldValueRequired', message: 'Required value', field: 'spec.template.spec.containers[0].image' },
          { reason: 'FieldValueInvalid', message: 'Invalid value: "map[]": selector does not match template labels', field: 'spec.selector' },
        ],
      })),
      { ...patchSet, verb: 'create', name: 'relay-b' },
      context,
    );
    expect(isKubernetesPlatformError(error) && error.code).toBe(KubeErrorCode.Invalid);
    expect(error.message).toBe(
      'create statefulsets.apps relay-b in namespace relays: the API server refused it (422 Invalid): spec.template.spec.containers[0].image: Required value; ' +
        'spec.selector: Invalid value: "map[]": selector does not match template labels',
    );
  });

  test('429 and 5xx are transient (the orchestrator retries them within its deadline); 415 is not', () => {
    for (const [code, reason] of [[429, 'TooManyRequests'], [500, 'InternalError'], [503, 'ServiceUnavailable'], [504, 'Timeout']] as const) {
      const error = toPlatformError(apiException(code, statusBody(code, reason, 'try later', { retryAfterSeconds: 2 }), { 'retry-after': '2' }), patchSet, context);
      expect(isOrchestratorError(error) && [error.code, error.transient]).toEqual([ErrorCode.Unavailable, true]);
    }
    expect(toPlatformError(apiException(429, statusBody(429, 'TooManyRequests', ''), { 'retry-after': '3' }), patchSet, context).message).toContain('retry after 3 s');
    const unsupported = toPlatformError(apiException(415, statusBody(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format')), patchSet, context);
    expect(isKubernetesPlatformError(unsupported) && unsupported.code).toBe(KubeErrorCode.Unsupported);
  });

  test('no answer at all: unreachable is transient, an untrusted server certificate is not', () => {
    const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' }) });
    const unreachable = toPlatformError(refused, patchSet, context);
    expect(isOrchestratorError(unreachable) && [unreachable.code, unreachable.transient]).toEqual([ErrorCode.Unavailable, true]);
    expect(unreachable.message).toContain('cannot reach the API server at https://api.example:6443: ECONNREFUSED connect ECONNREFUSED 127.0.0.1:6443');

    const untrusted = new TypeError('fetch failed', { cause: Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }) });
    const tls = toPlatformError(untrusted, patchSet, context);
    expect(isKubernetesPlatformError(tls) && tls.code).toBe(KubeErrorCode.ServerTls);
    expect(tls.message).toContain('check certificate-authority(-data)');
  });

  test('a request that could not be made (a credentials plugin failed) is a configuration problem, not retried', () => {
    const error = toPlatformError(new Error('Failed to refresh token: exec: executable aws not found'), patchSet, context);
    expect(isKubernetesPlatformError(error) && error.code).toBe(KubeErrorCode.Config);
    expect(error.message).toBe('patch statefulsets.apps relay-a in namespace relays: the request could not be made with the credentials of ci-deployer (context prod): Failed to refresh token: exec: executable aws not found');
    const aborted = toPlatformError(new DOMException('The operation was aborted due to timeout', 'TimeoutError'), patchSet, context);
    expect(isOrchestratorError(aborted) && [aborted.code, aborted.message]).toEqual([ErrorCode.Unavailable, 'patch statefulsets.apps relay-a in namespace relays: cannot reach the API server at https://api.example:6443: no answer in time: platform unavailable']);
  });

  test('the Status is read from every shape client-node hands over', () => {
    expect(apiStatusOf(new ApiException(500, 'x', 'not json at all', {}))).toMatchObject({ code: 500, message: 'not json at all' });
    expect(apiStatusOf(Object.assign(new Error('Gone'), { statusCode: 410 }))).toMatchObject({ code: 410 });
    expect(apiStatusOf(new Error('socket hang up'))).toBeNull();
  });
});
