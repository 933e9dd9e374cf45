/**
 * Finds where a MessagePack value ends without decoding it. The state decoder (state-codec.ts) hands msgpackr only
 * complete values, so "incomplete, wait for more bytes" is never confused with "malformed" at a chunk boundary, and
 * what a value may be is bounded before anything is decoded: its size, its nesting depth, and no ext types (the
 * state format's rule 6). Errors are StateFormatError ERR_STATE_FORMAT with the stream offset of the bad byte.
 */
import { ERR_STATE_FORMAT, StateFormatError } from './state-errors.ts';

export interface ScanLimits {
  /** A value larger than this is refused as soon as its headers say so. */
  maxValueBytes: number;
  /** Containers nested deeper than this are refused. */
  maxNesting: number;
}

/**
 * Reusable: the stack of open containers is kept between calls so that scanning allocates nothing. Not for use by
 * two decoders at once.
 */
export class MessagePackScanner {
  readonly #maxValueBytes: number;
  readonly #maxNesting: number;
  /** Remaining item counts of the enclosing containers, instead of recursion. */
  readonly #stack: number[] = [];

  constructor(limits: ScanLimits) {
    this.#maxValueBytes = limits.maxValueBytes;
    this.#maxNesting = limits.maxNesting;
  }

  /**
   * Returns the end of the MessagePack value starting at `start`, or, when `buf` ends inside it, the negated
   * buffer length needed before another scan can get further. `streamOffset` is the stream position of `buf[0]`,
   * for error messages.
   */
  valueEnd(buf: Buffer, start: number, streamOffset: number): number {
    const end = buf.length;
    const limit = start + this.#maxValueBytes;
    const stack = this.#stack;
    stack.length = 0;
    let remaining = 1;
    let pos = start;
    for (;;) {
      if (pos >= end) return -(pos + 1);
      const b = buf[pos]!;
      let head = 1;
      let len = 0;
      let items = 0;
      if (b <= 0x7f || b >= 0xe0) {
        // positive or negative fixint
      } else if (b <= 0x8f) {
        items = (b & 0x0f) * 2;
      } else if (b <= 0x9f) {
        items = b & 0x0f;
      } else if (b <= 0xbf) {
        len = b & 0x1f;
      } else {
        switch (b) {
          case 0xc0: // nil
          case 0xc2: // false
          case 0xc3: // true
            break;
          case 0xcc:
          case 0xd0:
            head = 2;
            break;
          case 0xcd:
          case 0xd1:
            head = 3;
            break;
          case 0xca:
          case 0xce:
          case 0xd2:
            head = 5;
            break;
          case 0xcb:
          case 0xcf:
          case 0xd3:
            head = 9;
            break;
          case 0xc4: // bin 8
          case 0xd9: // str 8
            head = 2;
            if (pos + head > end) return -(pos + head);
            len = buf[pos + 1]!;
            break;
          case 0xc5:
          case 0xda:
            head = 3;
            if (pos + head > end) return -(pos + head);
            len = buf.readUInt16BE(pos + 1);
            break;
          case 0xc6:
          case 0xdb:
            head = 5;
            if (pos + head > end) return -(pos + head);
            len = buf.readUInt32BE(pos + 1);
            break;
          case 0xdc: // array 16
          case 0xde: // map 16
            head = 3;
            if (pos + head > end) return -(pos + head);
            items = buf.readUInt16BE(pos + 1) * (b === 0xde ? 2 : 1);
            break;
          case 0xdd:
          case 0xdf:
            head = 5;
            if (pos + head > end) return -(pos + head);
            items = buf.readUInt32BE(pos + 1) * (b === 0xdf ? 2 : 1);
            break;
          default:
            // 0xc1 is never used; c7-c9 and d4-d8 are ext types, which the state format does not allow.
            throw new StateFormatError(
              ERR_STATE_FORMAT,
              `byte 0x${b.toString(16)} at stream byte ${streamOffset + pos} is ${
                b === 0xc1 ? 'not valid MessagePack' : 'a MessagePack ext type, which this format does not allow'
              }`,
              { offset: streamOffset + pos },
            );
        }
      }
      const next = pos + head + len;
      // Every item takes at least one byte, so a container's minimum size is known from its header.
      if (next + items > limit) {
        throw new StateFormatError(
          ERR_STATE_FORMAT,
          `MessagePack value at stream byte ${streamOffset + start} is larger than ${this.#maxValueBytes} bytes`,
          { offset: streamOffset + start },
        );
      }
      if (next > end) return -next;
      pos = next;
      if (items > 0) {
        if (stack.length === this.#maxNesting) {
          throw new StateFormatError(
            ERR_STATE_FORMAT,
            `MessagePack value at stream byte ${streamOffset + start} nests deeper than ${this.#maxNesting} levels`,
            { offset: streamOffset + start },
          );
        }
        stack.push(remaining - 1);
        remaining = items;
        continue;
      }
      remaining--;
      while (remaining === 0) {
        if (stack.length === 0) return pos;
        remaining = stack.pop()!;
      }
    }
  }
}
