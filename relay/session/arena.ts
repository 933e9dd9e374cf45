/**
 * Long-lived small buffers (session secrets, device keys) carved from slabs of their own. Taken from
 * Node's shared buffer pool instead, they would sit in the same 8 KB slabs as the short-lived
 * buffers of a state stream being decoded, and every slab would stay alive for one survivor:
 * measured, twice the memory at 100,000 restored sessions.
 *
 * A slab lives as long as any buffer carved from it; with sessions coming and going slowly that
 * costs little, and a relay is replaced by the next update long before fragmentation adds up.
 */
const SLAB_BYTES = 64 * 1024;
const ALIGN = 8;

export class Arena {
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private used = 0;

  /**
   * Room for `size` bytes, as a slab and an offset rather than a Buffer view: at 100,000 sessions
   * two views each would cost 20 MB of heap on their own.
   */
  place(size: number): ArenaRef {
    if (size > SLAB_BYTES / 4) return { slab: Buffer.allocUnsafeSlow(size), offset: 0, length: size };
    if (this.used + size > SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.used = 0;
    }
    const ref = { slab: this.slab, offset: this.used, length: size };
    this.used += (size + ALIGN - 1) & ~(ALIGN - 1);
    return ref;
  }

  copy(source: Uint8Array): ArenaRef {
    const ref = this.place(source.length);
    ref.slab.set(source, ref.offset);
    return ref;
  }
}

export interface ArenaRef {
  readonly slab: Buffer;
  readonly offset: number;
  readonly length: number;
}

export function view(ref: ArenaRef, from = 0, to = ref.length): Buffer {
  return ref.slab.subarray(ref.offset + from, ref.offset + to);
}
