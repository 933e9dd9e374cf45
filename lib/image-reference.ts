/**
 * The syntax of a container image reference, as Docker, containerd and the kubelet read it (the grammar of
 * github.com/distribution/reference, regexp.go), so a typo is refused before an update touches anything instead
 * of surfacing minutes later as ErrImagePull:
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ domain "/" ] path-component { "/" path-component }       (at most 255 characters)
 *   domain     := host [ ":" port ]          host: DNS name, IPv4, or [IPv6]
 *   path-component := [a-z0-9]+ { separator [a-z0-9]+ }    separator: "." | "_" | "__" | "-"+
 *   tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest     := algorithm ":" hex          sha256: 64, sha384: 96, sha512: 128 lowercase hex digits
 */

const ALPHANUMERIC = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALPHANUMERIC}(?:${SEPARATOR}${ALPHANUMERIC})*`;
const REMOTE_NAME = `${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;
const NAME = `(?:${DOMAIN}/)?${REMOTE_NAME}`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';

const REFERENCE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const ANCHORED_NAME = new RegExp(`^${NAME}$`);
const ANCHORED_TAG = new RegExp(`^${TAG}$`);
const ANCHORED_DIGEST = new RegExp(`^${DIGEST}$`);

export const NAME_MAX_LENGTH = 255;

/** Hex digits of the digest algorithms the registries and runtimes accept (opencontainers/go-digest). */
const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

export interface ImageReference {
  /** Repository name, with its registry when one was given: `registry.example.com:5000/team/relay`. */
  name: string;
  tag: string | null;
  digest: string | null;
}

const EXPECTED = 'expected [registry[:port]/]path[:tag][@sha256:digest], e.g. registry.example.com:5000/team/relay:1.2';

/** Parses `text`, or throws a RangeError saying which part is wrong and what was expected. */
export function parseImageReference(text: string): ImageReference {
  const problem = (why: string): RangeError => new RangeError(`"${text}" is not a valid image reference: ${why}`);
  if (text === '') throw problem(`it is empty (${EXPECTED})`);
  if (/\s/.test(text)) throw problem('it contains whitespace');
  const match = REFERENCE.exec(text);
  if (match === null) throw problem(diagnose(text));
  const [, name = '', tag, digest] = match;
  if (name.length > NAME_MAX_LENGTH) throw problem(`the repository name is longer than ${NAME_MAX_LENGTH} characters`);
  if (digest !== undefined) {
    const [algorithm = '', hex = ''] = digest.split(':');
    const length = DIGEST_HEX_LENGTH[algorithm];
    if (length === undefined) throw problem(`digest algorithm "${algorithm}" is not supported (sha256, sha384 or sha512)`);
    if (!new RegExp(`^[a-f0-9]{${length}}$`).test(hex)) {
      throw problem(`a ${algorithm} digest is ${length} lowercase hex digits, got ${hex.length} characters${/[A-F]/.test(hex) ? ' with uppercase letters' : ''}`);
    }
  }
  return { name, tag: tag ?? null, digest: digest ?? null };
}

/** Why a reference does not match: the part that is wrong, for the error message. */
function diagnose(text: string): string {
  const at = text.indexOf('@');
  const digest = at < 0 ? null : text.slice(at + 1);
  const rest = at < 0 ? text : text.slice(0, at);
  const colon = rest.lastIndexOf(':');
  const hasTag = colon > rest.lastIndexOf('/');
  const name = hasTag ? rest.slice(0, colon) : rest;
  const tag = hasTag ? rest.slice(colon + 1) : null;
  if (digest !== null && !ANCHORED_DIGEST.test(digest)) return `the digest "${digest}" is not <algorithm>:<hex> (e.g. sha256: and 64 hex digits)`;
  if (tag !== null && !ANCHORED_TAG.test(tag)) {
    return tag === '' ? 'the tag after ":" is empty' : `the tag "${tag}" is not valid (letters, digits, "_", "." and "-", at most 128, not starting with "." or "-")`;
  }
  if (!ANCHORED_NAME.test(name) && ANCHORED_NAME.test(name.toLowerCase())) return `the repository name "${name}" must be lowercase`;
  return `the repository name "${name}" is not valid (${EXPECTED})`;
}
