import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { PeerAddress } from '../session/session.ts';
import { bindUdp, closeUdp } from '../transport/udp.ts';
import { TunnelSealer, type Frame, type Role } from './tunnel-codec.ts';

/**
 * One end of a straggler tunnel: a UDP socket and the sealer. The remote end is where the last
 * authenticated frame came from (NAT-proof), or the address given at setup until then.
 */
export class TunnelEnd {
  private readonly socket: dgram.Socket;
  private sealer: TunnelSealer | null = null;
  private remote: PeerAddress | null = null;
  private onFrame: (frame: Frame) => void = () => undefined;

  constructor(host: string, onError: (error: Error) => void, onForged: () => void) {
    this.socket = dgram.createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    this.host = host;
    this.socket.on("error", onError);
    this.socket.on('message', (datagram, rinfo) => {
      const frame = this.sealer?.open(datagram) ?? null;
      if (frame === null) {
        onForged();
        return;
      }
      this.remote = { address: rinfo.address, port: rinfo.port };
      this.onFrame(frame);
    });
  }

  private readonly host: string;

  async listen(port: number): Promise<number> {
    await bindUdp(this.socket, port, this.host);
    return this.socket.address().port;
  }

  /** Arms the tunnel for one handover. */
  async open(options: { key: Buffer; role: Role; remoteHost: string | null; remotePort: number | null; onFrame: (frame: Frame) => void }): Promise<void> {
    this.sealer = new TunnelSealer(options.key, options.role);
    this.onFrame = options.onFrame;
    this.remote = null;
    if (options.remoteHost !== null && options.remotePort !== null) {
      const address = isIP(options.remoteHost) !== 0 ? options.remoteHost : (await lookup(options.remoteHost)).address;
      this.remote = { address: normalizeForSocket(address, this.socket.address().family), port: options.remotePort };
    }
  }

  /** Disarms: frames are dropped from now on. */
  shut(): void {
    this.sealer = null;
    this.remote = null;
    this.onFrame = () => undefined;
  }

  get armed(): boolean {
    return this.sealer !== null;
  }

  send(frame: Frame): boolean {
    if (this.sealer === null || this.remote === null) return false;
    this.socket.send(this.sealer.seal(frame), this.remote.port, this.remote.address);
    return true;
  }

  close(): Promise<void> {
    return closeUdp(this.socket);
  }
}
/** A udp4 socket cannot send to '::ffff:1.2.3.4' (what an IPv6 HTTP server reports for IPv4 peers). */
function normalizeForSocket(address: string, family: string): string {
  if (family === 'IPv4' && address.startsWith('::ffff:')) return address.slice(7);
  return address;
}
