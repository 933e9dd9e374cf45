import type { HandshakeFragment } from './handshake-messages.ts';

export interface HandshakeMessage {
  readonly msgType: number;
  readonly messageSeq: number;
  readonly body: Buffer;
}

export type FragmentDisposition =
  /** Part of a message delivered already: the peer is retransmitting. */
  | 'old'
  /** Kept for delivery (possibly completing a message). */
  | 'accepted'
  /** Dropped: too far ahead, too large, or inconsistent with fragments seen before. */
  | 'ignored';

interface PartialMessage {
  readonly msgType: number;
  readonly body: Buffer;
  /** One byte per body byte, set once received; null when the message arrived whole. */
  readonly covered: Uint8Array | null;
  missing: number;
}

/**
 * Puts handshake fragments back into whole messages and hands them out in message_seq order
 * (RFC 6347 4.2.2): fragments may be duplicated, reordered or split differently on retransmission.
 */
export class HandshakeReassembler {
  readonly #maxMessageLength: number;
  readonly #maxMessagesAhead: number;
  readonly #pending = new Map<number, PartialMessage>();
  #nextSeq = 0;

  constructor(options: { maxMessageLength?: number; maxMessagesAhead?: number } = {}) {
    this.#maxMessageLength = options.maxMessageLength ?? 8192;
    this.#maxMessagesAhead = options.maxMessagesAhead ?? 8;
  }

  /** message_seq of the next message to be handed out. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  add(fragment: HandshakeFragment): FragmentDisposition {
    const seq = fragment.messageSeq;
    if (seq < this.#nextSeq) return 'old';
    if (seq >= this.#nextSeq + this.#maxMessagesAhead || fragment.length > this.#maxMessageLength) return 'ignored';

    const whole = fragment.fragmentOffset === 0 && fragment.fragment.length === fragment.length;
    let partial = this.#pending.get(seq);
    if (partial === undefined) {
      partial = whole
        ? { msgType: fragment.msgType, body: fragment.fragment, covered: null, missing: 0 }
        : { msgType: fragment.msgType, body: Buffer.alloc(fragment.length), covered: new Uint8Array(fragment.length), missing: fragment.length };
      this.#pending.set(seq, partial);
      if (whole) return 'accepted';
    } else if (partial.msgType !== fragment.msgType || partial.body.length !== fragment.length) {
      return 'ignored';
    }
    if (partial.covered === null) return 'accepted';

    const { fragmentOffset, fragment: bytes } = fragment;
    partial.body.set(bytes, fragmentOffset);
    for (let i = fragmentOffset; i < fragmentOffset + bytes.length; i++) {
      if (partial.covered[i] === 0) {
        partial.covered[i] = 1;
        partial.missing--;
      }
    }
    return 'accepted';
  }

  /** The next whole message in order, or undefined while it is incomplete or missing. */
  take(): HandshakeMessage | undefined {
    const partial = this.#pending.get(this.#nextSeq);
    if (partial === undefined || partial.missing > 0) return undefined;
    this.#pending.delete(this.#nextSeq);
    return { msgType: partial.msgType, messageSeq: this.#nextSeq++, body: partial.body };
  }

  clear(): void {
    this.#pending.clear();
  }
}
