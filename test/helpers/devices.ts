import { DtlsClient, generateDeviceKey, type DeviceKey } from '../../client/index.ts';

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

/** Sends one request and waits for its echo; retransmits like a CoAP client (2 s, doubling). */
export function request(client: DtlsClient, payload: Buffer, options: { timeoutMs?: number; retransmit?: boolean } = {}): Promise<{ reply: Buffer; retransmissions: number }> {
  return new Promise((resolve, reject) => {
    let retransmissions = 0;
    let wait = 2_000;
    let timer: NodeJS.Timeout | undefined;
    const deadline = setTimeout(() => {
      cleanup();
      reject(new Error(`no answer within ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    const onMessage = (reply: Buffer): void => {
      if (!reply.equals(payload)) return;
      cleanup();
      resolve({ reply, retransmissions });
    };
    const cleanup = (): void => {
      clearTimeout(deadline);
      clearTimeout(timer);
      client.off('message', onMessage);
    };
    const arm = (): void => {
      if (options.retransmit === false) return;
      timer = setTimeout(() => {
        retransmissions++;
        wait *= 2;
        client.send(payload);
        arm();
      }, wait);
    };
    client.on('message', onMessage);
    client.send(payload);
    arm();
  });
}

export async function closeAll(clients: Iterable<DtlsClient | undefined>): Promise<void> {
  await Promise.all([...clients].map((client) => client?.close({ notify: false }).catch(() => undefined)));
}

export { generateDeviceKey };
