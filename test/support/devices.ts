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
        if (trySend()) arm();
      }, wait);
    };
    const trySend = (): boolean => {
      try {
        client.send(payload);
        return true;
      } catch (error) {
        cleanup();
        reject(error as Error);
        return false;
      }
    };
    client.on('message', onMessage);
    if (trySend()) arm();
  });
}

export async function closeAll(clients: Iterable<DtlsClient | undefined>): Promise<void> {
  await Promise.all([...clients].map((client) => client?.close({ notify: false }).catch(() => undefined)));
}

export { generateDeviceKey };

export interface LoadResult {
  requests: number;
  answered: number;
  retransmissions: number;
  errors: number;
  /** The first few error messages, to say what went wrong. */
  errorSamples?: string[];
}

/**
 * Every device sends a request, waits for its answer (retransmitting like CoAP), then sends the
 * next, until stopped. Returns what the devices saw.
 */
export function startLoad(clients: DtlsClient[], options: { payloadBytes?: number; pauseMs?: number } = {}): { stop(): Promise<LoadResult>; snapshot(): LoadResult } {
  const result: LoadResult = { requests: 0, answered: 0, retransmissions: 0, errors: 0 };
  let running = true;
  const loops = clients.map(async (client, index) => {
    let n = 0;
    while (running) {
      const body = Buffer.alloc(options.payloadBytes ?? 32, 0x20);
      body.write(`${index}:${n++}:`);
      result.requests++;
      try {
        const outcome = await request(client, body, { timeoutMs: 2_000 * (1 + 2 + 4 + 8 + 16) });
        result.answered++;
        result.retransmissions += outcome.retransmissions;
      } catch (error) {
        result.errors++;
        (result.errorSamples ??= []).length < 5 && result.errorSamples!.push((error as Error).message);
      }
      if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
      else await new Promise((resolve) => setImmediate(resolve));
    }
  });
  return {
    snapshot: () => ({ ...result }),
    async stop() {
      running = false;
      await Promise.all(loops);
      return { ...result };
    },
  };
}
