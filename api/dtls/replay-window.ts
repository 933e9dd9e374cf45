/**
 * The DTLS anti-replay window (RFC 6347 4.1.2.6): the highest authenticated sequence number of an
 * epoch and a 64-bit bitmap of the ones below it. Both ends use it the same way: `accepts` before a
 * record is decrypted (to save the work), `mark` only after it authenticated, so forged records
 * cannot move the window.
 *
 *   bit i of the bitmap (high:low words) = "top - i was received"
 *
 *          older <-------------------------------- top
 *   [ top-63 ... top-32 ][ top-31 ... top-1, top ]
 *        high word              low word
 *
 * The relay also carries it in a handover (`toBytes`/`fromBytes`), because node-mbed-dtls does not
 * restore its own window with a session. Two 32-bit halves keep the hot path in small integers.
 */

export const REPLAY_WINDOW_SIZE = 64;

export class ReplayWindow {
  /** Epoch the window belongs to; records of another epoch are not judged by it. */
  epoch: number;
  /** Highest authenticated sequence number, or -1 when none yet. */
  top: number;
  /** Bit i set = sequence (top - i) was seen; bit 0 is top itself. */
  low: number;
  high: number;

  constructor(epoch = 1, top = -1, low = 0, high = 0) {
    this.epoch = epoch;
    this.top = top;
    this.low = low >>> 0;
    this.high = high >>> 0;
  }

  /** True when a record with this sequence number may be processed (new and not too old). */
  accepts(epoch: number, sequence: number): boolean {
    if (epoch !== this.epoch) return epoch > this.epoch;
    if (sequence > this.top) return true;
    const distance = this.top - sequence;
    if (distance >= REPLAY_WINDOW_SIZE) return false;
    return !this.bit(distance);
  }

  /** Marks a sequence number as seen. Call only after the record authenticated. */
  mark(epoch: number, sequence: number): void {
    if (epoch !== this.epoch) {
      if (epoch < this.epoch) return;
      this.epoch = epoch;
      this.top = -1;
      this.low = 0;
      this.high = 0;
    }
    if (sequence > this.top) {
      this.shift(this.top < 0 ? REPLAY_WINDOW_SIZE : sequence - this.top);
      this.top = sequence;
      this.low = (this.low | 1) >>> 0;
      return;
    }
    const distance = this.top - sequence;
    if (distance < REPLAY_WINDOW_SIZE) this.setBit(distance);
  }

  /** The bitmap as 8 big-endian bytes, bit 0 of the last byte = top. */
  toBytes(): Buffer {
    const out = Buffer.allocUnsafe(8);
    out.writeUInt32BE(this.high, 0);
    out.writeUInt32BE(this.low, 4);
    return out;
  }

  static fromBytes(epoch: number, top: number, bytes: Uint8Array): ReplayWindow {
    if (bytes.length !== 8) throw new RangeError(`replay window bitmap must be 8 bytes, got ${bytes.length}`);
    const view = Buffer.from(bytes.buffer, bytes.byteOffset, 8);
    return new ReplayWindow(epoch, top, view.readUInt32BE(4), view.readUInt32BE(0));
  }

  private bit(distance: number): boolean {
    return distance < 32 ? ((this.low >>> distance) & 1) === 1 : ((this.high >>> (distance - 32)) & 1) === 1;
  }

  private setBit(distance: number): void {
    if (distance < 32) this.low = (this.low | (1 << distance)) >>> 0;
    else this.high = (this.high | (1 << (distance - 32))) >>> 0;
  }

  private shift(by: number): void {
    if (by >= REPLAY_WINDOW_SIZE) {
      this.low = 0;
      this.high = 0;
    } else if (by >= 32) {
      // JS shifts count modulo 32, so the 32 case needs its own branch.
      this.high = by === 32 ? this.low : (this.low << (by - 32)) >>> 0;
      this.low = 0;
    } else if (by > 0) {
      this.high = ((this.high << by) | (this.low >>> (32 - by))) >>> 0;
      this.low = (this.low << by) >>> 0;
    }
  }
}
