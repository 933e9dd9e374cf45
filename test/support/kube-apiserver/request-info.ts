/**
 * What a request is about, from its method and path, as the real RequestInfoFactory reads it: resource requests
 * under /api/v1 and /apis/<group>/<version> (namespace, resource, name, subresource, verb), everything else a
 * non-resource request (discovery, health) authorized by path.
 */
export interface RequestInfo {
  isResourceRequest: boolean;
  path: string;
  /** get list watch create update patch delete deletecollection; for non-resource requests the lowercase method. */
  verb: string;
  apiGroup: string;
  apiVersion: string;
  namespace: string;
  resource: string;
  subresource: string;
  name: string;
}

const METHOD_VERBS: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete', GET: 'get', HEAD: 'get' };

function truthy(value: string | null): boolean {
  return value !== null && value !== '' && value !== 'false' && value !== '0';
}

export function requestInfo(method: string, url: URL): RequestInfo {
  const path = url.pathname;
  const nonResource: RequestInfo = {
    isResourceRequest: false,
    path,
    verb: method.toLowerCase(),
    apiGroup: '',
    apiVersion: '',
    namespace: '',
    resource: '',
    subresource: '',
    name: '',
  };
  const parts = path.split('/').filter((p) => p !== '').map((p) => decodeURIComponent(p));
  let rest: string[];
  let apiGroup: string;
  let apiVersion: string;
  if (parts[0] === 'api' && parts.length >= 3) {
    apiGroup = '';
    apiVersion = parts[1]!;
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    apiGroup = parts[1]!;
    apiVersion = parts[2]!;
    rest = parts.slice(3);
  } else return nonResource;

  let namespace = '';
  // /namespaces/<ns>/<resource>...; /namespaces/<name> and /namespaces/<name>/status are the namespace itself.
  if (rest[0] === 'namespaces' && rest.length >= 2) {
    namespace = rest[1]!;
    if (rest.length > 2 && rest[2] !== 'status' && rest[2] !== 'finalize') rest = rest.slice(2);
  }
  const [resource = '', name = '', subresource = '', ...extra] = rest;
  if (extra.length > 0) return nonResource;

  let verb = METHOD_VERBS[method] ?? method.toLowerCase();
  if (name === '') {
    if (verb === 'get') verb = 'list';
    else if (verb === 'delete') verb = 'deletecollection';
  }
  if ((verb === 'list' || verb === 'get') && truthy(url.searchParams.get('watch'))) verb = 'watch';
  return { isResourceRequest: true, path, verb, apiGroup, apiVersion, namespace, resource, subresource, name };
}
