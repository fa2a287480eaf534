import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { IdDeduper } from "../src/features/dedup.js";

describe("IdDeduper", () => {
  it("property: unique ids are distinct, first-seen ordered, and inverse maps every value back", () => {
    const d = new IdDeduper();
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(50), fc.nat(2)), { maxLength: 500 }), (pairs) => {
        const words = Uint32Array.from(pairs.flat());
        const { unique, uniqueCount, inverse } = d.dedup(words, pairs.length);
        const expected = [...new Set(pairs.map(([lo, hi]) => `${lo}:${hi}`))];
        expect(uniqueCount).toBe(expected.length);
        const got = Array.from({ length: uniqueCount }, (_, i) => `${unique[2 * i]}:${unique[2 * i + 1]}`);
        expect(got).toEqual(expected);
        pairs.forEach(([lo, hi], i) => expect(`${unique[2 * inverse[i]!]}:${unique[2 * inverse[i]! + 1]}`).toBe(`${lo}:${hi}`));
      }),
    );
  });
});
