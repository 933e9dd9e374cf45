import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { PeerAddress } from '../session/session.ts';
import { ReplayWindow } from '../../api/dtls/replay-window.ts';

/**
 * Frames of the straggler tunnel between an old relay and its successor, sealed with AES-256-GCM
 * under a key the successor chose and sent over mutual TLS during the handover. A forged or replayed
 * frame is dropped: the tunnel carries plaintext upstream replies, and it decides where records go.
 *
 *   0      1      2                10
 *   | ver  | kind | sequence (u64) | GCM( family u8 | port u16 | address 4/16 | payload ) | tag 16 |
 *
 * Nonce = 4-byte sender salt | 8-byte sequence; each side has its own salt, so the two directions
 * never share a nonce. The header is the AAD.
 */
export const TUNNEL_VERSION = 1;
export const TUNNEL_KEY_BYTES = 32;
const HEADER = 10;
const TAG = 16;

export const FrameKind = {
  /** old -> new: a datagram a device sent to the old relay. */
  deviceDatagram: 1,
  /** new -> old: a DTLS record for the old relay to send to the device from its own socket. */
  toDevice: 2,
  /** old -> new: an upstream reply that reached the old relay after the snapshot (plaintext). */
  upstreamReply: 3,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export interface Frame {
  kind: FrameKind;
  peer: PeerAddress;
  payload: Buffer;
}

export type Role = 'old' | 'new';

export class TunnelSealer {
  private readonly key: Buffer;
  private readonly sendSalt: Buffer;
  private readonly receiveSalt: Buffer;
  private sequence = 0;
  private readonly window = new ReplayWindow(0);

  constructor(key: Buffer, role: Role) {
    if (key.length !== TUNNEL_KEY_BYTES) throw new RangeError(`tunnel key must be ${TUNNEL_KEY_BYTES} bytes, got ${key.length}`);
    this.key = key;
    const old = Buffer.from('old\0');
    const successor = Buffer.from('new\0');
    this.sendSalt = role === 'old' ? old : successor;
    this.receiveSalt = role === 'old' ? successor : old;
  }

  static newKey(): Buffer {
    return randomBytes(TUNNEL_KEY_BYTES);
  }

  seal(frame: Frame): Buffer {
    const header = Buffer.allocUnsafe(HEADER);
    header[0] = TUNNEL_VERSION;
    header[1] = frame.kind;
    header.writeBigUInt64BE(BigInt(this.sequence++), 2);
    const address = encodeAddress(frame.peer);
    const cipher = createCipheriv('aes-256-gcm', this.key, Buffer.concat([this.sendSalt, header.subarray(2)]));
    cipher.setAAD(header);
    const body = Buffer.concat([cipher.update(address), cipher.update(frame.payload), cipher.final()]);
    return Buffer.concat([header, body, cipher.getAuthTag()]);
  }

  /** The frame, or null for anything forged, replayed, truncated or of another version. */
  open(datagram: Buffer): Frame | null {
    if (datagram.length < HEADER + TAG + 3 || datagram[0] !== TUNNEL_VERSION) return null;
    const kind = datagram[1]!;
    if (kind < FrameKind.deviceDatagram || kind > FrameKind.upstreamReply) return null;
    const sequence = Number(datagram.readBigUInt64BE(2));
    if (!this.window.accepts(0, sequence)) return null;
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.concat([this.receiveSalt, datagram.subarray(2, HEADER)]));
      decipher.setAAD(datagram.subarray(0, HEADER));
      decipher.setAuthTag(datagram.subarray(datagram.length - TAG));
      plain = Buffer.concat([decipher.update(datagram.subarray(HEADER, datagram.length - TAG)), decipher.final()]);
    } catch {
      return null;
    }
    this.window.mark(0, sequence);
    const decoded = decodeAddress(plain);
    if (decoded === null) return null;
    return { kind: kind as FrameKind, peer: decoded.peer, payload: plain.subarray(decoded.length) };
  }
}

function encodeAddress(peer: PeerAddress): Buffer {
  const family = isIP(peer.address);
  if (family === 4) {
    const out = Buffer.allocUnsafe(7);
    out[0] = 4;
    out.writeUInt16BE(peer.port, 1);
    peer.address.split('.').forEach((part, i) => (out[3 + i] = Number(part)));
    return out;
  }
  if (family === 6) {
    const out = Buffer.alloc(19);
    out[0] = 6;
    out.writeUInt16BE(peer.port, 1);
    ipv6Bytes(peer.address).copy(out, 3);
    return out;
  }
  throw new RangeError(`not an IP address: ${peer.address}`);
}

function decodeAddress(plain: Buffer): { peer: PeerAddress; length: number } | null {
  if (plain.length < 3) return null;
  const port = plain.readUInt16BE(1);
  if (plain[0] === 4 && plain.length >= 7) {
    return { peer: { address: `${plain[3]}.${plain[4]}.${plain[5]}.${plain[6]}`, port }, length: 7 };
  }
  if (plain[0] === 6 && plain.length >= 19) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(plain.readUInt16BE(3 + 2 * i).toString(16));
    return { peer: { address: compressIpv6(groups), port }, length: 19 };
  }
  return null;
}

function ipv6Bytes(address: string): Buffer {
  let text = address;
  const out = Buffer.alloc(16);
  // An IPv4-mapped tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  groups.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16), 2 * i));
  return out;
}

/** Node prints IPv6 in RFC 5952 form; produce the same so peer keys match. */
function compressIpv6(groups: string[]): string {
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') {
    const hi = parseInt(groups[6]!, 16);
    const lo = parseInt(groups[7]!, 16);
    return `::ffff:${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  const left = groups.slice(0, bestStart).join(':');
  const right = groups.slice(bestStart + bestLength).join(':');
  return `${left}::${right}`;
}
