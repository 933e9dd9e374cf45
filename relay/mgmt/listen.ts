import type { Server } from 'node:net';

/** Listens, resolving with the bound address or rejecting with the listen error (EADDRINUSE, ...). */
export async function listenOn(server: Server, port: number, host: string, what: string): Promise<{ address: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error(`${what} has no address`);
  return { address: address.address, port: address.port };
}

/** Stops accepting and closes every connection, idle or not. */
export function closeServer(server: Server & { closeAllConnections(): void }): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
