import { describe, expect, it } from 'vitest';
import { deriveMasterSecret, deriveTrafficKeys, finishedVerifyData, prfSha256 } from '../../../api/dtls/prf.ts';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('TLS 1.2 PRF-SHA256', () => {
  it('matches the prf-sha256 test vector from the IETF TLS list', () => {
    // https://www.ietf.org/mail-archive/web/tls/current/msg03416.html; OpenSSL `kdf TLS1-PRF` gives the same bytes.
    const output = prfSha256(hex('9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35'), 'test label',
      hex('a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c'), 100);
    expect(output.toString('hex')).toBe(
      'e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a'
      + '6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab'
      + '4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701'
      + '87347b66');
  });

  it('returns prefixes of the same stream for shorter outputs', () => {
    const secret = hex('9bbe436ba940f017b17652849a71db35');
    const seed = hex('a0ba9f936cda311827a6f796ffd5198c');
    const long = prfSha256(secret, 'test label', seed, 100);
    for (const length of [0, 1, 12, 32, 33, 64, 99]) {
      expect(prfSha256(secret, 'test label', seed, length)).toEqual(long.subarray(0, length));
    }
  });

  it('orders the randoms as RFC 5246 says: client first for the master secret, server first for the keys', () => {
    const premaster = Buffer.alloc(32, 1);
    const clientRandom = Buffer.alloc(32, 2);
    const serverRandom = Buffer.alloc(32, 3);
    const master = deriveMasterSecret(premaster, clientRandom, serverRandom);
    expect(master).toEqual(prfSha256(premaster, 'master secret', Buffer.concat([clientRandom, serverRandom]), 48));

    const block = prfSha256(master, 'key expansion', Buffer.concat([serverRandom, clientRandom]), 40);
    expect(deriveTrafficKeys(master, clientRandom, serverRandom)).toEqual({
      clientWriteKey: block.subarray(0, 16),
      serverWriteKey: block.subarray(16, 32),
      clientWriteIv: block.subarray(32, 36),
      serverWriteIv: block.subarray(36, 40),
    });
  });

  it('computes 12-byte Finished verify data', () => {
    const master = Buffer.alloc(48, 7);
    const hash = Buffer.alloc(32, 9);
    const client = finishedVerifyData(master, 'client finished', hash);
    expect(client).toEqual(prfSha256(master, 'client finished', hash, 12));
    expect(client).not.toEqual(finishedVerifyData(master, 'server finished', hash));
  });
});
