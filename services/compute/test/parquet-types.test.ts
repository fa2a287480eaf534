import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { compileFeatureList, type FeatureListConfig } from "@pangea/features";
import { ParquetSource } from "../src/sources/parquet-source.js";
import { columnTypeProblem } from "../src/sources/parquet-columns.js";
import { RecordBlock } from "../src/sources/source.js";
import { ComputeErrors } from "../src/errors.js";

// Files as DuckDB (an independent writer, see parquet-codecs.test.ts) writes a query's columns: the types users'
// pipelines produce (structs, maps, dates, lists of lists, text) checked against what each feature reads.
const dir = mkdtempSync(join(tmpdir(), "pangea-parquet-types-"));
let duck: DuckDBConnection;
beforeAll(async () => {
  duck = await (await DuckDBInstance.create(":memory:")).connect();
});
afterAll(() => duck?.closeSync());

let files = 0;
async function write(select: string, rows = 8): Promise<string> {
  const path = join(dir, `t${files++}.parquet`);
  await duck.run(`COPY (SELECT ${select} FROM range(${rows}) t(i)) TO '${path}' (FORMAT parquet)`);
  return path;
}

const list = (slots: FeatureListConfig["slots"], dense: FeatureListConfig["dense"] = []) => compileFeatureList({ slots, dense }, "test");
const open = (path: string, featureList = list([{ name: "c", slot: 1, type: "bytes" }]), onBadRecord: "fail" | "skip" = "fail") =>
  ParquetSource.open({ paths: [path], featureList, evalFraction: 0, onBadRecord });
async function refusal(path: string, featureList?: ReturnType<typeof list>, onBadRecord: "fail" | "skip" = "skip"): Promise<string> {
  const err = await open(path, featureList, onBadRecord).catch((e: unknown) => e);
  expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG"), String(err)).toBe(true);
  return (err as Error).message;
}

describe("Parquet column types, checked from the schema before any row is read", () => {
  it("a column that holds no feature's values (struct, map, date, timestamp, list of lists) is refused naming it and its type, under skip too", async () => {
    const cases: [string, string][] = [
      ["{'a': i, 'b': 'x'} AS c", "column 'c' (slot type bytes) holds a struct of 2 fields; a slot of type bytes holds strings or bytes"],
      ["MAP {'k': i} AS c", "column 'c' (slot type bytes) holds a MAP; a slot of type bytes holds strings or bytes"],
      ["DATE '2024-01-01' + i::INTEGER AS c", "column 'c' (slot type bytes) holds DATE values (dates and times are read as objects; write them as integers to use them); a slot of type bytes holds strings or bytes"],
      ["TIMESTAMP '2024-01-01' AS c", "column 'c' (slot type bytes) holds TIMESTAMP_MICROS values (dates and times are read as objects; write them as integers to use them); a slot of type bytes holds strings or bytes"],
      ["[['a'], ['b']] AS c", "column 'c' (slot type bytes) holds lists of lists; a slot of type bytes holds strings or bytes"],
      ["i AS c", "column 'c' (slot type bytes) holds integer values; a slot of type bytes holds strings or bytes; a slot of integers is type int64"],
    ];
    for (const [column, message] of cases) {
      const path = await write(`i % 2 AS label, ${column}`);
      expect(await refusal(path)).toBe(`${path}: ${message}`);
    }
  });

  it("text in a dense or label column is refused (Number() read '' as 0 and '0x10' as 16); a list label too", async () => {
    const dense = await write("i % 2 AS label, 'a' AS c, CASE WHEN i % 2 = 0 THEN '' ELSE '0x10' END AS x");
    expect(await refusal(dense, list([{ name: "c", slot: 1, type: "bytes" }], [{ name: "x", size: 1, transform: "none" }]))).toBe(
      `${dense}: column 'x' (dense) holds string values; a dense feature's column holds numbers (INTEGER, FLOAT, DOUBLE, DECIMAL, BOOLEAN) or lists of them`,
    );
    const label = await write("[i % 2] AS label, 'a' AS c");
    expect(await refusal(label)).toBe(`${label}: column 'label' (label 'ctr') holds lists of integer values; a label column holds numbers or booleans, one per row`);
  });

  it("what each feature takes: integers of every width, DECIMAL and whole DOUBLEs for ids, DECIMAL and FLOAT for dense, BOOLEAN labels, nulls in a list of ids", async () => {
    const path = await write(
      "i % 2 = 1 AS label, i::TINYINT AS t, i::SMALLINT AS s, i::UBIGINT AS u, i::DECIMAL(10, 0) AS d, i::DOUBLE AS f, " +
        "CASE WHEN i % 3 = 0 THEN [i, NULL, i + 1] ELSE [i] END AS ids, (i / 4)::DECIMAL(6, 2) AS x, (i / 2)::FLOAT AS y, 'k' || i AS c",
      7,
    );
    const ints = ["t", "s", "u", "d", "f", "ids"].map((name, k) => ({ name, slot: k + 1, type: "int64" as const }));
    const src = await open(path, list([...ints, { name: "c", slot: 7, type: "bytes" }], [{ name: "x", size: 1, transform: "none" }, { name: "y", size: 1, transform: "none" }]));
    expect(src.info.trainRecords).toBe(7);
    const b = new RecordBlock(7, 2, 7);
    src.read("train", 0, 7, b);
    expect([...b.labels]).toEqual([0, 1, 0, 1, 0, 1, 0]);
    expect([...b.dense]).toEqual([0, 0, 0.25, 0.5, 0.5, 1, 0.75, 1.5, 1, 2, 1.25, 2.5, 1.5, 3]);
    // A null in a list is a missing id, as a null cell is: rows 0, 3, 6 have two ids in slot ids, the others one.
    const cell = (row: number, slot: number) => b.cellOffsets[row * 7 + slot + 1]! - b.cellOffsets[row * 7 + slot]!;
    expect(Array.from({ length: 7 }, (_, r) => cell(r, 5))).toEqual([2, 1, 1, 2, 1, 1, 2]);
  });

  it("the same integer is the same id whatever its column's type", async () => {
    const ids: string[] = [];
    for (const type of ["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UBIGINT", "DECIMAL(12, 0)", "DOUBLE"]) {
      const path = await write(`i % 2 AS label, (i * 3)::${type} AS v`, 5);
      const src = await open(path, list([{ name: "v", slot: 4, type: "int64" }]));
      const b = new RecordBlock(5, 0, 1);
      src.read("train", 0, 5, b);
      ids.push(Array.from(b.idWords.subarray(0, 10)).join(","));
    }
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]!.split(",").every((w, k, all) => k % 2 === 1 || all.indexOf(w) === k)).toBe(true); // five different ids
  });

  it("a DOUBLE id past 2^53 is a bad row (neighbouring ids there are one value); a fraction too", async () => {
    const path = await write("i % 2 AS label, CASE WHEN i = 3 THEN 2e17 ELSE i::DOUBLE END AS f, 'a' AS c");
    const ids = list([{ name: "f", slot: 1, type: "int64" }, { name: "c", slot: 2, type: "bytes" }]);
    await expect(open(path, ids)).rejects.toThrow(`${path}: row 3: column 'f' (type int64) holds 200000000000000000, a number beyond 2^53 in a column that is not INT64 (DOUBLE, DECIMAL), where ids are not exact (neighbouring ids become one); write the column as INT64`);
    const half = await write("i % 2 AS label, i / 2 AS f, 'a' AS c");
    await expect(open(half, ids)).rejects.toThrow(`${half}: row 1: column 'f' (type int64) holds 0.5, expected an integer`);
  });

  it("a FLOAT id column is refused (exact only to 2^24); a TIME column is integers; a column of only nulls gives nothing", async () => {
    const float = await write("i % 2 AS label, i::FLOAT AS f, 'a' AS c");
    expect(await refusal(float, list([{ name: "f", slot: 1, type: "int64" }, { name: "c", slot: 2, type: "bytes" }]))).toBe(
      `${float}: column 'f' (slot type int64) holds FLOAT values; a slot of type int64 holds integers (a FLOAT holds integers exactly only up to 2^24: write ids as INT64)`,
    );
    const time = await write("i % 2 AS label, TIME '10:00:00' + INTERVAL (i) SECOND AS t, NULL::INTEGER AS n, 'a' AS c", 4);
    const src = await open(time, list([{ name: "t", slot: 1, type: "int64" }, { name: "n", slot: 2, type: "int64" }, { name: "c", slot: 3, type: "bytes" }]));
    const b = new RecordBlock(4, 0, 3);
    src.read("train", 0, 4, b);
    // Each row: one id of t, none of n, one of c.
    expect(Array.from(b.cellOffsets.subarray(0, 13))).toEqual([0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 8]);
  });

  it("pyarrow's type NULL (a column of nothing but nulls) is taken for a slot or a dense feature, not for a label", () => {
    const schema = (type: object) => ({ schema: [{ name: "schema", num_children: 3 }, { name: "label", type: "INT32", ...type }, { name: "n", type: "INT32", logical_type: { type: "NULL" } }, { name: "x", type: "INT32", logical_type: { type: "NULL" } }], row_groups: [] }) as never;
    const l = list([{ name: "n", slot: 1, type: "int64" }], [{ name: "x", size: 1, transform: "none" }]);
    expect(columnTypeProblem(schema({}), l)).toBeNull();
    expect(columnTypeProblem(schema({ logical_type: { type: "NULL" } }), l)).toBe("column 'label' (label 'ctr') holds null values; a label column holds numbers or booleans, one per row");
  });

  it("a dense value past float32's range (1e39) is a bad row naming the feature, not Infinity in a batch", async () => {
    const path = await write("i % 2 AS label, CASE WHEN i = 5 THEN 1e39 ELSE i::DOUBLE END AS x, 'a' AS c");
    const dense = list([{ name: "c", slot: 1, type: "bytes" }], [{ name: "x", size: 1, transform: "none" }]);
    await expect(open(path, dense)).rejects.toThrow(`${path}: row 5: dense feature 'x' holds a value beyond float32's range (about ±3.4e38), which batches carry`);
    expect((await open(path, dense, "skip")).info.skippedRecords).toBe(1);
  });

  it("a damaged length inside a page (a string said to be 1,000,000 bytes) is damage: skip loses that row group, fail names it", async () => {
    const path = join(dir, "damaged-length.parquet");
    await duck.run(`COPY (SELECT i % 2 AS label, 'needle' || lpad(i::VARCHAR, 6, '0') AS c FROM range(6000) t(i)) TO '${path}' (FORMAT parquet, COMPRESSION uncompressed, ROW_GROUP_SIZE 2048)`);
    const bytes = readFileSync(path);
    // The plain length before one string of the second group's dictionary.
    const at = bytes.indexOf("needle002500") - 4;
    expect(bytes.readUInt32LE(at)).toBe(12);
    bytes.writeUInt32LE(1_000_000, at);
    writeFileSync(path, bytes);
    const failed = await open(path).catch((e: unknown) => e);
    expect(ComputeErrors.is(failed, "COMPUTE_ERR_BAD_FRAME")).toBe(true);
    expect((failed as Error).message).toMatch(new RegExp(`^cannot read Parquet file ${path} at row group 1 \\(rows 2048-4095\\): `));
    const src = await open(path, undefined, "skip");
    expect(src.info.trainRecords).toBe(6000 - 2048);
    expect(src.info.skippedStretches).toBe(1);
  });

  it("a column named in another case: the refusal names the file's", async () => {
    const path = await write("i % 2 AS Label, 'a' AS c");
    expect(await refusal(path, undefined, "fail")).toBe(`${path}: the feature list names columns the Parquet file lacks: label (it has 'Label': column names are compared with their case)`);
  });
});
