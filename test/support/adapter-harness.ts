import dgram from 'node:dgram';
import {
  DtlsAdapter,
  loadNativeBinding,
  type DropReason,
  type DtlsAdapterOptions,
  type NativeBinding,
  type NativeSessionWrap,
  type NativeSocket,
} from '../../relay/dtls/adapter.ts';
import type { PeerAddress, Session } from '../../relay/session/session.ts';
import { generateDtlsKeyPair } from '../../pki/certificates.ts';

// Measured limits of the package, stated here independently of the adapter's own constants.
/** Larger datagrams overflow a heap buffer in the native receive path. */
const NATIVE_RECEIVE_LIMIT = 837;
/** MBEDTLS_SSL_MAX_CONTENT_LEN: `send` of more fails the socket and later kills the process. */
const NATIVE_SEND_LIMIT = 800;

/**
 * The real node-mbed-dtls binding, watched. Every call that would hit one of the package's traps
 * (/work/shared/docs/node-mbed-dtls.md: datagrams over 837 bytes into the receive path, the
 * `publicKey` getter, the `session` getter before the handshake completed, `send` of more than
 * 800 bytes, SessionWrap fields that are not Buffers of the exact size) is recorded in
 * `violations` and not passed on, so that the test process survives to report it. A test that
 * runs the adapter on this binding fails when one of the adapter's guards is removed.
 */
export function guardedBinding(): { binding: NativeBinding; violations: string[] } {
  const real = loadNativeBinding();
  const violations: string[] = [];
  /** Sockets whose handshake completed or whose session was resumed: their `session` is safe to read. */
  const established = new WeakSet<object>();
  const realWraps = new WeakMap<object, NativeSessionWrap>();

  const checkedWrapField = (field: string | symbol, value: unknown): string | null => {
    const sizes: Record<string, (length: number) => boolean> = {
      randbytes: (n) => n === 64,
      master: (n) => n === 48,
      id: (n) => n <= 32,
      out_ctr: (n) => n === 8,
    };
    const fits = sizes[field as string];
    if (fits === undefined) return Number.isInteger(value) ? null : `SessionWrap.${String(field)} set to ${typeof value}`;
    if (!Buffer.isBuffer(value)) return `SessionWrap.${String(field)} set to a ${(value as object)?.constructor?.name ?? typeof value}, not a Buffer`;
    return fits(value.length) ? null : `SessionWrap.${String(field)} set to ${value.length} bytes`;
  };

  function SessionWrap(this: unknown): NativeSessionWrap {
    const wrap = new real.SessionWrap();
    const proxy = new Proxy(wrap, {
      set(target, field, value) {
        const violation = checkedWrapField(field, value);
        if (violation !== null) {
          violations.push(violation);
          return true;
        }
        return Reflect.set(target, field, value);
      },
    });
    realWraps.set(proxy, wrap);
    return proxy;
  }

  function DtlsSocket(this: unknown, ...[server, transportId, send, handshakeDone, error, sessionLookup]: ConstructorParameters<NativeBinding['DtlsSocket']>): NativeSocket {
    const marker = { socket: null as object | null };
    const socket = new real.DtlsSocket(server, transportId, send, () => {
      if (marker.socket !== null) established.add(marker.socket);
      handshakeDone();
    }, error, sessionLookup);
    marker.socket = socket;
    return new Proxy(socket, {
      get(target, property) {
        switch (property) {
          case 'publicKey':
          case 'publicKeyPEM':
            violations.push(`${property} read (it crashes on resumed and certificate-less sockets)`);
            return undefined;
          case 'session':
            if (!established.has(target)) {
              violations.push('session read before the handshake completed');
              return undefined;
            }
            return target.session;
          case 'receiveData':
            return (record: Buffer) => {
              if (!Buffer.isBuffer(record) || record.length > NATIVE_RECEIVE_LIMIT) {
                violations.push(`receiveData of ${record?.length} bytes`);
                return undefined;
              }
              return target.receiveData(record);
            };
          case 'send':
            return (plaintext: Buffer) => {
              if (!Buffer.isBuffer(plaintext) || plaintext.length > NATIVE_SEND_LIMIT) {
                violations.push(`send of ${plaintext?.length} bytes`);
                return -1;
              }
              return target.send(plaintext);
            };
          case 'resumeSession':
            return (wrap: NativeSessionWrap) => {
              const realWrap = realWraps.get(wrap);
              if (realWrap === undefined) {
                violations.push('resumeSession with a SessionWrap not made by the binding');
                return 0;
              }
              const resumed = target.resumeSession(realWrap);
              if (resumed === 1) established.add(target);
              return resumed;
            };
          default: {
            const value = Reflect.get(target, property, target) as unknown;
            return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
          }
        }
      },
    });
  }

  const binding = {
    DtlsServer: real.DtlsServer,
    DtlsSocket: DtlsSocket as unknown as NativeBinding['DtlsSocket'],
    SessionWrap: SessionWrap as unknown as NativeBinding['SessionWrap'],
  };
  return { binding, violations };
}

/**
 * The DTLS adapter on a real loopback UDP socket, in this process: what relayd does minus the
 * upstream and the management server. `echo` answers every payload on its session. The native
 * binding is watched (`guardedBinding`): a test should end with `violations` empty.
 */
export async function adapterOnLoopback(serverKey: Buffer, options: Partial<DtlsAdapterOptions> & { echo?: boolean; now?: () => number } = {}) {
  const socket = dgram.createSocket('udp4');
  const drops = new Map<DropReason, number>();
  const failures: string[] = [];
  const established: Session[] = [];
  const guarded = guardedBinding();
  let adapter: DtlsAdapter;
  adapter = new DtlsAdapter({
    serverKey,
    limits: options.limits,
    authorize: options.authorize,
    now: options.now,
    binding: options.binding ?? guarded.binding,
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
    violations: guarded.violations,
    close: () => {
      adapter.close();
      socket.close();
    },
  };
}

/** A relay's DTLS key pair: the private key (PEM) for the adapter, the public key (SPKI DER) devices pin. */
export async function dtlsKeys(): Promise<{ serverKey: Buffer; publicKey: Buffer }> {
  const pair = await generateDtlsKeyPair();
  return { serverKey: Buffer.from(pair.privateKeyPkcs8Pem), publicKey: pair.publicKeySpkiDer };
}

/**
 * A UDP socket standing for a device's address, as a load balancer's flow would: the device talks
 * through it to `target`, which can be switched to another relay with the same source address;
 * answers from any relay it was pointed at go back to the device. It keeps every datagram the device
 * sent, can stop passing them on (`forward`), and can send anything from the device's address.
 */
export async function deviceFlow(target: number) {
  const socket = dgram.createSocket('udp4');
  const relays = new Set([target]);
  let device: dgram.RemoteInfo | null = null;
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  const flow = {
    target,
    forward: true,
    fromDevice: [] as Buffer[],
    /** The address every relay sees the device at. */
    peer: { address: '127.0.0.1', port: socket.address().port } as PeerAddress,
    moveTo(port: number): void {
      relays.add(port);
      flow.target = port;
    },
    sendFromDevice(datagram: Buffer): Promise<void> {
      return new Promise((resolve) => socket.send(datagram, flow.target, '127.0.0.1', () => resolve()));
    },
    close(): void {
      socket.close();
    },
  };
  socket.on('message', (datagram, rinfo) => {
    if (relays.has(rinfo.port)) {
      if (device !== null) socket.send(datagram, device.port, device.address);
      return;
    }
    device = rinfo;
    flow.fromDevice.push(datagram);
    if (flow.forward) socket.send(datagram, flow.target, '127.0.0.1');
  });
  return flow;
}
