import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { hashedIdV2, int64IdV2 } from "../src/value-id.js";
import { hash48 } from "../src/hash.js";
import { bigIntToWords, idToBigInt, slotOfV2 } from "../src/feature-id.js";

describe("a raw value's id", () => {
  it("a value's bytes: its 48-bit hash under the slot", () => {
    const w = new Uint32Array(2);
    const b = Buffer.from("68fd1e64");
    hashedIdV2(b, 0, b.length, 3, w, 0);
    const h = new Uint32Array(2);
    hash48(b, 0, b.length, h, 0);
    expect(idToBigInt(w, 0)).toBe((3n << 48n) | (BigInt(h[1]!) << 32n) | BigInt(h[0]!));
    expect(slotOfV2(w[1]!)).toBe(3);
  });

  it("property: an int64 is hashed from its 8 little-endian bytes", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), fc.integer({ min: 0, max: 32767 }), (v, slot) => {
        const words = new Uint32Array(2);
        bigIntToWords(v, words, 0);
        const got = new Uint32Array(2);
        int64IdV2(words[0]!, words[1]!, slot, got, 0);
        const le = Buffer.alloc(8);
        le.writeBigInt64LE(v);
        const want = new Uint32Array(2);
        hashedIdV2(le, 0, 8, slot, want, 0);
        expect(Array.from(got)).toEqual(Array.from(want));
      }),
    );
  });
});
