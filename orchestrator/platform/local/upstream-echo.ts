import dgram from 'node:dgram';

/**
 * The demo's upstream service: a UDP echo. It answers every datagram with the same bytes, which
 * also works in the relay's prefixed mode (the device prefix comes back and routes the reply).
 */
export class UpstreamEcho {
  private readonly socket: dgram.Socket;
  received = 0;
  /** Datagrams to drop instead of answering (tests of loss). */
  dropNext = 0;

  constructor(host = '127.0.0.1') {
    this.socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    this.host = host;
    this.socket.on('message', (datagram, rinfo) => {
      this.received++;
      if (this.dropNext > 0) {
        this.dropNext--;
        return;
      }
      this.socket.send(datagram, rinfo.port, rinfo.address);
    });
  }

  private readonly host: string;

  async listen(port = 0): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(port, this.host, () => resolve());
    });
    try {
      this.socket.setRecvBufferSize(4 * 1024 * 1024);
      this.socket.setSendBufferSize(4 * 1024 * 1024);
    } catch {
      // capped by the kernel
    }
    return { host: this.host, port: this.socket.address().port };
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
