import { describe, expect, it } from 'vitest';
import { FrameKind, TunnelSealer } from '../../relay/handover/tunnel-codec.ts';

describe('straggler tunnel frames', () => {
  const key = TunnelSealer.newKey();

  it('carry a device datagram and its address from old to new, IPv4 and IPv6', () => {
    const old = new TunnelSealer(key, 'old');
    const successor = new TunnelSealer(key, 'new');
    for (const peer of [{ address: '203.0.113.7', port: 5684 }, { address: '2001:db8::1', port: 1 }, { address: '::ffff:127.0.0.1', port: 65535 }, { address: '::1', port: 9 }]) {
      const payload = Buffer.from(`record for ${peer.address}`);
      const frame = successor.open(old.seal({ kind: FrameKind.deviceDatagram, peer, payload }));
      expect(frame).toEqual({ kind: FrameKind.deviceDatagram, peer, payload });
    }
  });

  it('drop forged, altered, replayed and reflected frames', () => {
    const old = new TunnelSealer(key, 'old');
    const successor = new TunnelSealer(key, 'new');
    const sealed = old.seal({ kind: FrameKind.upstreamReply, peer: { address: '10.0.0.1', port: 7 }, payload: Buffer.from('secret reply') });
    // Altered: any flipped bit fails authentication.
    for (const index of [0, 1, 5, 12, sealed.length - 1]) {
      const altered = Buffer.from(sealed);
      altered[index]! ^= 0x80;
      expect(successor.open(altered)).toBeNull();
    }
    // Another key.
    expect(new TunnelSealer(TunnelSealer.newKey(), 'new').open(sealed)).toBeNull();
    // Reflected back to its sender: the sender's own salt is not the one it expects.
    expect(new TunnelSealer(key, 'old').open(sealed)).toBeNull();
    // Replayed.
    expect(successor.open(sealed)).not.toBeNull();
    expect(successor.open(sealed)).toBeNull();
    // Truncated.
    expect(successor.open(sealed.subarray(0, 20))).toBeNull();
  });

  it('keep plaintext upstream replies confidential on the wire', () => {
    const sealed = new TunnelSealer(key, 'old').seal({ kind: FrameKind.upstreamReply, peer: { address: '10.0.0.1', port: 7 }, payload: Buffer.from('temperature=21.5') });
    expect(sealed.includes(Buffer.from('temperature'))).toBe(false);
  });

  it('refuse a key of the wrong size', () => {
    expect(() => new TunnelSealer(Buffer.alloc(16), 'old')).toThrow(/32 bytes/);
  });
});
