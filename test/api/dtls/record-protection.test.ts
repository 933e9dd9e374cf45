import { createCipheriv, createDecipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deriveTrafficKeys } from '../../../api/dtls/prf.ts';
import { CcmRecordProtection, fillCcmAad, fillCcmNonce, recordProtectionFor } from '../../../api/dtls/record-protection.ts';
import { ContentType } from '../../../api/dtls/constants.ts';
import { createRecordHeader, readRecordHeader } from '../../../api/dtls/record.ts';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('AES-128-CCM primitive', () => {
  // NIST SP 800-38C Appendix C, Example 3: Klen 128, Tlen 64, Nlen 96, Alen 160, Plen 192.
  const key = hex('40414243 44454647 48494a4b 4c4d4e4f');
  const nonce = hex('10111213 14151617 18191a1b');
  const aad = hex('00010203 04050607 08090a0b 0c0d0e0f 10111213');
  const plaintext = hex('20212223 24252627 28292a2b 2c2d2e2f 30313233 34353637');
  const expected = hex('e3b201a9 f5b71a7a 9b1ceaec cd97e70b 6176aad9 a4428aa5 484392fb c1b09951');

  it('encrypts NIST SP 800-38C example 3 with a 12-byte nonce and an 8-byte tag', () => {
    const cipher = createCipheriv('aes-128-ccm', key, nonce, { authTagLength: 8 });
    cipher.setAAD(aad, { plaintextLength: plaintext.length });
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    expect(Buffer.concat([ciphertext, cipher.getAuthTag()])).toEqual(expected);
  });

  it('decrypts it back and rejects a modified tag', () => {
    const open = (tag: Buffer) => {
      const decipher = createDecipheriv('aes-128-ccm', key, nonce, { authTagLength: 8 });
      decipher.setAuthTag(tag);
      decipher.setAAD(aad, { plaintextLength: plaintext.length });
      const output = decipher.update(expected.subarray(0, 24));
      decipher.final();
      return output;
    };
    expect(open(expected.subarray(24))).toEqual(plaintext);
    const badTag = Buffer.from(expected.subarray(24));
    badTag[0]! ^= 1;
    expect(() => open(badTag)).toThrow();
  });
});

describe('record nonce and AAD', () => {
  it('builds the nonce as implicit IV | epoch | sequence', () => {
    const nonce = Buffer.alloc(12);
    fillCcmNonce(nonce, hex('a1a2a3a4'), hex('0001 00000000002a'));
    expect(nonce.toString('hex')).toBe('a1a2a3a4' + '0001' + '00000000002a');
  });

  it('builds the AAD as epoch | sequence | type | version | plaintext length', () => {
    const aad = Buffer.alloc(13);
    fillCcmAad(aad, hex('0001 00000000002a'), ContentType.applicationData, 0xfefd, 300);
    expect(aad.toString('hex')).toBe('0001' + '00000000002a' + '17' + 'fefd' + '012c');
  });
});

describe('CcmRecordProtection', () => {
  const clientKey = hex('000102030405060708090a0b0c0d0e0f');
  const serverKey = hex('f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff');
  const clientIv = hex('c1c2c3c4');
  const serverIv = hex('5a5b5c5d');
  const client = () => new CcmRecordProtection({ writeKey: clientKey, writeIv: clientIv, readKey: serverKey, readIv: serverIv });
  const server = () => new CcmRecordProtection({ writeKey: serverKey, writeIv: serverIv, readKey: clientKey, readIv: clientIv });

  const parse = (record: Buffer) => {
    const header = createRecordHeader();
    expect(readRecordHeader(record, 0, header)).toBe(record.length);
    return header;
  };

  it('lays out header | explicit nonce | ciphertext | tag, decryptable with the nonce and AAD built by hand', () => {
    const plaintext = Buffer.from('hello relay');
    const record = client().seal(ContentType.applicationData, 1, 0x123456789a, plaintext);
    expect(record.subarray(0, 13).toString('hex')).toBe('17' + 'fefd' + '0001' + '00123456789a' + '001b'); // 8 + 11 + 8 bytes
    expect(record.length).toBe(13 + 8 + plaintext.length + 8);
    expect(record.subarray(13, 21).toString('hex')).toBe('0001' + '00123456789a');

    const decipher = createDecipheriv('aes-128-ccm', clientKey, hex('c1c2c3c4' + '0001' + '00123456789a'), { authTagLength: 8 });
    decipher.setAuthTag(record.subarray(record.length - 8));
    decipher.setAAD(hex('0001' + '00123456789a' + '17' + 'fefd' + '000b'), { plaintextLength: plaintext.length });
    const opened = decipher.update(record.subarray(21, record.length - 8));
    decipher.final();
    expect(opened).toEqual(plaintext);
  });

  it('round-trips between the two directions, including an empty plaintext', () => {
    for (const plaintext of [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(800, 7)]) {
      const record = client().seal(ContentType.applicationData, 1, 5, plaintext);
      expect(server().open(record, parse(record))).toEqual(plaintext);
    }
  });

  it('finds a record at an offset inside a datagram', () => {
    const first = client().seal(ContentType.alert, 1, 1, Buffer.of(1, 0));
    const second = client().seal(ContentType.applicationData, 1, 2, Buffer.from('second'));
    const datagram = Buffer.concat([first, second]);
    const header = createRecordHeader();
    readRecordHeader(datagram, first.length, header);
    expect(server().open(datagram, header)).toEqual(Buffer.from('second'));
  });

  it('rejects any modified byte: header (AAD), explicit nonce, ciphertext or tag', () => {
    const record = client().seal(ContentType.applicationData, 1, 9, Buffer.from('integrity'));
    const protection = server();
    for (let index = 0; index < record.length; index++) {
      if (index >= 11 && index <= 12) continue; // the length field changes the framing, covered below
      const tampered = Buffer.from(record);
      tampered[index]! ^= 0x01;
      expect(protection.open(tampered, parse(tampered)), `byte ${index}`).toBeNull();
    }
  });

  it('rejects records too short to hold a nonce and a tag, and keys of the wrong direction', () => {
    const header = createRecordHeader();
    const short = hex('17 fefd 0001 000000000001 000f' + '00'.repeat(15));
    readRecordHeader(short, 0, header);
    expect(server().open(short, header)).toBeNull();
    const record = client().seal(ContentType.applicationData, 1, 3, Buffer.from('mine'));
    expect(client().open(record, parse(record))).toBeNull();
  });

  it('checks key and IV sizes', () => {
    expect(() => new CcmRecordProtection({ writeKey: Buffer.alloc(15), writeIv: clientIv, readKey: serverKey, readIv: serverIv }))
      .toThrow(/writeKey/);
    expect(() => new CcmRecordProtection({ writeKey: clientKey, writeIv: clientIv, readKey: serverKey, readIv: Buffer.alloc(8) }))
      .toThrow(/readIv/);
  });

  it('gives each end of a session its direction from the keys both derived', () => {
    const keys = deriveTrafficKeys(Buffer.alloc(48, 3), Buffer.alloc(32, 1), Buffer.alloc(32, 2));
    const device = recordProtectionFor('client', keys);
    const relay = recordProtectionFor('server', keys);
    const up = device.seal(ContentType.applicationData, 1, 7, Buffer.from('up'));
    const down = relay.seal(ContentType.applicationData, 1, 7, Buffer.from('down'));
    expect(relay.open(up, parse(up))).toEqual(Buffer.from('up'));
    expect(device.open(down, parse(down))).toEqual(Buffer.from('down'));
    // Same epoch and sequence, different keys and IVs: the two directions never share a nonce.
    expect(device.open(up, parse(up))).toBeNull();
  });
});
