import { describe, expect, test } from 'vitest';
import { parseImageReference } from '../../lib/image-reference.ts';

const SHA256 = `sha256:${'0123456789abcdef'.repeat(4)}`;

describe('image references (distribution/reference grammar)', () => {
  test.each([
    ['relay', { name: 'relay', tag: null, digest: null }],
    ['relay:1.1', { name: 'relay', tag: '1.1', digest: null }],
    ['relay:0.1.0-next', { name: 'relay', tag: '0.1.0-next', digest: null }],
    ['library/ubuntu:22.04', { name: 'library/ubuntu', tag: '22.04', digest: null }],
    ['localhost:5000/relay:1', { name: 'localhost:5000/relay', tag: '1', digest: null }],
    ['registry.example.com:5000/team/relay:1.2', { name: 'registry.example.com:5000/team/relay', tag: '1.2', digest: null }],
    ['[::1]:5000/relay', { name: '[::1]:5000/relay', tag: null, digest: null }],
    ['My.Registry.io/relay', { name: 'My.Registry.io/relay', tag: null, digest: null }],
    ['a_b__c/d-e--f.g:T_1', { name: 'a_b__c/d-e--f.g', tag: 'T_1', digest: null }],
    [`ghcr.io/org/relay@${SHA256}`, { name: 'ghcr.io/org/relay', tag: null, digest: SHA256 }],
    [`ghcr.io/org/relay:1.2@${SHA256}`, { name: 'ghcr.io/org/relay', tag: '1.2', digest: SHA256 }],
    [`relay:${'t'.repeat(128)}`, { name: 'relay', tag: 't'.repeat(128), digest: null }],
  ])('accepts %s', (text, parsed) => {
    expect(parseImageReference(text)).toEqual(parsed);
  });

  test.each([
    ['', /it is empty/],
    ['relay:1 2', /contains whitespace/],
    ['Relay:1', /the repository name "Relay" must be lowercase/],
    ['ghcr.io/Org/relay', /must be lowercase/],
    ['relay:', /the tag after ":" is empty/],
    ['relay:-x', /the tag "-x" is not valid/],
    [`relay:${'t'.repeat(129)}`, /the tag "t+" is not valid/],
    ['relay::1', /the repository name "relay:" is not valid/],
    ['-relay', /the repository name "-relay" is not valid/],
    ['relay/', /the repository name "relay\/" is not valid/],
    ['a//b', /the repository name "a\/\/b" is not valid/],
    ['relay.-x', /is not valid/],
    ['relay@sha256:abc', /the digest "sha256:abc" is not <algorithm>:<hex>/],
    [`relay@md5:${'a'.repeat(32)}`, /digest algorithm "md5" is not supported/],
    [`relay@sha256:${'a'.repeat(63)}`, /a sha256 digest is 64 lowercase hex digits, got 63 characters/],
    [`relay@sha256:${'A'.repeat(64)}`, /got 64 characters with uppercase letters/],
    [`${'a'.repeat(256)}:1`, /longer than 255 characters/],
  ])('refuses %j, saying which part is wrong', (text, message) => {
    expect(() => parseImageReference(text)).toThrow(message);
  });
});
