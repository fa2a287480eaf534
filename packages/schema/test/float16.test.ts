import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DataType, MessageType, decodeMessage, encodeMessage, fromHalf, readFloat32, toHalf, viewTensor, writeFloats } from "../src/index.js";

describe("float16", () => {
  it.each([
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff],
    [65520, 0x7c00], // rounds up past the largest half: infinity
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // ties to even: zero
    [0, 0x0000],
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [1 + 2 ** -11, 0x3c00], // halfway between 1 and the next half: ties to even (down)
    [1 + 3 * 2 ** -11, 0x3c02], // halfway, odd below: up
  ])("toHalf(%d) = %d", (x, h) => expect(toHalf(x)).toBe(h));

  it("NaN stays NaN", () => {
    expect(Number.isNaN(fromHalf(toHalf(Number.NaN)))).toBe(true);
  });

  it("every half value survives half -> float -> half unchanged", () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = fromHalf(h);
      if (Number.isNaN(x)) continue;
      expect(toHalf(x)).toBe(h);
    }
  });

  it("property: relative error of normal values is at most 2^-11", () => {
    fc.assert(
      fc.property(fc.float({ min: Math.fround(6.2e-5), max: 65000, noNaN: true }), fc.boolean(), (x, neg) => {
        const v = neg ? -x : x;
        expect(Math.abs(fromHalf(toHalf(v)) - v) / Math.abs(v)).toBeLessThanOrEqual(2 ** -11);
      }),
    );
  });

  it("a float16 tensor travels in half the bytes and reads back as float32", () => {
    const values = Float32Array.from([0.1, -3.5, 1000]);
    const bytes = encodeMessage(MessageType.PARAMETER_SET, "t", (s) => writeFloats(s._initEmbeddings(), "e", [3, 1], values, true));
    const t = decodeMessage(bytes, MessageType.PARAMETER_SET).payload.embeddings;
    expect(viewTensor(t, "e").dtype).toBe(DataType.FLOAT16);
    expect(viewTensor(t, "e").bytes.length).toBe(6);
    const back = readFloat32(t, "e", 2).data;
    values.forEach((v, i) => expect(back[i]).toBeCloseTo(v, 1));
  });
});
