import { DtlsClient, generateDeviceKey, type DeviceKey } from '../../client/index.ts';

/**
 * Devices for scenario tests that need the DTLS clients themselves (their stats, a key they chose, a proxy in
 * between): connect some, send one request and wait for its echo. Load that keeps running (requests, answers,
 * retransmissions counted) is loadgen/fleet.ts's DeviceFleet, the same one relayctl bench runs.
 */

/** Connects `count` devices, a few at a time so the handshake CPU of the relay is not swamped. */
export async function connectDevices(options: { port: number; serverPublicKey: Buffer; count: number; keys?: DeviceKey[]; concurrency?: number; host?: string }): Promise<DtlsClient[]> {
  const clients: DtlsClient[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < options.count) {
      const index = next++;
      const client = new DtlsClient({
        host: options.host ?? '127.0.0.1',
        port: options.port,
        serverPublicKey: options.serverPublicKey,
        clientKey: options.keys?.[index] ?? generateDeviceKey(),
        handshakeTimeoutMs: 20_000,
      });
      clients[index] = client;
      await client.connect();
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 16 }, worker));
  return clients;
}

/**
 * Sends one request and waits for its echo. Never retransmits: on loopback a datagram is not lost, so a request
 * without an answer is a failure the test must see (after `timeoutMs`, default 10 s), not one a retry would hide.
 * (`retransmit: false` is what it always does; callers written when it retransmitted by default still say so.)
 */
export function request(client: DtlsClient, payload: Buffer, options: { timeoutMs?: number; retransmit?: false } = {}): Promise<{ reply: Buffer; sequence: number }> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const onMessage = (reply: Buffer, sequence: number): void => {
      if (!reply.equals(payload)) return;
      cleanup();
      resolve({ reply, sequence });
    };
    const deadline = setTimeout(() => {
      cleanup();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(deadline);
      client.off('message', onMessage);
    };
    client.on('message', onMessage);
    try {
      client.send(payload);
    } catch (error) {
      cleanup();
      reject(error as Error);
    }
  });
}

export async function closeAll(clients: Iterable<DtlsClient | undefined>): Promise<void> {
  await Promise.all([...clients].map((client) => client?.close({ notify: false }).catch(() => undefined)));
}

export { generateDeviceKey };
