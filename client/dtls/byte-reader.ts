import { AlertDescription } from '../../api/dtls/constants.ts';
import { DtlsClientError } from './errors.ts';

/** Bounds-checked cursor over a received message; every overrun is a decode_error. */
export class ByteReader {
  readonly #bytes: Buffer;
  #offset: number;
  readonly #end: number;
  readonly #what: string;

  constructor(bytes: Buffer, what: string, offset = 0, end = bytes.length) {
    this.#bytes = bytes;
    this.#offset = offset;
    this.#end = end;
    this.#what = what;
  }

  get remaining(): number {
    return this.#end - this.#offset;
  }

  uint8(): number {
    this.#need(1);
    return this.#bytes[this.#offset++]!;
  }

  uint16(): number {
    this.#need(2);
    const value = this.#bytes.readUInt16BE(this.#offset);
    this.#offset += 2;
    return value;
  }

  uint24(): number {
    this.#need(3);
    const value = this.#bytes.readUIntBE(this.#offset, 3);
    this.#offset += 3;
    return value;
  }

  bytes(length: number): Buffer {
    this.#need(length);
    const slice = this.#bytes.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return slice;
  }

  /** opaque<0..2^8-1>, <0..2^16-1> or <0..2^24-1>: a length prefix of 1, 2 or 3 bytes. */
  vector(lengthBytes: 1 | 2 | 3): Buffer {
    const length = lengthBytes === 1 ? this.uint8() : lengthBytes === 2 ? this.uint16() : this.uint24();
    return this.bytes(length);
  }

  /** A length-prefixed vector read as a nested reader. */
  nested(lengthBytes: 1 | 2 | 3, what: string): ByteReader {
    const body = this.vector(lengthBytes);
    return new ByteReader(body, what);
  }

  expectEnd(): void {
    if (this.#offset !== this.#end) this.fail(`${this.remaining} trailing bytes`);
  }

  fail(reason: string): never {
    throw new DtlsClientError('ERR_DTLS_DECODE', `malformed ${this.#what}: ${reason}`, {
      alert: AlertDescription.decodeError,
    });
  }

  #need(length: number): void {
    if (this.#end - this.#offset < length) this.fail('truncated');
  }
}

export function uint24(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(3);
  bytes.writeUIntBE(value, 0, 3);
  return bytes;
}

export function uint16(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(2);
  bytes.writeUInt16BE(value, 0);
  return bytes;
}

/** Length-prefixed vector with a 1, 2 or 3 byte length. */
export function vector(lengthBytes: 1 | 2 | 3, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  const prefix = Buffer.allocUnsafe(lengthBytes);
  prefix.writeUIntBE(body.length, 0, lengthBytes);
  return Buffer.concat([prefix, body]);
}
