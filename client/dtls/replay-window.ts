/**
 * Anti-replay sliding window of 64 records (RFC 6347 4.1.2.6).
 *
 *   bit i of the 64-bit mask (high:low words) = "top - i was received"
 *
 *          older <-------------------------------- top
 *   [ top-63 ... top-32 ][ top-31 ... top-1, top ]
 *        high word              low word
 *
 * `isDuplicateOrStale` is asked before authentication; `markReceived` only after a record
 * authenticates, so forged records cannot move the window.
 */
export const REPLAY_WINDOW_SIZE = 64;

export class ReplayWindow {
  /** Highest authenticated sequence number, -1 before the first. */
  #top = -1;
  #low = 0;
  #high = 0;

  get highestSequence(): number {
    return this.#top;
  }

  /** True when the record must be dropped: seen already, or older than the window. */
  isDuplicateOrStale(sequence: number): boolean {
    if (sequence > this.#top) return false;
    const age = this.#top - sequence;
    if (age >= REPLAY_WINDOW_SIZE) return true;
    return age < 32 ? ((this.#low >>> age) & 1) === 1 : ((this.#high >>> (age - 32)) & 1) === 1;
  }

  markReceived(sequence: number): void {
    if (sequence > this.#top) {
      this.#shiftBy(this.#top < 0 ? REPLAY_WINDOW_SIZE : sequence - this.#top);
      this.#top = sequence;
      this.#low = (this.#low | 1) >>> 0;
      return;
    }
    const age = this.#top - sequence;
    if (age >= REPLAY_WINDOW_SIZE) return;
    if (age < 32) this.#low = (this.#low | (1 << age)) >>> 0;
    else this.#high = (this.#high | (1 << (age - 32))) >>> 0;
  }

  #shiftBy(distance: number): void {
    if (distance >= REPLAY_WINDOW_SIZE) {
      this.#low = 0;
      this.#high = 0;
    } else if (distance >= 32) {
      // JS shifts count modulo 32, so the 32 case needs its own branch.
      this.#high = distance === 32 ? this.#low : (this.#low << (distance - 32)) >>> 0;
      this.#low = 0;
    } else if (distance > 0) {
      this.#high = ((this.#high << distance) | (this.#low >>> (32 - distance))) >>> 0;
      this.#low = (this.#low << distance) >>> 0;
    }
  }
}
