import { describe, expect, it } from 'vitest';
import { NONCE_FENCE, fenceSequence } from '../../relay/handover/fence.ts';
import { PauseQueue } from '../../relay/handover/pause-queue.ts';
import { MAX_SEQUENCE_NUMBER } from '../../api/dtls/constants.ts';

describe('nonce fence', () => {
  it('moves the next sequence number past the fence', () => {
    expect(fenceSequence(0)).toBe(NONCE_FENCE);
    expect(fenceSequence(123_456)).toBe(123_456 + NONCE_FENCE);
  });

  it('never carries into the epoch', () => {
    expect(fenceSequence(MAX_SEQUENCE_NUMBER - NONCE_FENCE)).toBe(MAX_SEQUENCE_NUMBER);
    expect(fenceSequence(MAX_SEQUENCE_NUMBER - NONCE_FENCE + 1)).toBeNull();
    expect(fenceSequence(MAX_SEQUENCE_NUMBER)).toBeNull();
  });
});

describe('pause queue', () => {
  const peer = { address: '127.0.0.1', port: 1 };

  it('gives back what it took, oldest first, and empties', () => {
    const queue = new PauseQueue(10, 1_000);
    queue.push({ kind: 'device', datagram: Buffer.from('a'), peer });
    queue.push({ kind: 'upstream', payload: Buffer.from('b'), peer });
    expect(queue.drain().map((item) => (item.kind === 'device' ? item.datagram : item.payload).toString())).toEqual(['a', 'b']);
    expect(queue.length).toBe(0);
    expect(queue.drain()).toEqual([]);
  });

  it('is bounded in items and bytes, counting what it refused', () => {
    const queue = new PauseQueue(2, 100);
    expect(queue.push({ kind: 'device', datagram: Buffer.alloc(60), peer })).toBe(true);
    expect(queue.push({ kind: 'device', datagram: Buffer.alloc(60), peer })).toBe(false);
    expect(queue.push({ kind: 'device', datagram: Buffer.alloc(10), peer })).toBe(true);
    expect(queue.push({ kind: 'device', datagram: Buffer.alloc(1), peer })).toBe(false);
    expect(queue.dropped).toBe(2);
    expect(queue.length).toBe(2);
  });
});
