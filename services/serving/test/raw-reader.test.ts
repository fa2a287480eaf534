import { describe, expect, it } from "vitest";
import { compileFeatureList, criteoFeatureListConfig, hashedIdV2, normalizeCount } from "@pangea/features";
import { RawReader } from "../src/api/raw-features.js";
import { rawLayoutOf } from "../src/model/raw-layout.js";

/**
 * Raw values become the ids and dense values training makes of them: a
 * string's id is hashedIdV2 of its UTF-8 (TextEncoder's, independent of the
 * reader's own copying), a count its log(1 + x); strings of any length, any
 * characters (the reader's buffer grows past its first 256 bytes; past 64 KiB a value gets its own), in rows
 * of any slot order.
 */
const list = compileFeatureList(criteoFeatureListConfig(), "test");
const spec = { numDense: 13, numSlots: 26, embeddingDim: 4 };
const reader = new RawReader(rawLayoutOf(null, spec, list.slotIds)!);

const idOf = (s: string, slot: number) => {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint32Array(2);
  hashedIdV2(bytes, 0, bytes.length, slot, out, 0);
  return [out[0]!, out[1]!];
};

const strings = ["", "68fd1e64", "é", "a\u{1F600}b", "\uD800x", "x".repeat(86), "é".repeat(300), "q".repeat(5000) + "é", "z".repeat(30_000) + "é", "x".repeat(40_000), "9".repeat(400)];

describe("RawReader", () => {
  it("hashes each string as training hashes its UTF-8, whatever its length or characters", () => {
    const B = strings.length;
    const slotValues = strings.map((s, e) => Array.from({ length: 26 }, (_, c) => (c === e % 26 ? s : `${e}-${c}`)));
    const dense = strings.map((_, e) => Array.from({ length: 13 }, (_, k) => (k === 0 ? String(e * 1000) : e + k)));
    const x = reader.examples(new Map<string, unknown[][]>([["dense_values", dense], ["slot_values", slotValues]]), spec, 64);
    expect(x.count).toBe(B);
    for (let e = 0; e < B; e++) {
      for (let c = 0; c < 26; c++) {
        const cell = e * 26 + c;
        expect([x.cellOffsets![cell + 1]! - x.cellOffsets![cell]!]).toEqual([1]);
        const v = x.cellOffsets![cell]!;
        expect([x.idWords[2 * v], x.idWords[2 * v + 1]]).toEqual(idOf(slotValues[e]![c]! as string, list.slotIds[c]!));
      }
      expect(x.dense[e * 13]).toBeCloseTo(normalizeCount(e * 1000), 6);
      expect(x.dense[e * 13 + 5]).toBeCloseTo(normalizeCount(e + 5), 6);
    }
  });

  it("puts features given by name in any order into their slots' cells, several values pooled in one cell", () => {
    const inputs = new Map<string, unknown[][]>([
      ["C3", [["b", "a"], []]],
      ["C1", [["z"], ["y", "y", "x"]]],
      ["I2", [[7], [null]]],
    ]);
    const x = reader.examples(inputs, spec, 64);
    const cell = (e: number, c: number) => Array.from({ length: x.cellOffsets![e * 26 + c + 1]! - x.cellOffsets![e * 26 + c]! }, (_, k) => {
      const v = x.cellOffsets![e * 26 + c]! + k;
      return [x.idWords[2 * v], x.idWords[2 * v + 1]];
    });
    expect(cell(0, 0)).toEqual([idOf("z", list.slotIds[0]!)]);
    expect(cell(0, 2)).toEqual([idOf("b", list.slotIds[2]!), idOf("a", list.slotIds[2]!)]);
    expect(cell(1, 0)).toEqual([idOf("y", list.slotIds[0]!), idOf("y", list.slotIds[0]!), idOf("x", list.slotIds[0]!)]);
    expect(cell(1, 2)).toEqual([]);
    expect(cell(0, 1)).toEqual([]);
    expect(x.dense[1]).toBeCloseTo(normalizeCount(7), 6);
    expect(x.dense[13 + 1]).toBe(0);
  });

  it("reads Criteo's counts for a version exported without a feature list, counts or numbers with one of Criteo's layout (dims aside: it may have trained on Parquet), numbers with another", () => {
    const withDims = compileFeatureList({ ...criteoFeatureListConfig(), slots: criteoFeatureListConfig().slots.map((s, i) => (i === 2 ? { ...s, dim: 8 } : s)) }, "gen-data's list, a dim changed");
    const other = compileFeatureList({ ...criteoFeatureListConfig(), dense: criteoFeatureListConfig().dense!.map((d) => ({ ...d, transform: "none" as const })) }, "no log1p");
    const read = (r: RawReader, v: unknown) => r.examples(new Map<string, unknown[][]>([["I2", [[v]]]]), spec, 64).dense[1];
    const count5 = Math.fround(normalizeCount(5));
    const noList = new RawReader(rawLayoutOf(null, spec, list.slotIds)!);
    expect([read(noList, ""), read(noList, "5"), read(noList, 5)]).toEqual([0, count5, count5]);
    expect(() => read(noList, 2.5)).toThrow('input I2, example 0: expected an integer count (or "" or null for missing), got 2.5');
    // A trial's version exported with gen-data's list refused "" (the README's example), which the one without a list reads.
    const criteo = new RawReader(rawLayoutOf(withDims, spec, withDims.slotIds)!);
    expect([read(criteo, ""), read(criteo, "5"), read(criteo, 5), read(criteo, 2.5)]).toEqual([0, count5, count5, Math.fround(normalizeCount(2.5))]);
    expect(() => read(criteo, "2.5")).toThrow('input I2, example 0: expected an integer count or a finite number (or "" or null for missing), got "2.5"');
    const r = new RawReader(rawLayoutOf(other, spec, other.slotIds)!);
    expect(read(r, 2.5)).toBe(2.5);
    expect(() => read(r, "")).toThrow('input I2, example 0: expected a finite number (or null for missing), got ""');
    // Decimal text in a DT_STRING tensor (its values arrive as bytes); what Number() reads besides (hex, binary, padding) is refused.
    expect([read(r, Buffer.from("16")), read(r, Buffer.from("-1.5e2"))]).toEqual([16, -150]);
    for (const text of ["0x10", "0b1", " 5", "Infinity", "1e999"]) expect(() => read(r, Buffer.from(text)), text).toThrow("expected a finite number");
  });
});
