import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type { PeerAddress } from '../session/session.ts';

/**
 * The device-facing UDP socket. IPv4 or IPv6 by the bind address ('::' is dual-stack on Linux).
 * Socket buffers are raised because a handover releases a burst of queued datagrams at once.
 */
export class UdpEndpoint {
  private readonly socket: dgram.Socket;

  constructor(options: { host: string; onDatagram: (datagram: Buffer, peer: PeerAddress) => void; onError: (error: Error) => void }) {
    this.socket = dgram.createSocket({ type: isIP(options.host) === 6 ? 'udp6' : 'udp4', reuseAddr: false });
    this.socket.on('message', (datagram, rinfo) => options.onDatagram(datagram, { address: rinfo.address, port: rinfo.port }));
    this.socket.on('error', options.onError);
    this.host = options.host;
  }

  private readonly host: string;

  async listen(port: number): Promise<PeerAddress> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(port, this.host, () => {
        this.socket.off('error', reject);
        resolve();
      });
    });
    for (const set of [(size: number) => this.socket.setRecvBufferSize(size), (size: number) => this.socket.setSendBufferSize(size)]) {
      try {
        set(4 * 1024 * 1024);
      } catch {
        // The kernel caps it at net.core.[rw]mem_max; the default still works, just with less slack.
      }
    }
    const address = this.socket.address();
    return { address: address.address, port: address.port };
  }

  send(datagram: Buffer, peer: PeerAddress): void {
    this.socket.send(datagram, peer.port, peer.address);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
