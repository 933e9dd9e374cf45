/**
 * API errors as the real server sends them: a `Status` object (apiVersion v1, kind Status, status Failure) with the
 * message, reason, details and code that k8s.io/apimachinery/pkg/api/errors builds. Clients branch on `reason` and
 * `code`, users read `message`, so both follow the real wording.
 */
import type { GroupResource } from './resources.ts';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  apiVersion: 'v1';
  kind: 'Status';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

export class StatusError extends Error {
  readonly status: Status;

  constructor(code: number, reason: string, message: string, details?: StatusDetails) {
    super(message);
    this.name = 'StatusError';
    this.status = { apiVersion: 'v1', kind: 'Status', metadata: {}, status: 'Failure', message, reason, code };
    if (details !== undefined) this.status.details = details;
  }

  get code(): number {
    return this.status.code;
  }

  get reason(): string {
    return this.status.reason ?? '';
  }
}

/** `pods`, `statefulsets.apps`: how the real server names a resource in messages. */
export function qualified(resource: GroupResource): string {
  return resource.group === '' ? resource.resource : `${resource.resource}.${resource.group}`;
}

function details(resource: GroupResource, name: string | undefined): StatusDetails {
  const out: StatusDetails = {};
  if (name !== undefined && name !== '') out.name = name;
  if (resource.group !== '') out.group = resource.group;
  // As the real server does, details.kind carries the resource (plural) for these errors.
  out.kind = resource.resource;
  return out;
}

export function notFound(resource: GroupResource, name: string): StatusError {
  return new StatusError(404, 'NotFound', `${qualified(resource)} "${name}" not found`, details(resource, name));
}

export function alreadyExists(resource: GroupResource, name: string): StatusError {
  return new StatusError(409, 'AlreadyExists', `${qualified(resource)} "${name}" already exists`, details(resource, name));
}

export const OPTIMISTIC_LOCK_MESSAGE = 'the object has been modified; please apply your changes to the latest version and try again';

export function conflict(resource: GroupResource, name: string, why: string = OPTIMISTIC_LOCK_MESSAGE): StatusError {
  return new StatusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(resource)} "${name}": ${why}`, details(resource, name));
}

/** A field error as field.Error prints it: `spec.replicas: Invalid value: -1: must be greater than or equal to 0`. */
export interface FieldError {
  type: FieldErrorType;
  field: string;
  /** The offending value, shown in the message (Required and Forbidden show none). */
  value?: unknown;
  detail: string;
}

export type FieldErrorType =
  | 'FieldValueRequired'
  | 'FieldValueInvalid'
  | 'FieldValueForbidden'
  | 'FieldValueNotSupported'
  | 'FieldValueDuplicate'
  | 'FieldValueNotFound'
  | 'FieldValueTooLong';

const TYPE_TEXT: Record<FieldErrorType, string> = {
  FieldValueRequired: 'Required value',
  FieldValueInvalid: 'Invalid value',
  FieldValueForbidden: 'Forbidden',
  FieldValueNotSupported: 'Unsupported value',
  FieldValueDuplicate: 'Duplicate value',
  FieldValueNotFound: 'Not found',
  FieldValueTooLong: 'Too long',
};

function showValue(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** The part after the field path, as ErrorBody() prints it. */
export function fieldErrorBody(error: FieldError): string {
  const text = TYPE_TEXT[error.type];
  const showsValue = error.type === 'FieldValueInvalid' || error.type === 'FieldValueNotSupported' || error.type === 'FieldValueDuplicate' || error.type === 'FieldValueNotFound';
  const head = showsValue && error.value !== undefined ? `${text}: ${showValue(error.value)}` : text;
  return error.detail === '' ? head : `${head}: ${error.detail}`;
}

export function fieldErrorString(error: FieldError): string {
  return `${error.field}: ${fieldErrorBody(error)}`;
}

/** 422 Invalid: details.kind is the Kind here (NewInvalid takes a GroupKind), the message `StatefulSet.apps "x" is invalid: ...`. */
export function invalid(kind: { group: string; kind: string }, name: string, errors: readonly FieldError[]): StatusError {
  const qualifiedKind = kind.group === '' ? kind.kind : `${kind.kind}.${kind.group}`;
  const texts = errors.map(fieldErrorString);
  const aggregate = texts.length === 1 ? texts[0] : `[${texts.join(', ')}]`;
  const out: StatusDetails = { name, kind: kind.kind, causes: errors.map((e) => ({ reason: e.type, message: fieldErrorBody(e), field: e.field })) };
  if (kind.group !== '') out.group = kind.group;
  return new StatusError(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${aggregate}`, out);
}

export function forbidden(resource: GroupResource, name: string, why: string): StatusError {
  const subject = name === '' ? `${qualified(resource)} is forbidden` : `${qualified(resource)} "${name}" is forbidden`;
  return new StatusError(403, 'Forbidden', `${subject}: ${why}`, details(resource, name));
}

export function forbiddenPath(why: string): StatusError {
  return new StatusError(403, 'Forbidden', `forbidden: ${why}`, {});
}

export function unauthorized(): StatusError {
  return new StatusError(401, 'Unauthorized', 'Unauthorized');
}

export function badRequest(message: string): StatusError {
  return new StatusError(400, 'BadRequest', message);
}

export function methodNotAllowed(): StatusError {
  return new StatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
}

export function unsupportedMediaType(accepted: readonly string[]): StatusError {
  return new StatusError(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`,
  );
}

/** The generic 422 a JSON patch that cannot be applied gets (NewGenericServerResponse). */
export function patchNotApplicable(why: string): StatusError {
  return new StatusError(422, 'Invalid', 'the server rejected our request due to an error in our request', {
    causes: [{ reason: 'UnexpectedServerResponse', message: why }],
  });
}

export function resourceExpired(message: string): StatusError {
  return new StatusError(410, 'Expired', message);
}

export function tooLargeResourceVersion(requested: number, current: number): StatusError {
  return new StatusError(504, 'Timeout', `Too large resource version: ${requested}, current: ${current}`, {
    causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
    retryAfterSeconds: 1,
  });
}

export function requestEntityTooLarge(message: string): StatusError {
  return new StatusError(413, 'RequestEntityTooLarge', message);
}

export function internalError(message: string): StatusError {
  return new StatusError(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });
}

export function notFoundPath(): StatusError {
  return new StatusError(404, 'NotFound', 'the server could not find the requested resource', {});
}

export function namespaceTerminating(resource: GroupResource, name: string, namespace: string): StatusError {
  const error = forbidden(resource, name, `unable to create new content in namespace ${namespace} because it is being terminated`);
  error.status.details!.causes = [{ reason: 'NamespaceTerminating', message: `namespace ${namespace} is being terminated`, field: 'metadata.namespace' }];
  return error;
}
