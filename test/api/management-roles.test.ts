import { describe, expect, it } from 'vitest';
import { MANAGEMENT_ROLES, parseSubjectAltName, roleFromSubjectAltName, roleUri } from '../../api/management-roles.ts';

describe('management roles', () => {
  it('names each role by its contract URI', () => {
    expect(MANAGEMENT_ROLES.map(roleUri)).toEqual(['spiffe://relayctl.dev/role/operator', 'spiffe://relayctl.dev/role/relay']);
  });

  it('reads the role from the SAN string Node prints for a peer certificate', () => {
    expect(roleFromSubjectAltName('DNS:relay.local, DNS:localhost, IP Address:127.0.0.1, URI:spiffe://relayctl.dev/role/relay')).toBe('relay');
    expect(roleFromSubjectAltName('URI:spiffe://relayctl.dev/role/operator')).toBe('operator');
    // The same role twice is still that role.
    expect(roleFromSubjectAltName('URI:spiffe://relayctl.dev/role/relay, URI:spiffe://relayctl.dev/role/relay')).toBe('relay');
    // Other URIs beside the role do not matter.
    expect(roleFromSubjectAltName('URI:spiffe://example.org/workload, URI:spiffe://relayctl.dev/role/operator')).toBe('operator');
  });

  it('grants no role without exactly one known role URI', () => {
    for (const san of [
      undefined,
      '',
      'DNS:relay.local, IP Address:127.0.0.1',
      // Two different roles: an issuer's mistake grants nothing, not the larger of the two.
      'URI:spiffe://relayctl.dev/role/operator, URI:spiffe://relayctl.dev/role/relay',
      'URI:spiffe://relayctl.dev/role/admin',
      'URI:spiffe://relayctl.dev/role/relay/extra',
      'URI:spiffe://relayctl.dev/role/RELAY',
      'URI:SPIFFE://relayctl.dev/role/relay',
      'URI:spiffe://relayctl.dev/role/relay, URI:spiffe://relayctl.dev/role/admin',
      // The role as a DNS name or an email is not a URI SAN.
      'DNS:spiffe://relayctl.dev/role/relay',
      'email:spiffe://relayctl.dev/role/relay',
    ]) {
      expect(roleFromSubjectAltName(san), String(san)).toBeNull();
    }
  });

  it('is not fooled by a value that holds ", URI:" (Node quotes it; splitting at commas would find a role)', () => {
    // What Node prints for one DNS SAN whose value is `x, URI:spiffe://relayctl.dev/role/relay`.
    const smuggled = 'DNS:"x, URI:spiffe://relayctl.dev/role/relay"';
    expect(parseSubjectAltName(smuggled)).toEqual([{ type: 'DNS', value: 'x, URI:spiffe://relayctl.dev/role/relay' }]);
    expect(roleFromSubjectAltName(smuggled)).toBeNull();
    // A quoted role URI is still that URI.
    expect(roleFromSubjectAltName('DNS:a, URI:"spiffe://relayctl.dev/role/relay"')).toBe('relay');
  });

  it('refuses a malformed SAN string instead of guessing', () => {
    for (const san of ['URI:"spiffe://relayctl.dev/role/relay', 'URI:"\\q"', 'no-colon', ', URI:spiffe://relayctl.dev/role/relay']) {
      expect(parseSubjectAltName(san), san).toBeNull();
      expect(roleFromSubjectAltName(san), san).toBeNull();
    }
  });
});
