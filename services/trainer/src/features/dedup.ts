import { mix32 } from "@pangea/kit";
import { nativeBlas } from "@pangea/blas";

const blas = nativeBlas().blas;

/**
 * Reduces a batch's feature ids ((lo, hi) word pairs) to unique ids plus, for
 * every value, the index of its unique id, so each row is pulled and
 * updated once per step. Scratch space is reused between batches.
 */
export class IdDeduper {
  private keysLo = new Uint32Array(0);
  private keysHi = new Uint32Array(0);
  private slots = new Int32Array(0);
  /** The addon's table: 3 words a slot. */
  private table = new Uint32Array(0);

  dedup(words: Uint32Array, count: number): { unique: Uint32Array; uniqueCount: number; inverse: Int32Array } {
    let cap = 1;
    while (cap < count * 2) cap *= 2;
    if (blas) {
      // On the addon: the same hash and probing, about 2x faster than the loop below (53k ids: 3.1 -> 1.5 ms).
      if (this.table.length < cap * 3) this.table = new Uint32Array(cap * 3);
      const unique = new Uint32Array(count * 2);
      const inverse = new Int32Array(count);
      const u = blas.dedupIds(words, count, this.table.subarray(0, cap * 3), unique, inverse);
      return { unique: unique.subarray(0, 2 * u), uniqueCount: u, inverse };
    }
    if (this.slots.length < cap) {
      this.keysLo = new Uint32Array(cap);
      this.keysHi = new Uint32Array(cap);
      this.slots = new Int32Array(cap);
    }
    const slots = this.slots.subarray(0, cap).fill(-1);
    const mask = cap - 1;
    const unique = new Uint32Array(count * 2);
    const inverse = new Int32Array(count);
    let u = 0;
    for (let i = 0; i < count; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      let s = mix32(lo ^ mix32(hi ^ 0x27d4eb2d)) & mask;
      for (;;) {
        const at = slots[s]!;
        if (at < 0) {
          slots[s] = u;
          this.keysLo[s] = lo;
          this.keysHi[s] = hi;
          unique[2 * u] = lo;
          unique[2 * u + 1] = hi;
          inverse[i] = u++;
          break;
        }
        if (this.keysLo[s] === lo && this.keysHi[s] === hi) {
          inverse[i] = at;
          break;
        }
        s = (s + 1) & mask;
      }
    }
    return { unique: unique.subarray(0, 2 * u), uniqueCount: u, inverse };
  }
}
