import type dgram from 'node:dgram';

/**
 * Binding and buffer sizing shared by every UDP socket of the relay. Buffers are raised because a
 * handover releases a burst of queued datagrams at once, and many handshakes arrive together after
 * an outage (measured: the default 208 KB receive buffer drops datagrams at 50 parallel handshakes).
 */
export const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

export function bindUdp(socket: dgram.Socket, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      raiseBuffers(socket);
      resolve();
    });
  });
}

export function raiseBuffers(socket: dgram.Socket): void {
  try {
    socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
    socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
  } catch {
    // The kernel caps it at net.core.[rw]mem_max; the default still works, with less slack.
  }
}

export function closeUdp(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve();
    }
  });
}
