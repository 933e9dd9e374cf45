import { CcmRecordProtection } from '../../client/dtls/ccm.ts';
import { deriveTrafficKeys } from '../../client/dtls/prf.ts';
import { RECORD_HEADER_LENGTH, type RecordView } from './record.ts';

/**
 * Whether a record from the device authenticates under a session's keys, computed in JS from the
 * master secret and randoms (the same PRF and AES-CCM-8 the device-side client uses), so that no
 * native socket state moves. Used to check a sibling relay's claim on a session.
 */
export function recordAuthenticates(dtls: { master: Buffer; randoms: Buffer }, datagram: Buffer, record: RecordView): boolean {
  const clientRandom = dtls.randoms.subarray(0, 32);
  const serverRandom = dtls.randoms.subarray(32, 64);
  const keys = deriveTrafficKeys(dtls.master, clientRandom, serverRandom);
  const protection = new CcmRecordProtection({
    writeKey: keys.serverWriteKey,
    writeIv: keys.serverWriteIv,
    readKey: keys.clientWriteKey,
    readIv: keys.clientWriteIv,
  });
  const header = {
    type: record.type,
    version: record.version,
    epoch: record.epoch,
    sequence: record.sequence,
    length: record.length - RECORD_HEADER_LENGTH,
    offset: record.offset,
  };
  return protection.open(datagram, header) !== null;
}
