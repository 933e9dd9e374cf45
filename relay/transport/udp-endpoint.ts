import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type { PeerAddress } from '../session/session.ts';
import { bindUdp, closeUdp } from './udp.ts';

/** The device-facing UDP socket. IPv4 or IPv6 by the bind address ('::' is dual-stack on Linux). */
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
    await bindUdp(this.socket, port, this.host);
    const address = this.socket.address();
    return { address: address.address, port: address.port };
  }

  send(datagram: Buffer, peer: PeerAddress): void {
    this.socket.send(datagram, peer.port, peer.address);
  }

  close(): Promise<void> {
    return closeUdp(this.socket);
  }
}
