import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DeviceFleet } from '../../loadgen/fleet.ts';
import { readStatus, runRollback, runUpdate, type RunResult, type UpdateEvent } from '../../orchestrator/index.ts';
import { deployLocal, openLocalPlatform, type LocalPlatform } from '../../orchestrator/platform/local/index.ts';
import { tempState } from '../platform/local/helpers.ts';

/**
 * A rollback that hands every session back, under live devices (issue 11, item 2): an update hands every
 * ordinal over and is stopped in its drain (devices keep their flows on the old relays, which tunnel them to the
 * new ones), then `rollback` hands each ordinal back to its old relay, drains and deletes the new set. Devices
 * send throughout; a device whose session ended up on no relay gets no answer to any later request. Several
 * rounds, on one cluster, each counted from the device side.
 */

const NAME = 'relay';
const REPLICAS = 3;
const DEVICES = 300;
const ROUNDS = 2;

describe('rollback after the handovers, under live devices', () => {
  let state: Awaited<ReturnType<typeof tempState>>;
  let platform: LocalPlatform;
  let fleet: DeviceFleet;

  beforeAll(async () => {
    state = await tempState();
    const info = await deployLocal({ stateDir: state.dir, name: NAME, replicas: REPLICAS, image: 'relay:1', servicePort: 0 });
    platform = await openLocalPlatform({ stateDir: state.dir });
    // About 600 requests a second in all: datagrams reach every relay at every moment of a handback.
    fleet = new DeviceFleet({ host: info.service.address, port: info.service.port, serverPublicKey: info.serverPublicKey, devices: DEVICES, requestIntervalMs: 500 });
    await fleet.connect();
    fleet.start();
  }, 120_000);

  afterAll(async () => {
    await fleet?.close();
    await platform?.close();
    await state?.cleanup();
  }, 60_000);

  /**
   * The devices not answered `times` more on the session they have now within `withinMs`: a session that exists
   * on no relay is never answered (the device retransmits at 2 s, 4 s, 8 s, then handshakes again). Returns as
   * soon as every device was answered.
   */
  async function unansweredDevices(times: number, withinMs: number): Promise<number[]> {
    const from = fleet.sessions().map((session) => session?.recordsIn ?? 0);
    const behind = (): number[] => fleet.sessions().flatMap((session, i) => ((session?.recordsIn ?? 0) >= from[i]! + times ? [] : [i]));
    const deadline = performance.now() + withinMs;
    while (behind().length > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    return behind();
  }

  async function updateStoppedInDrain(image: string): Promise<RunResult> {
    const stop = new AbortController();
    const onEvent = (event: UpdateEvent): void => {
      if (event.type === 'step-finished' && event.step === 'handover') stop.abort();
    };
    return runUpdate({ name: NAME, image, owner: 'e2e-update', drainQuietMs: 1_000, timeouts: { drainMs: 30_000 } }, platform, onEvent, { signal: stop.signal });
  }

  test(`${ROUNDS} rounds of update then rollback: every session handed back, no device loses its session or a request`, async () => {
    expect(await unansweredDevices(1, 10_000)).toEqual([]);
    const window = fleet.openWindow();
    const handedBack: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const update = await updateStoppedInDrain(`relay:${round + 1}`);
      expect(update).toMatchObject({ code: 'failed', error: { code: 'ERR_INTERRUPTED' } });
      expect(update.record?.handedOver).toHaveProperty('2');

      const rollback = await runRollback({ name: NAME, owner: 'e2e-rollback', drainQuietMs: 1_000, timeouts: { drainMs: 3_000 } }, platform, () => undefined);
      expect(rollback, `round ${round}`).toMatchObject({ code: 'succeeded', outcome: 'rolled-back', from: `${NAME}-a`, to: `${NAME}-b` });
      handedBack.push(Object.values(rollback.record!.handedBack).reduce((sum, entry) => sum + (entry.sessions ?? 0), 0));

      // Counted from the device side: every device is answered again on the session it had all along.
      expect(await unansweredDevices(2, 20_000), `round ${round}: devices whose session was lost`).toEqual([]);
      const status = await readStatus(NAME, platform, { relays: true });
      expect(status.sets.map((entry) => entry.set.name)).toEqual([`${NAME}-a`]);
      const held = Object.values(status.sets[0]!.relays!).reduce((sum, relay) => sum + (relay?.sessions ?? 0), 0);
      expect(held, `round ${round}: sessions held by the relays`).toBe(DEVICES);
    }
    const seen = window.close();
    expect({ handshakes: seen.handshakes, failures: seen.handshakeFailures, errors: seen.transmissionErrors, lost: seen.sessionsLost }).toEqual({
      handshakes: 0,
      failures: 0,
      errors: 0,
      lost: 0,
    });
    // Each rollback handed back every session the update had moved (devices with a flow on the new set included).
    expect(handedBack).toEqual(Array.from({ length: ROUNDS }, () => DEVICES));
  }, 300_000);
});
