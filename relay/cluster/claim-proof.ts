import { CCM_RECORD_OVERHEAD, ContentType, RANDOM_LENGTH } from '../../api/dtls/constants.ts';
import { deriveTrafficKeys } from '../../api/dtls/prf.ts';
import { parseRecord } from '../../api/dtls/record.ts';
import { recordProtectionFor } from '../../api/dtls/record-protection.ts';
import type { ReplayWindow } from '../../api/dtls/replay-window.ts';

/**
 * Whether a datagram a sibling received proves that the device is talking to that sibling now, so
 * that this relay may hand the session over: its first record is application data of the session's
 * epoch, carries a payload, has not been seen here (the replay window accepts it), and
 * authenticates under the session's client write key.
 *
 * "Not seen here" holds for every record this relay processed: an authentic record with a payload
 * is marked in the window as soon as it is processed, and so is the client's Finished when the
 * handshake completes. Records without a payload are refused outright, because mbedtls does not
 * tell whether such a record authenticated, so they are never marked.
 *
 * Checked in JS (PRF and AES-CCM-8 from the master secret) without touching the native socket or
 * the window: a failed proof costs the session nothing.
 */
export function claimProofHolds(datagram: Buffer, replay: ReplayWindow, dtls: { master: Buffer; randoms: Buffer }): boolean {
  const record = parseRecord(datagram, 0);
  if (record === null || record.type !== ContentType.applicationData || record.epoch !== replay.epoch) return false;
  if (record.length <= CCM_RECORD_OVERHEAD) return false;
  if (!replay.accepts(record.epoch, record.sequence)) return false;
  const keys = deriveTrafficKeys(dtls.master, dtls.randoms.subarray(0, RANDOM_LENGTH), dtls.randoms.subarray(RANDOM_LENGTH, 2 * RANDOM_LENGTH));
  return recordProtectionFor('server', keys).open(datagram, record) !== null;
}
