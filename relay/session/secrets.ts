import { MASTER_SECRET_LENGTH, MAX_SESSION_ID_LENGTH, RANDOM_LENGTH } from '../../api/dtls/constants.ts';
import type { DtlsSessionState } from '../../api/state-format.ts';
import { view, type Arena, type ArenaRef } from './arena.ts';

/**
 * The DTLS secrets of an established session: what node-mbed-dtls needs to resume it elsewhere.
 * The same shape the state format carries.
 */
export type DtlsSecrets = DtlsSessionState;

const RANDOMS_BYTES = 2 * RANDOM_LENGTH;
const MASTER_AT = RANDOMS_BYTES;
const SESSION_ID_AT = RANDOMS_BYTES + MASTER_SECRET_LENGTH;

/**
 * A parked session's secrets in one small buffer (randoms 64 | master 48 | session id 0-32): one
 * allocation from an arena instead of three, which matters at 100,000 parked sessions.
 */
export interface PackedSecrets {
  readonly cipherSuite: number;
  readonly inEpoch: number;
  readonly outEpoch: number;
  readonly outSeq: number;
  readonly bytes: ArenaRef;
}

export function packSecrets(secrets: DtlsSecrets, arena: Arena): PackedSecrets {
  // Fixed slots: a longer field would spill into its neighbour.
  if (secrets.randoms.length !== RANDOMS_BYTES) throw new RangeError(`randoms must be ${RANDOMS_BYTES} bytes, got ${secrets.randoms.length}`);
  if (secrets.master.length !== MASTER_SECRET_LENGTH) throw new RangeError(`master must be ${MASTER_SECRET_LENGTH} bytes, got ${secrets.master.length}`);
  if (secrets.sessionId.length > MAX_SESSION_ID_LENGTH) throw new RangeError(`session id must be at most ${MAX_SESSION_ID_LENGTH} bytes, got ${secrets.sessionId.length}`);
  const bytes = arena.place(SESSION_ID_AT + secrets.sessionId.length);
  bytes.slab.set(secrets.randoms, bytes.offset);
  bytes.slab.set(secrets.master, bytes.offset + MASTER_AT);
  bytes.slab.set(secrets.sessionId, bytes.offset + SESSION_ID_AT);
  return { cipherSuite: secrets.cipherSuite, inEpoch: secrets.inEpoch, outEpoch: secrets.outEpoch, outSeq: secrets.outSeq, bytes };
}

/** Views into the packed bytes, not copies: valid only until the secrets are wiped. */
export function unpackSecrets(packed: PackedSecrets): DtlsSecrets {
  return secretsIn(view(packed.bytes), packed);
}

/**
 * A copy that outlives the packed bytes: what leaves the session (an export, a claim answer) must
 * not turn to zeros when the session is wiped before the copy is written out.
 */
export function copySecrets(packed: PackedSecrets): DtlsSecrets {
  return secretsIn(Buffer.from(view(packed.bytes)), packed);
}

function secretsIn(bytes: Buffer, packed: PackedSecrets): DtlsSecrets {
  return {
    cipherSuite: packed.cipherSuite,
    randoms: bytes.subarray(0, MASTER_AT),
    master: bytes.subarray(MASTER_AT, SESSION_ID_AT),
    sessionId: bytes.subarray(SESSION_ID_AT),
    inEpoch: packed.inEpoch,
    outEpoch: packed.outEpoch,
    outSeq: packed.outSeq,
  };
}

/** Secrets do not linger in memory once the native socket holds them, or once the session is gone. */
export function wipeSecrets(packed: PackedSecrets): void {
  view(packed.bytes).fill(0);
}
