import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { parquetWriteBuffer } from "hyparquet-writer";
import { ParquetSource, largeGroupsWarning, largestGroup } from "../src/sources/parquet-source.js";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { RecordBlock } from "../src/sources/source.js";
import { ComputeErrors } from "../src/errors.js";
import { expectSameRecords } from "./same-records.js";
import { compileFeatureList } from "@pangea/features";

const dir = mkdtempSync(join(tmpdir(), "pangea-parquet-"));
const synthetic = new SyntheticSource({ seed: 13, evalRecords: 0 });
const list = compileFeatureList(synthetic.featureListConfig("bytes"), "test");
const N = 500;

function criteoParquet(n: number, damage?: (cols: { label: (number | null)[] }) => void, layout: { rowGroupSize?: number[]; pageSize?: number; required?: boolean } = {}): string {
  const { required, ...sizes } = layout;
  const label: (number | null)[] = [];
  const dense: (number | null)[][] = Array.from({ length: 13 }, () => []);
  const cats: string[][] = Array.from({ length: 26 }, () => []);
  for (let i = 0; i < n; i++) {
    const f = synthetic.tsvLine("train", i).split("\t");
    label.push(Number(f[0]));
    for (let j = 0; j < 13; j++) dense[j]!.push(f[1 + j] === "" ? null : Number(f[1 + j]));
    for (let k = 0; k < 26; k++) cats[k]!.push(f[14 + k]!);
  }
  damage?.({ label });
  const path = join(dir, `criteo-${Math.random()}.parquet`);
  writeFileSync(
    path,
    new Uint8Array(
      parquetWriteBuffer({
        columnData: [
          // required: the columns that hold no nulls are written so (not nullable), as pyarrow and Spark write them.
          { name: "label", data: label, type: "INT32", ...(required ? { nullable: false } : {}) },
          ...dense.map((data, j) => ({ name: `I${j + 1}`, data, type: "DOUBLE" as const })),
          ...cats.map((data, k) => ({ name: `C${k + 1}`, data, type: "STRING" as const, ...(required ? { nullable: false } : {}) })),
        ],
        ...sizes,
      }),
    ),
  );
  return path;
}

describe("Parquet source (files written by hyparquet-writer)", () => {
  it("reads Criteo columns to the same samples as the in-memory generator", async () => {
    const src = await ParquetSource.open({ paths: [criteoParquet(N)], featureList: list, evalFraction: 0.2, onBadRecord: "fail" });
    expect(src.info.trainRecords).toBe(400);
    expect(src.info.evalRecords).toBe(100);
    expect(src.info.dataWarnings).toBeUndefined(); // every declared slot got ids
    expectSameRecords(src, synthetic, 400);
    const e = new RecordBlock(100, 13, 26);
    const f = new RecordBlock(500, 13, 26);
    src.read("eval", 0, 100, e);
    synthetic.read("train", 0, 500, f);
    expect(e.labels).toEqual(f.labels.subarray(400, 500));
  });

  it("several row groups of small pages (a required column's pages come as pieces): the same samples", async () => {
    const n = 2600;
    const src = await ParquetSource.open({ paths: [criteoParquet(n, undefined, { rowGroupSize: [1300, 1300], pageSize: 512, required: true })], featureList: list, evalFraction: 0, onBadRecord: "fail" });
    expectSameRecords(src, synthetic, n);
    // Groups of 1,300 rows of 40 columns take about 2.4 MB to decode: within 16 MiB, a warning under 2 MiB naming the group size that fits.
    expect(src.info.dataWarnings).toBeUndefined();
    const tight = await ParquetSource.open({ paths: [criteoParquet(n, undefined, { rowGroupSize: [1300, 1300] })], featureList: list, evalFraction: 0, onBadRecord: "fail", memoryMb: 2 });
    expect(tight.info.dataWarnings).toEqual([expect.stringMatching(/^Parquet file \S+\.parquet has row groups of up to 1300 rows: compute decodes a group whole, about 3 MB for the 40 columns read, beyond --max-memory-mb 2; row groups of at most 1092 rows keep within it$/)]);
  });

  it("a warning for large row groups names at most three files and the largest group", () => {
    // 48 bytes a value: 30,000 rows of 10 columns take 14.4 MB, 20,000 take 9.6 MB.
    const files = [1, 2, 3, 4, 5].map((i) => ({ path: `f${i}.parquet`, rows: i * 10_000, bytes: i * 100_000 * 48 }));
    expect(largeGroupsWarning(files, 10, 12)).toBe("Parquet files f3.parquet, f4.parquet, f5.parquet have row groups of up to 50000 rows: compute decodes a group whole, about 23 MB for the 10 columns read, beyond --max-memory-mb 12; row groups of at most 26214 rows keep within it");
    expect(largeGroupsWarning(files, 10, 1024)).toBeNull();
    expect(largeGroupsWarning([...files, { path: "g.parquet", rows: 40_000, bytes: 400_000 * 48 }, { path: "h.parquet", rows: 40_000, bytes: 400_000 * 48 }], 10, 12)).toMatch(/^Parquet files f3.parquet, f4.parquet, f5.parquet and 2 more have row groups of up to 50000 rows/);
  });

  it("a group's estimate: its values, its list rows, and at least twice its uncompressed bytes (a few huge cells)", () => {
    const column = (name: string[], values: number, uncompressed: number) => ({ meta_data: { path_in_schema: name, num_values: BigInt(values), total_uncompressed_size: BigInt(uncompressed) } });
    const group = (rows: number, columns: ReturnType<typeof column>[]) => ({ num_rows: BigInt(rows), columns });
    const meta = (groups: ReturnType<typeof group>[], schema: object[]) => ({ row_groups: groups, schema }) as unknown as Parameters<typeof largestGroup>[0];
    // 2,000 rows: a label (2,000 values) and a list of 64 ids a row (128,000 values, 2,000 lists), another column not read.
    const listSchema = [
      { name: "root", num_children: 3 },
      { name: "label", type: "INT32" },
      { name: "ids", converted_type: "LIST", num_children: 1 },
      { name: "list", repetition_type: "REPEATED", num_children: 1 },
      { name: "element", type: "INT64" },
      { name: "other", type: "INT32" },
    ];
    const lists = meta([group(2000, [column(["label"], 2000, 8000), column(["ids", "list", "element"], 128_000, 1_024_000), column(["other"], 2000, 1e9)])], listSchema);
    expect(largestGroup(lists, ["label", "ids"])).toEqual({ rows: 2000, bytes: 130_000 * 48 + 2000 * 320 });
    // Twelve cells of 300 MB in a file of kilobytes: their bytes, not their 12 values, are what decoding them takes.
    const bomb = meta([group(1, [column(["label"], 1, 4)]), group(12, [column(["label"], 12, 48), column(["c"], 12, 3.6e9)])], [{ name: "root", num_children: 2 }, { name: "label", type: "INT32" }, { name: "c", type: "BYTE_ARRAY" }]);
    // A field repeated itself (a list of two levels' older form) is a list too.
    const repeated = meta([group(100, [column(["ids"], 400, 3200)])], [{ name: "root", num_children: 1 }, { name: "ids", type: "INT64", repetition_type: "REPEATED" }]);
    expect(largestGroup(repeated, ["ids"])).toEqual({ rows: 100, bytes: 400 * 48 + 100 * 320 });
    expect(largestGroup(bomb, ["label", "c"])).toEqual({ rows: 12, bytes: 2 * (3.6e9 + 48) });
    expect(largeGroupsWarning([{ path: "bomb.parquet", ...largestGroup(bomb, ["label", "c"]) }], 2, 64)).toBe("Parquet file bomb.parquet has row groups of up to 12 rows: compute decodes a group whole, about 6867 MB for the 2 columns read, beyond --max-memory-mb 64; a row alone takes about 573 MB: cells that large are no feature's values");
  });

  it("a file of no rows among others is a data warning naming it", async () => {
    const none = criteoParquet(0);
    const paths = [criteoParquet(20), none];
    const src = await ParquetSource.open({ paths, featureList: list, evalFraction: 0, onBadRecord: "fail" });
    expect(src.info.trainRecords).toBe(20);
    expect(src.info.dataWarnings).toEqual([`Parquet file ${none} holds no rows: nothing was read from it`]);
    // Said again by a compute that reuses the pass's cache (it reads no file then).
    const again = await ParquetSource.open({ paths, featureList: list, evalFraction: 0, onBadRecord: "fail" });
    expect(again.info.storage).toMatch(/^record cache reused/);
    expect(again.info.dataWarnings).toEqual(src.info.dataWarnings);
  });

  it("names the columns the file lacks", async () => {
    const path = join(dir, "few.parquet");
    writeFileSync(path, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: "label", data: [1, 0], type: "INT32" }] })));
    await expect(ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "fail" })).rejects.toThrow(
      `${path}: the feature list names columns the Parquet file lacks: C1, C2`,
    );
  });

  it("refuses a file that is not Parquet with COMPUTE_ERR_BAD_FRAME", async () => {
    const path = join(dir, "junk.parquet");
    writeFileSync(path, "not a parquet file at all");
    const err = await ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "fail" }).catch((e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_FRAME")).toBe(true);
    expect((err as Error).message).toMatch(/^cannot read Parquet file .*junk\.parquet: /);
  });

  it("a file that is empty, too short, gzip-compressed or cut short says so (not the library's DataView offsets)", async () => {
    const whole = readFileSync(criteoParquet(20));
    const cases: [string, Uint8Array, string][] = [
      ["empty", new Uint8Array(0), "the file is empty (0 bytes)"],
      ["short", Buffer.from("PAR1x"), "the file is 5 bytes, shorter than any Parquet file (PAR1, a footer length and PAR1 are 12)"],
      ["gzip", gzipSync(whole), "the file is gzip-compressed (Parquet compresses inside the file): decompress it first"],
      ["cut", whole.subarray(0, whole.length - 100), "it does not start and end with PAR1, as every Parquet file does (it starts with PAR1 but does not end with it: cut short?)"],
      // Another format altogether (a TFRecord file here) is not asked about being cut short.
      ["other", Buffer.from("\x05\x00\x00\x00\x00\x00\x00\x00abcdefgh"), 'it does not start and end with PAR1, as every Parquet file does (it starts with "\\u0005\\u0000\\u0000\\u0000": another format? (--format names it))'],
    ];
    for (const [name, bytes, reason] of cases) {
      const path = join(dir, `${name}.parquet`);
      writeFileSync(path, bytes);
      const err = await ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "fail" }).catch((e: unknown) => e);
      expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_FRAME")).toBe(true);
      expect((err as Error).message).toBe(`cannot read Parquet file ${path}: ${reason}`);
    }
  });

  it("a damaged footer says the footer does not decode, not only the library's decoder words", async () => {
    const bytes = readFileSync(criteoParquet(50));
    const footer = bytes.readUInt32LE(bytes.length - 8);
    // The footer's first bytes (its thrift field headers) garbled.
    for (let k = bytes.length - 8 - footer; k < bytes.length - 8 - footer + 16; k++) bytes[k] = 0xff;
    const path = join(dir, "bad-footer.parquet");
    writeFileSync(path, bytes);
    const err = await ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "skip" }).catch((e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_FRAME")).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^cannot read Parquet file ${path}: its footer \\(the schema and row groups, at its end\\) does not decode, the file is damaged: .+`));
  });

  it("a file whose footer points past its end (its middle cut out) says so, not that it shrank", async () => {
    const whole = readFileSync(criteoParquet(200));
    const footer = whole.readUInt32LE(whole.length - 8) + 8;
    const path = join(dir, "middle-cut.parquet");
    writeFileSync(path, Buffer.concat([whole.subarray(0, 1000), whole.subarray(whole.length - footer)]));
    const err = await ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "fail" }).catch((e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_FRAME")).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^cannot read Parquet file ${path} at row group 0 \\(rows 0-199\\): its metadata points at bytes \\d+-\\d+, past the file's end \\(${1000 + footer} bytes\\): the file is damaged or was cut$`));
  });

  it("a dense list column: fewer values than its size leave 0s (as null does), more are a bad row naming the column and the size", async () => {
    const path = join(dir, "dense-lists.parquet");
    const vec = [[1, 2, 3], [4, 5], null, [6, 7, 8, 9], [10]];
    writeFileSync(path, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: "label", data: [1, 0, 1, 0, 1], type: "INT32" }, { name: "vec", data: vec }, { name: "c", data: ["a", "b", "c", "d", "e"], type: "STRING" }] })));
    const vecList = compileFeatureList({ slots: [{ name: "c", slot: 1, type: "bytes" }], dense: [{ name: "vec", size: 3, transform: "none" }] }, "test");
    await expect(ParquetSource.open({ paths: [path], featureList: vecList, evalFraction: 0, onBadRecord: "fail" })).rejects.toThrow(
      `${path}: row 3: dense column 'vec' holds 4 values; the feature list declares size 3`,
    );
    const src = await ParquetSource.open({ paths: [path], featureList: vecList, evalFraction: 0, onBadRecord: "skip" });
    expect(src.info.trainRecords).toBe(4);
    const b = new RecordBlock(4, 3, 1);
    src.read("train", 0, 4, b);
    expect([...b.dense]).toEqual([1, 2, 3, 4, 5, 0, 0, 0, 0, 10, 0, 0]);
  });

  it("a slot column of nulls in every row is a data warning naming it", async () => {
    const path = join(dir, "null-slot.parquet");
    const rows = 6;
    writeFileSync(path, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: "label", data: [1, 0, 1, 0, 1, 0], type: "INT32" }, { name: "x", data: [1, 2, 3, 4, 5, 6], type: "DOUBLE" }, { name: "c", data: ["a", "b", "c", "d", "e", "f"], type: "STRING" }, { name: "d", data: new Array(rows).fill(null), type: "STRING" }] })));
    const twoSlots = compileFeatureList({ slots: [{ name: "c", slot: 1, type: "bytes" }, { name: "d", slot: 7, type: "bytes" }], dense: [{ name: "x", size: 1, transform: "none" }] }, "test");
    const src = await ParquetSource.open({ paths: [path], featureList: twoSlots, evalFraction: 0, onBadRecord: "fail" });
    expect(src.info.dataWarnings).toEqual([
      "slot 'd' (slot 7) of the feature list holds no id in any of the 6 records read: it trains on nothing and serving takes it as missing; check that each slot's column is named as in the files and holds values (a column of nulls is missing in every row)",
    ]);
  });

  it("a dense column of 0s and nulls in every row is a data warning naming it; one with a value anywhere is not", async () => {
    const path = join(dir, "zero-dense.parquet");
    writeFileSync(path, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: "label", data: [1, 0, 1, 0], type: "INT32" }, { name: "x", data: [0, null, 0, 0], type: "DOUBLE" }, { name: "y", data: [0, 0, 0, 2.5], type: "DOUBLE" }, { name: "v", data: [[0, 0], null, [0], [0, 0]] }, { name: "c", data: ["a", "b", "c", "d"], type: "STRING" }] })));
    const list = compileFeatureList({ slots: [{ name: "c", slot: 1, type: "bytes" }], dense: [{ name: "x", size: 1, transform: "log1p" }, { name: "y", size: 1, transform: "none" }, { name: "v", size: 2, transform: "none" }] }, "test");
    const src = await ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "fail", cacheDir: join(dir, "zero-dense-cache") });
    const warning = "dense features 'x', 'v' of the feature list are 0 or missing in every one of the 4 records read: they train on nothing; check that each one's column is named as in the files and holds values other than 0 and null";
    expect(src.info.dataWarnings).toEqual([warning]);
    // Said again when the cache is reused (the counts are in its index).
    expect((await ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "fail", cacheDir: join(dir, "zero-dense-cache") })).info.dataWarnings).toEqual([warning]);
  });

  it("a string column declared as an int64 slot is refused before any row, saying which type hashes strings", async () => {
    const path = join(dir, "string-as-int.parquet");
    writeFileSync(path, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: "label", data: [1, 0], type: "INT32" }, { name: "user", data: ["u17", "u18"], type: "STRING" }] })));
    const intList = compileFeatureList({ slots: [{ name: "user", slot: 1, type: "int64" }], dense: [] }, "test");
    // Under skip too: every row would have been a bad record, and the file dropped row by row.
    const err = await ParquetSource.open({ paths: [path], featureList: intList, evalFraction: 0, onBadRecord: "skip" }).catch((e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
    expect((err as Error).message).toBe(`${path}: column 'user' (slot type int64) holds string values; a slot of type int64 holds integers; a slot whose values are strings is type bytes`);
  });

  it("damage inside a page names the row group it is in", async () => {
    const path = criteoParquet(50);
    const bytes = readFileSync(path);
    // The pages follow the 4-byte magic; the metadata at the end stays whole, so the file opens.
    bytes.fill(0xff, 8, 400);
    writeFileSync(path, bytes);
    const err = await ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "fail" }).catch((e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_FRAME")).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^cannot read Parquet file ${path} at row group 0 \\(rows 0-49\\): \\S`));
  });

  it("a null label is a bad row: fail names the row, skip counts it", async () => {
    const path = criteoParquet(50, (c) => (c.label[7] = null));
    await expect(ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "fail" })).rejects.toThrow(`${path}: row 7: label column 'label' is null`);
    const src = await ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "skip" });
    expect(src.info.trainRecords).toBe(49);
    expect(src.info.skippedSummary).toContain("1 x label column 'label' is null");
  });
});
