import dgram from 'node:dgram';
import { DtlsAdapter, type DtlsAdapterOptions, type DropReason } from '../../relay/dtls/adapter.ts';
import type { Session } from '../../relay/session/session.ts';

/**
 * The DTLS adapter on a real loopback UDP socket, in this process: what relayd does minus the
 * upstream and the management server. `echo` answers every payload on its session.
 */
export async function adapterOnLoopback(serverKey: Buffer, options: Partial<DtlsAdapterOptions> & { echo?: boolean; now?: () => number } = {}) {
  const socket = dgram.createSocket('udp4');
  const drops = new Map<DropReason, number>();
  const failures: string[] = [];
  const established: Session[] = [];
  let adapter: DtlsAdapter;
  adapter = new DtlsAdapter({
    serverKey,
    limits: options.limits,
    authorize: options.authorize,
    now: options.now,
    events: {
      transmit: (datagram, peer) => socket.send(datagram, peer.port, peer.address),
      established: (session) => established.push(session),
      data: (session, payload) => {
        if (options.echo !== false) adapter.send(session, payload);
      },
      closed: () => undefined,
      handshakeFailed: (_peer, reason) => failures.push(reason),
      dropped: (reason) => drops.set(reason, (drops.get(reason) ?? 0) + 1),
    },
  });
  socket.on('message', (datagram, rinfo) => adapter.receive(datagram, { address: rinfo.address, port: rinfo.port }));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return {
    adapter,
    port: socket.address().port,
    drops,
    failures,
    established,
    close: () => {
      adapter.close();
      socket.close();
    },
  };
}
