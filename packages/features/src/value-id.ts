import { hash48 } from "./hash.js";
import { stampSlotV2 } from "./feature-id.js";

/**
 * The v2 id of a raw value (bytes[start, end)) in `slot`, written as words at
 * out[at], out[at + 1]: the 48-bit hash of its bytes under the slot. Every
 * reader that turns values into ids goes through here, so training and
 * serving give a value the same id.
 */
export function hashedIdV2(bytes: Uint8Array, start: number, end: number, slot: number, out: Uint32Array, at: number): void {
  hash48(bytes, start, end, out, at);
  stampSlotV2(out, at, slot);
}

const int64Bytes = new Uint8Array(8);

/** The v2 id of an int64 value given as (lo, hi) words: hashed from its 8 little-endian bytes, as Monolith hashes int64 features. */
export function int64IdV2(lo: number, hi: number, slot: number, out: Uint32Array, at: number): void {
  for (let i = 0; i < 4; i++) {
    int64Bytes[i] = (lo >>> (8 * i)) & 0xff;
    int64Bytes[i + 4] = (hi >>> (8 * i)) & 0xff;
  }
  hashedIdV2(int64Bytes, 0, 8, slot, out, at);
}
