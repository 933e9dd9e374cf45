import { MAX_SEQUENCE_NUMBER } from '../../api/dtls/constants.ts';

/**
 * The nonce fence. AES-CCM's nonce is epoch|sequence under a per-session key: if the old relay ever
 * sent one more record after the snapshot (split brain) and the successor reused that sequence
 * number, two plaintexts would share a nonce, which breaks both confidentiality and integrity.
 * The successor therefore starts every restored session this many records further on. The device
 * accepts any sequence number above its window, so the gap is invisible to it.
 *
 * 2^24 is more records than a relay could send in the seconds a split brain can last, and leaves
 * room for 16 million handovers in the 48-bit space.
 */
export const NONCE_FENCE = 2 ** 24;

/** The fenced next outbound sequence number, or null when the session is too close to 2^48 to fence (never carry into the epoch). */
export function fenceSequence(nextSequence: number, margin = NONCE_FENCE): number | null {
  const fenced = nextSequence + margin;
  return fenced <= MAX_SEQUENCE_NUMBER ? fenced : null;
}
