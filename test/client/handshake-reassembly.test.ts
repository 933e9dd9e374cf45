import { describe, expect, it } from 'vitest';
import type { HandshakeFragment } from '../../client/dtls/handshake-messages.ts';
import { HandshakeReassembler } from '../../client/dtls/handshake-reassembly.ts';

const body = Buffer.from('0123456789abcdefghij');

function fragment(messageSeq: number, start: number, end: number, msgType = 12): HandshakeFragment {
  return { msgType, length: body.length, messageSeq, fragmentOffset: start, fragment: body.subarray(start, end) };
}

describe('HandshakeReassembler', () => {
  it('hands out whole messages in message_seq order', () => {
    const reassembler = new HandshakeReassembler();
    expect(reassembler.add(fragment(1, 0, 20))).toBe('accepted');
    expect(reassembler.take()).toBeUndefined();
    expect(reassembler.add(fragment(0, 0, 20))).toBe('accepted');
    expect(reassembler.take()).toMatchObject({ messageSeq: 0, body });
    expect(reassembler.take()).toMatchObject({ messageSeq: 1, body });
    expect(reassembler.take()).toBeUndefined();
    expect(reassembler.nextSeq).toBe(2);
  });

  it('joins overlapping, duplicated and reordered fragments', () => {
    const reassembler = new HandshakeReassembler();
    reassembler.add(fragment(0, 12, 20));
    reassembler.add(fragment(0, 0, 8));
    reassembler.add(fragment(0, 0, 8));
    expect(reassembler.take()).toBeUndefined();
    reassembler.add(fragment(0, 5, 14));
    expect(reassembler.take()).toEqual({ msgType: 12, messageSeq: 0, body });
  });

  it('reports fragments of delivered messages as old', () => {
    const reassembler = new HandshakeReassembler();
    reassembler.add(fragment(0, 0, 20));
    reassembler.take();
    expect(reassembler.add(fragment(0, 0, 20))).toBe('old');
  });

  it('ignores messages too far ahead, too large, or inconsistent with earlier fragments', () => {
    const reassembler = new HandshakeReassembler({ maxMessagesAhead: 4, maxMessageLength: 100 });
    expect(reassembler.add(fragment(4, 0, 20))).toBe('ignored');
    expect(reassembler.add({ ...fragment(0, 0, 20), length: 101 })).toBe('ignored');
    reassembler.add(fragment(0, 0, 8));
    expect(reassembler.add(fragment(0, 8, 20, 13))).toBe('ignored');
    expect(reassembler.add({ ...fragment(0, 8, 10), length: 30 })).toBe('ignored');
  });

  it('delivers empty messages such as ServerHelloDone', () => {
    const reassembler = new HandshakeReassembler();
    reassembler.add({ msgType: 14, length: 0, messageSeq: 0, fragmentOffset: 0, fragment: Buffer.alloc(0) });
    expect(reassembler.take()).toEqual({ msgType: 14, messageSeq: 0, body: Buffer.alloc(0) });
  });
});
