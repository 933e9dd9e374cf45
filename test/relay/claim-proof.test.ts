import { describe, expect, it } from 'vitest';
import { ContentType } from '../../api/dtls/constants.ts';
import { deriveTrafficKeys } from '../../api/dtls/prf.ts';
import { recordProtectionFor } from '../../api/dtls/record-protection.ts';
import { ReplayWindow } from '../../api/dtls/replay-window.ts';
import { claimProofHolds } from '../../relay/cluster/claim-proof.ts';

/** A session's secrets and the device's side of its record protection. */
function session() {
  const randoms = Buffer.concat([Buffer.alloc(32, 0xc1), Buffer.alloc(32, 0x5e)]);
  const master = Buffer.alloc(48, 0x4d);
  const device = recordProtectionFor('client', deriveTrafficKeys(master, randoms.subarray(0, 32), randoms.subarray(32)));
  // As the relay keeps it once established: the client's Finished (1, 0) and two records seen.
  const replay = new ReplayWindow(1);
  for (const sequence of [0, 1, 2]) replay.mark(1, sequence);
  return { dtls: { master, randoms }, device, replay };
}

describe('claim proof', () => {
  it('holds for an authentic application record the relay has not seen, and changes nothing', () => {
    const { dtls, device, replay } = session();
    const fresh = device.seal(ContentType.applicationData, 1, 3, Buffer.from('fresh'));
    expect(claimProofHolds(fresh, replay, dtls)).toBe(true);
    // Checking is not receiving: the record is still unseen afterwards.
    expect(replay.top).toBe(2);
    expect(claimProofHolds(fresh, replay, dtls)).toBe(true);
  });

  it('fails for every record already seen, the handshake Finished first of all', () => {
    const { dtls, device, replay } = session();
    const finished = device.seal(ContentType.handshake, 1, 0, Buffer.alloc(24, 0x14));
    expect(claimProofHolds(finished, replay, dtls)).toBe(false);
    for (const sequence of [0, 1, 2]) {
      expect(claimProofHolds(device.seal(ContentType.applicationData, 1, sequence, Buffer.from('seen')), replay, dtls), `sequence ${sequence}`).toBe(false);
    }
  });

  it('fails for records that are not fresh application data with a payload', () => {
    const { dtls, device, replay } = session();
    const cases: Array<[string, Buffer]> = [
      ['handshake record', device.seal(ContentType.handshake, 1, 9, Buffer.from('x'))],
      ['alert', device.seal(ContentType.alert, 1, 9, Buffer.from([1, 0]))],
      ['empty application data (never marked when received)', device.seal(ContentType.applicationData, 1, 9, Buffer.alloc(0))],
      ['another epoch', device.seal(ContentType.applicationData, 2, 9, Buffer.from('x'))],
      ['the relay\'s own direction', recordProtectionFor('server', deriveTrafficKeys(dtls.master, dtls.randoms.subarray(0, 32), dtls.randoms.subarray(32))).seal(ContentType.applicationData, 1, 9, Buffer.from('x'))],
      ['not a record', Buffer.from('hello')],
    ];
    for (const [what, datagram] of cases) expect(claimProofHolds(datagram, replay, dtls), what).toBe(false);
  });

  it('fails for a forged or altered record', () => {
    const { dtls, device, replay } = session();
    const genuine = device.seal(ContentType.applicationData, 1, 50, Buffer.from('genuine'));
    for (const index of [5, 10, 13, 25, genuine.length - 1]) {
      const altered = Buffer.from(genuine);
      altered[index]! ^= 1;
      expect(claimProofHolds(altered, replay, dtls), `byte ${index}`).toBe(false);
    }
    expect(claimProofHolds(genuine, replay, { master: Buffer.alloc(48, 1), randoms: dtls.randoms }), 'other master').toBe(false);
  });

  it('fails below the window', () => {
    const { dtls, device } = session();
    const replay = new ReplayWindow(1);
    replay.mark(1, 1_000);
    expect(claimProofHolds(device.seal(ContentType.applicationData, 1, 936, Buffer.from('old')), replay, dtls)).toBe(false);
    expect(claimProofHolds(device.seal(ContentType.applicationData, 1, 937, Buffer.from('inside')), replay, dtls)).toBe(true);
  });
});
