import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CriteoTsvSource } from "../src/sources/criteo-tsv.js";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { RecordBlock } from "../src/sources/source.js";
import { ComputeErrors } from "../src/errors.js";

const dir = mkdtempSync(join(tmpdir(), "pangea-compute-"));
const line = (label: string, dense: string[], cats: string[]) => [label, ...dense, ...cats].join("\t");
const goodDense = Array.from({ length: 13 }, (_, i) => String(i));
const goodCats = Array.from({ length: 26 }, (_, i) => (i % 5 === 0 ? "" : `${i.toString(16).padStart(8, "0")}`));

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe("synthetic source", () => {
  const src = new SyntheticSource({ seed: 7, evalRecords: 2000 });

  it("describes 13 dense features, 26 slots and its ground truth", () => {
    expect(src.info.numDense).toBe(13);
    expect(src.info.slotIds).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    expect(src.info.trainRecords).toBe(0);
    expect(src.info.groundTruth!.auc).toBeGreaterThan(0.75);
    expect(src.info.groundTruth!.auc).toBeLessThan(0.95);
  });

  it("is a pure function of (seed, split, index)", () => {
    const a = new RecordBlock(64, 13, 26);
    const b = new RecordBlock(64, 13, 26);
    src.read("train", 1000, 64, a);
    new SyntheticSource({ seed: 7, evalRecords: 0 }).read("train", 1000, 64, b);
    expect(a.idWords).toEqual(b.idWords);
    expect(a.dense).toEqual(b.dense);
    expect(a.labels).toEqual(b.labels);
    const other = new RecordBlock(64, 13, 26);
    src.read("eval", 1000, 64, other);
    expect(other.idWords).not.toEqual(a.idWords);
  });

  it("gives a record the same ids whether generated in memory or read back from its TSV line", () => {
    const n = 300;
    const path = write("synthetic.tsv", Array.from({ length: n }, (_, i) => src.tsvLine("train", i)).join("\n") + "\n");
    const file = new CriteoTsvSource({ paths: [path], evalFraction: 0 });
    const fromFile = new RecordBlock(n, 13, 26);
    const inMemory = new RecordBlock(n, 13, 26);
    file.read("train", 0, n, fromFile);
    src.read("train", 0, n, inMemory);
    expect(fromFile.idWords).toEqual(inMemory.idWords);
    expect(fromFile.labels).toEqual(inMemory.labels);
    expect(fromFile.dense).toEqual(inMemory.dense);
  });
});

describe("Criteo TSV source", () => {
  it("parses labels, counts (empty = 0, negative clamped) and tokens, and holds out the tail", () => {
    const rows = Array.from({ length: 10 }, (_, i) => line(String(i % 2), goodDense.map((d, j) => (j === 1 ? "-1" : j === 2 ? "" : d)), goodCats));
    const src = new CriteoTsvSource({ paths: [write("ok.tsv", rows.join("\r\n"))], evalFraction: 0.2 });
    expect(src.info.trainRecords).toBe(8);
    expect(src.info.evalRecords).toBe(2);
    const block = new RecordBlock(2, 13, 26);
    src.read("eval", 0, 2, block);
    expect(Array.from(block.labels.subarray(0, 2))).toEqual([0, 1]);
    expect(block.dense[0]).toBe(0);
    expect(block.dense[1]).toBe(0);
    expect(block.dense[2]).toBe(0);
    expect(block.dense[3]).toBeCloseTo(Math.log1p(3), 6);
  });

  it.each([
    ["wrong field count", line("1", goodDense, goodCats.slice(0, 25)), "bad.tsv:2 (byte 217): expected 40 tab-separated fields (label, I1-I13, C1-C26), got 39"],
    ["too many fields", line("1", goodDense, [...goodCats, "x"]), "bad.tsv:2 (byte 217): more than 40 tab-separated fields"],
    ["bad label", line("2", goodDense, goodCats), "bad.tsv:2 (byte 217): label '2' must be 0 or 1"],
    ["non-integer count", line("0", goodDense.map((d, j) => (j === 4 ? "4.5" : d)), goodCats), "bad.tsv:2 (byte 217): field I5 '4.5' is not an integer"],
    ["lone minus", line("0", goodDense.map((d, j) => (j === 0 ? "-" : d)), goodCats), "bad.tsv:2 (byte 217): field I1 '-' is not an integer"],
  ])("names file, line and byte offset for a %s", (_what, bad, message) => {
    const path = write("bad.tsv", `${line("0", goodDense, goodCats)}\n${bad}\n`);
    try {
      new CriteoTsvSource({ paths: [path], evalFraction: 0 });
      expect.unreachable();
    } catch (err) {
      expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_RECORD")).toBe(true);
      expect((err as Error).message).toBe(`${path.replace(/bad\.tsv$/, "")}${message}`);
    }
  });

  it("refuses a missing or empty file with COMPUTE_ERR_SOURCE", () => {
    expect(() => new CriteoTsvSource({ paths: [join(dir, "nope.tsv")], evalFraction: 0 })).toThrow(/cannot read data file .*nope\.tsv: ENOENT/);
    expect(() => new CriteoTsvSource({ paths: [write("empty.tsv", "\n\n")], evalFraction: 0 })).toThrow(/has no records/);
  });
});
