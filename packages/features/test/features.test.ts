import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { hash48, murmur3 } from "../src/hash.js";
import { V2_MAX_SLOT, checkSlot, idToBigInt, jsonIdProblem, jsonIdText, slotOfV2, stampSlotV2 } from "../src/feature-id.js";
import { normalizeCount } from "../src/normalize.js";

const bytes = (s: string) => Buffer.from(s, "utf8");

describe("murmur3 (x86, 32-bit)", () => {
  // Published reference values of MurmurHash3_x86_32.
  it.each([
    ["", 0, 0x00000000],
    ["", 1, 0x514e28b7],
    ["hello", 0, 0x248bfa47],
    ["Hello, world!", 1234, 0xfaf6cdb3],
    ["The quick brown fox jumps over the lazy dog", 0, 0x2e4ff723],
  ])("murmur3(%j, %d) = %d", (s, seed, expected) => {
    const b = bytes(s);
    expect(murmur3(b, 0, b.length, seed)).toBe(expected);
  });

  it("hashes a byte range, not the whole buffer", () => {
    const b = bytes("xxhelloyy");
    expect(murmur3(b, 2, 7, 0)).toBe(0x248bfa47);
  });
});

describe("v2 feature ids", () => {
  it("puts the slot in bits 62..48 and keeps 48 hash bits", () => {
    const w = new Uint32Array(2);
    hash48(bytes("68fd1e64"), 0, 8, w, 0);
    const hashHi = w[1]!;
    stampSlotV2(w, 0, 26);
    const id = idToBigInt(w, 0);
    expect(id >> 48n).toBe(26n);
    expect(id >> 63n).toBe(0n);
    expect(Number((id >> 32n) & 0xffffn)).toBe(hashHi);
    expect(slotOfV2(w[1]!)).toBe(26);
  });

  it("property: slot and hash never mix, for every slot id", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: V2_MAX_SLOT }), fc.string(), (slot, value) => {
        const w = new Uint32Array(2);
        const b = bytes(value);
        hash48(b, 0, b.length, w, 0);
        const before = (BigInt(w[1]!) << 32n) | BigInt(w[0]!);
        stampSlotV2(w, 0, slot);
        const id = idToBigInt(w, 0);
        expect(id >> 48n).toBe(BigInt(slot));
        expect(id & 0xffffffffffffn).toBe(before);
      }),
    );
  });

  it.each([-1, V2_MAX_SLOT + 1, 1.5])("refuses slot %d", (slot) => {
    expect(() => checkSlot(slot, "feature_list")).toThrow(`feature_list: slot ${slot} is outside the v2 layout's range 0..32767`);
  });
});

describe("dense normalisation", () => {
  it("is log1p of counts, 0 for missing and negative values", () => {
    expect(normalizeCount(0)).toBe(0);
    expect(normalizeCount(-2)).toBe(0);
    expect(normalizeCount(Math.E - 1)).toBeCloseTo(1, 12);
  });
});

describe("v1 fids", () => {
  it("property: v1 -> v2 keeps the 10-bit slot and the low 48 bits of the 54-bit hash", async () => {
    const { slotOfV1, v1HiToV2Hi } = await import("../src/feature-id.js");
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1023 }), fc.bigInt({ min: 0n, max: (1n << 54n) - 1n }), (slot, sig) => {
        const v1 = (BigInt(slot) << 54n) | sig;
        const lo = Number(v1 & 0xffffffffn);
        const hi = Number(v1 >> 32n);
        expect(slotOfV1(hi)).toBe(slot);
        const v2 = (BigInt(v1HiToV2Hi(hi)) << 32n) | BigInt(lo);
        expect(v2).toBe((BigInt(slot) << 48n) | (sig & ((1n << 48n) - 1n)));
      }),
    );
  });
});

describe("jsonIdText and jsonIdProblem: feature ids as JSON gives them", () => {
  it("takes safe integers and decimal strings from -2^63 to 2^64 - 1, a negative one by its 64 bits (as gRPC reads DT_INT64)", () => {
    expect([jsonIdText(7), jsonIdText("18446744073709551615"), jsonIdText(Number.MAX_SAFE_INTEGER)]).toEqual(["7", "18446744073709551615", "9007199254740991"]);
    expect([jsonIdText(-1), jsonIdText("-1"), jsonIdText("-9223372036854775808"), jsonIdText(-(2 ** 53) + 1)]).toEqual(["18446744073709551615", "18446744073709551615", "9223372036854775808", "18437736874454810625"]);
    expect([jsonIdText(1.5), jsonIdText("18446744073709551616"), jsonIdText("-9223372036854775809"), jsonIdText(" 7"), jsonIdText("-"), jsonIdText(2 ** 53), jsonIdText(-(2 ** 53))]).toEqual([null, null, null, null, null, null, null]);
  });

  it("says a number beyond ±2^53 lost its digits in parsing, not that it is no integer", () => {
    // 9007199254740993 parses as 9007199254740992.
    const parsed = JSON.parse("9007199254740993") as number;
    expect(jsonIdProblem(parsed)).toBe("feature id 9007199254740992 (as parsed) is at or beyond ±2^53, where a JSON number loses digits; send such ids as strings");
    expect(jsonIdProblem(-(2 ** 60))).toBe("feature id -1152921504606847000 (as parsed) is at or beyond ±2^53, where a JSON number loses digits; send such ids as strings");
    expect(jsonIdProblem(1.5)).toBe("feature id 1.5 is not a 64-bit integer (-2^63 .. 2^64 - 1; send ids at or beyond ±2^53 as strings)");
    // 2^64 - 1, a valid id, parses to exactly 2^64: its digits were lost, not its range.
    expect(jsonIdProblem(JSON.parse("18446744073709551615") as number)).toBe("feature id 18446744073709552000 (as parsed) is at or beyond ±2^53, where a JSON number loses digits; send such ids as strings");
    expect(jsonIdProblem(2 ** 65)).toBe("feature id 36893488147419103000 is not a 64-bit integer (-2^63 .. 2^64 - 1; send ids at or beyond ±2^53 as strings)");
  });
});
