/**
 * A loopback UDP server speaking the relay's DTLS profile through FakeServerHandshake, with hooks to lose,
 * repeat and forge datagrams. Like node-mbed-dtls it sends one record per datagram and never retransmits on
 * a timer: it repeats its last flight only when the client repeats its own.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { KeyObject } from 'node:crypto';
import { recordProtectionFor, type CcmRecordProtection } from '../../../api/dtls/record-protection.ts';
import { AlertDescription, AlertLevel, ContentType } from '../../../api/dtls/constants.ts';
import { createRecordHeader, encodePlaintextRecord, readRecordHeader, recordFragment } from '../../../api/dtls/record.ts';
import { FakeServerHandshake, type FakeServerOptions, type ServerRecord } from './fake-server-handshake.ts';

export interface FakeDtlsServerOptions {
  readonly serverKey: KeyObject;
  readonly type?: 'udp4' | 'udp6';
  readonly address?: string;
  readonly handshake?: Omit<FakeServerOptions, 'serverKey'>;
  /** Echo application data back (default true). */
  readonly echo?: boolean;
  /** Return true to lose an inbound datagram; `index` counts all datagrams received. */
  readonly dropInbound?: (datagram: Buffer, index: number) => boolean;
  /** Send close_notify right after the handshake, as the relay does to devices without a key. */
  readonly closeAfterHandshake?: boolean;
}

export interface FakePeer {
  readonly address: string;
  readonly port: number;
  readonly handshake: FakeServerHandshake;
  protection: CcmRecordProtection | null;
  epoch0Sequence: number;
  epoch1Sequence: number;
  readonly applicationData: Buffer[];
  readonly alerts: Array<{ level: number; description: number }>;
  /** Every datagram sent to this peer, in order. */
  readonly sent: Buffer[];
}

export class FakeDtlsServer {
  readonly #socket: Socket;
  readonly #options: FakeDtlsServerOptions;
  readonly peers = new Map<string, FakePeer>();
  /** Every datagram received, dropped or not. */
  readonly received: Buffer[] = [];

  private constructor(socket: Socket, options: FakeDtlsServerOptions) {
    this.#socket = socket;
    this.#options = options;
    socket.on('message', (datagram, remote) => this.#onDatagram(datagram, remote));
  }

  static async start(options: FakeDtlsServerOptions): Promise<FakeDtlsServer> {
    const socket = createSocket(options.type ?? 'udp4');
    const server = new FakeDtlsServer(socket, options);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, options.address ?? (options.type === 'udp6' ? '::1' : '127.0.0.1'), () => resolve());
    });
    return server;
  }

  get port(): number {
    return this.#socket.address().port;
  }

  /** The only peer; tests with one client use this. */
  get peer(): FakePeer {
    const [peer] = this.peers.values();
    if (peer === undefined) throw new Error('no peer yet');
    return peer;
  }

  sendApplicationData(payload: Buffer, peer = this.peer): Buffer {
    return this.#sendProtected(peer, ContentType.applicationData, payload);
  }

  sendAlert(level: number, description: number, peer = this.peer): Buffer {
    return this.#sendProtected(peer, ContentType.alert, Buffer.of(level, description));
  }

  /** Sends a protected record with an explicit sequence number (e.g. to replay or to jump ahead). */
  sendProtectedAt(sequence: number, type: number, payload: Buffer, peer = this.peer): Buffer {
    const record = peer.protection!.seal(type, 1, sequence, payload);
    this.sendRaw(record, peer);
    return record;
  }

  sendRaw(datagram: Buffer, peer = this.peer): void {
    peer.sent.push(datagram);
    this.#socket.send(datagram, peer.port, peer.address);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  #sendProtected(peer: FakePeer, type: number, payload: Buffer): Buffer {
    return this.sendProtectedAt(peer.epoch1Sequence++, type, payload, peer);
  }

  #onDatagram(datagram: Buffer, remote: RemoteInfo): void {
    const index = this.received.push(datagram) - 1;
    if (this.#options.dropInbound?.(datagram, index) === true) return;
    const key = `${remote.address}:${remote.port}`;
    let peer = this.peers.get(key);
    if (peer === undefined) {
      peer = {
        address: remote.address,
        port: remote.port,
        handshake: new FakeServerHandshake({ serverKey: this.#options.serverKey, ...this.#options.handshake }),
        protection: null,
        epoch0Sequence: 0,
        epoch1Sequence: 0,
        applicationData: [],
        alerts: [],
        sent: [],
      };
      this.peers.set(key, peer);
    }
    const header = createRecordHeader();
    for (let offset = 0; offset < datagram.length;) {
      const next = readRecordHeader(datagram, offset, header);
      if (next < 0) return;
      let payload: Buffer | null = recordFragment(datagram, header);
      if (header.epoch === 1) payload = peer.protection?.open(datagram, header) ?? null;
      if (payload !== null) this.#onRecord(peer, header.type, header.epoch, payload);
      offset = next;
    }
  }

  #onRecord(peer: FakePeer, type: number, epoch: number, payload: Buffer): void {
    if (type === ContentType.applicationData && epoch === 1) {
      peer.applicationData.push(payload);
      if (this.#options.echo !== false) this.sendApplicationData(payload, peer);
      return;
    }
    if (type === ContentType.alert) {
      peer.alerts.push({ level: payload[0]!, description: payload[1]! });
      return;
    }
    const isEstablished = (): boolean => peer.handshake.phase === 'established';
    const wasEstablished = isEstablished();
    const replies = peer.handshake.handleRecord(type, epoch, payload);
    if (peer.protection === null && peer.handshake.keys !== null) {
      const keys = peer.handshake.keys;
      peer.protection = recordProtectionFor('server', keys);
    }
    this.#sendFlight(peer, replies);
    if (!wasEstablished && isEstablished() && this.#options.closeAfterHandshake === true) {
      this.sendAlert(AlertLevel.warning, AlertDescription.closeNotify, peer);
    }
  }

  #sendFlight(peer: FakePeer, records: readonly ServerRecord[]): void {
    for (const record of records) {
      if (record.epoch === 0) this.sendRaw(encodePlaintextRecord(record.type, 0, peer.epoch0Sequence++, record.payload), peer);
      else this.#sendProtected(peer, record.type, record.payload);
    }
  }
}
