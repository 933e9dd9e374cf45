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

  alloc(size: number): Buffer {
    if (size > SLAB_BYTES / 4) return Buffer.allocUnsafeSlow(size);
    if (this.used + size > SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + size);
    this.used += (size + ALIGN - 1) & ~(ALIGN - 1);
    return out;
  }

  copy(source: Uint8Array): Buffer {
    const out = this.alloc(source.length);
    out.set(source);
    return out;
  }
}
