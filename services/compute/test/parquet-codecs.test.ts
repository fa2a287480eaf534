import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { parquetWriteBuffer } from "hyparquet-writer";
import { compileFeatureList } from "@pangea/features";
import { ParquetSource } from "../src/sources/parquet-source.js";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { parquetDecompressors, lz4Block } from "../src/formats/parquet-codecs.js";
import { ComputeErrors } from "../src/errors.js";
import { expectSameRecords } from "./same-records.js";

// DuckDB (its own C++ Parquet writer, from npm) writes the files: data pages v1 and dictionaries, as pyarrow and Spark
// write them, where hyparquet-writer writes v2 pages; python3-lz4 (the LZ4 project's library) makes the LZ4 blocks.
const dir = mkdtempSync(join(tmpdir(), "pangea-parquet-codecs-"));
const synthetic = new SyntheticSource({ seed: 29, evalRecords: 0 });
const list = compileFeatureList(synthetic.featureListConfig("bytes"), "test");
const N = 5000;
let duck: DuckDBConnection;
let tsv: string;
let codecs: Awaited<ReturnType<typeof parquetDecompressors>>;

beforeAll(async () => {
  codecs = await parquetDecompressors();
  duck = await (await DuckDBInstance.create(":memory:")).connect();
  tsv = join(dir, "data.tsv");
  writeFileSync(tsv, Array.from({ length: N }, (_, i) => synthetic.tsvLine("train", i)).join("\n") + "\n");
});
afterAll(() => duck?.closeSync());

/** The generator's records as a Parquet file DuckDB writes with `codec`: label INTEGER, I1-I13 DOUBLE, C1-C26 VARCHAR. */
async function duckParquet(codec: string): Promise<string> {
  // Read as text with no null string: an empty categorical field is the empty string, hashed as the TSV reader hashes it;
  // an empty count is null, as in the TSV.
  const text = ["'label': 'VARCHAR'", ...Array.from({ length: 13 }, (_, j) => `'I${j + 1}': 'VARCHAR'`), ...Array.from({ length: 26 }, (_, k) => `'C${k + 1}': 'VARCHAR'`)];
  const select = ["CAST(label AS INTEGER) AS label", ...Array.from({ length: 13 }, (_, j) => `CAST(NULLIF(I${j + 1}, '') AS DOUBLE) AS I${j + 1}`), ...Array.from({ length: 26 }, (_, k) => `C${k + 1}`)];
  const path = join(dir, `criteo-${codec}.parquet`);
  // Groups of 2,048 rows (three of them, the last short) and DuckDB's own page sizes.
  await duck.run(`COPY (SELECT ${select.join(", ")} FROM read_csv('${tsv}', delim='\t', header=false, nullstr='\x01never', columns={${text.join(", ")}})) TO '${path}' (FORMAT parquet, COMPRESSION ${codec}, ROW_GROUP_SIZE 2048)`);
  return path;
}

function python(script: string, input: Buffer): Buffer {
  const r = spawnSync("/usr/bin/python3", ["-c", script], { input, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr.toString()}`);
  return r.stdout;
}

describe("Parquet page codecs", () => {
  for (const codec of ["uncompressed", "snappy", "gzip", "zstd", "brotli", "lz4_raw"]) {
    it(`a file DuckDB writes with ${codec} reads to the generator's records`, async () => {
      const path = await duckParquet(codec);
      const src = await ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord: "fail" });
      expect(src.info.trainRecords).toBe(N);
      expect(src.info.dataWarnings).toBeUndefined();
      expectSameRecords(src, synthetic, N);
    });
  }

  it("LZ4_RAW and LZ4 (Hadoop's framing of one or more blocks, or a bare block) give python3-lz4's input back", () => {
    // Runs of repeats (matches, overlapping ones among them), then bytes that do not repeat (long literal runs).
    const pieces = [Buffer.alloc(0), Buffer.from("a"), Buffer.from("abcabcabcabcabcabcabcabcabcabc".repeat(40)), Buffer.concat([Buffer.alloc(70_000, 7), Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 251))])];
    // Each compressed by the library, sent back as [length][block]...
    const script = "import sys, struct, lz4.block as b\nd = sys.stdin.buffer.read(); o = bytearray(); i = 0\nwhile i < len(d):\n  n = struct.unpack('<I', d[i:i+4])[0]; c = b.compress(d[i+4:i+4+n], store_size=False); o += struct.pack('<I', len(c)) + c; i += 4 + n\nsys.stdout.buffer.write(o)";
    const framed = Buffer.concat(pieces.flatMap((p) => [u32le(p.length), p]));
    const out = python(script, framed);
    const blocks: Buffer[] = [];
    for (let at = 0; at < out.length; ) {
      const n = out.readUInt32LE(at);
      blocks.push(out.subarray(at + 4, at + 4 + n));
      at += 4 + n;
    }
    expect(blocks).toHaveLength(pieces.length);
    pieces.forEach((p, k) => {
      expect(Buffer.from(codecs.LZ4_RAW!(blocks[k]!, p.length))).toEqual(p);
      expect(Buffer.from(codecs.LZ4!(blocks[k]!, p.length))).toEqual(p);
    });
    // Hadoop: each block led by its decompressed and compressed sizes, big-endian; a page of several blocks.
    const hadoop = Buffer.concat(pieces.slice(2).flatMap((p, k) => [u32be(p.length), u32be(blocks[k + 2]!.length), blocks[k + 2]!]));
    const whole = Buffer.concat(pieces.slice(2));
    expect(Buffer.from(codecs.LZ4!(hadoop, whole.length))).toEqual(whole);
  });

  it("a damaged or mis-sized page says what is wrong with it", () => {
    const block = python("import sys, lz4.block as b; sys.stdout.buffer.write(b.compress(sys.stdin.buffer.read(), store_size=False))", Buffer.from("xyzxyzxyzxyzxyzxyzxyz0123456789".repeat(10)));
    expect(() => lz4Block(block.subarray(0, block.length - 3), 310)).toThrow(/^an LZ4 block is damaged: /);
    expect(() => lz4Block(block, 300)).toThrow("an LZ4 block is damaged: it holds more than the page's 300 bytes");
    expect(() => lz4Block(block, 400)).toThrow("an LZ4 block decompressed to 310 bytes; its page header says 400");
    // A match reaching before the output's start: token of 0 literals, distance 5.
    expect(() => lz4Block(Buffer.from([0x00, 5, 0, 0x00]), 4)).toThrow(/a match reaches 5 bytes back, before the output's start/);
    const gz = Buffer.from(codecs.GZIP!(gzipOf("hello parquet"), 13)).toString();
    expect(gz).toBe("hello parquet");
    expect(() => codecs.GZIP!(gzipOf("hello parquet"), 5)).toThrow("a GZIP page decompresses to more than the 5 bytes its header says");
    expect(() => codecs.GZIP!(gzipOf("hello parquet"), 20)).toThrow("a GZIP page decompressed to 13 bytes; its header says 20");
    expect(() => codecs.ZSTD!(Buffer.from("not zstd at all"), 20)).toThrow(/^a ZSTD page does not decompress: /);
  });

  it("a ZSTD page is stopped at its declared size (100 MB of zeros in a few KB), and checked against its frame's checksum", () => {
    const zeros = spawnSync("sh", ["-c", "head -c 100000000 /dev/zero | zstd -q -19 -c"], { maxBuffer: 1 << 24 }).stdout;
    expect(zeros.length).toBeLessThan(20_000);
    const started = process.hrtime.bigint();
    expect(() => codecs.ZSTD!(zeros, 100)).toThrow("a ZSTD page decompresses to more than the 100 bytes its header says");
    // Stopped at the first block past the size, not after making 100 MB.
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(1_000);
    const text = Buffer.from("a page of text, compressed by Debian's zstd with its content checksum ".repeat(20));
    const frame = spawnSync("zstd", ["-q", "-c", "--check"], { input: text }).stdout;
    expect(Buffer.from(codecs.ZSTD!(frame, text.length))).toEqual(text);
    const wrongSum = Buffer.from(frame);
    wrongSum[wrongSum.length - 1] ^= 0xff;
    expect(() => codecs.ZSTD!(wrongSum, text.length)).toThrow(/^a ZSTD page does not decompress: its frame at bytes 0-\d+ decodes to data whose checksum \(XXH64\) is not the frame's: its blocks are damaged$/);
    // An LZ4 page header saying more than its bytes can hold is refused before anything is made of that size.
    expect(() => codecs.LZ4_RAW!(new Uint8Array(10), 1 << 30)).toThrow("an LZ4 block of 10 bytes cannot hold the 1073741824 bytes its page header says");
  });

  it("a damaged zstd page in a file names the file and row group", async () => {
    const path = await duckParquet("zstd");
    const bytes = readFileSync(path);
    // Inside the first group's pages, past the 4-byte magic: the frames there no longer decode.
    for (let k = 2000; k < 2600; k++) bytes[k] = bytes[k]! ^ 0x5a;
    const bad = join(dir, "damaged-zstd.parquet");
    writeFileSync(bad, bytes);
    const err = await ParquetSource.open({ paths: [bad], featureList: list, evalFraction: 0, onBadRecord: "fail" }).catch((e: unknown) => e);
    expect(ComputeErrors.is(err) && err.code).toBe("COMPUTE_ERR_BAD_FRAME");
    expect((err as Error).message).toMatch(new RegExp(`^cannot read Parquet file ${bad} at row group 0 \\(rows 0-2047\\): `));
    // Under skip the damaged group is lost, as a damaged stretch of a TSV or Monolith file is, and the others are read.
    const src = await ParquetSource.open({ paths: [bad], featureList: list, evalFraction: 0, onBadRecord: "skip" });
    expect(src.info.trainRecords).toBe(N - 2048);
    expect(src.info.skippedStretches).toBe(1);
    expect(src.info.skippedSummary).toMatch(new RegExp(`^1 damaged stretch skipped \\(\\d+ bytes; 2048 records in it\\), \\d+ samples kept: .*first: ${bad}: row group 0 \\(rows 0-2047\\): .*bytes skipped to the next readable record at row group 1 \\(row 2048\\)\\)$`));
  });

  it("a codec compute lacks (LZO) is refused before any row is read, naming the file, column and the codecs it reads", async () => {
    const path = join(dir, "lzo.parquet");
    // hyparquet-writer stores the page as given under the codec named: enough for a footer that says LZO.
    writeFileSync(path, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: "label", data: [1, 0], type: "INT32" }, { name: "C1", data: ["a", "b"], type: "STRING" }], codec: "LZO", compressors: { LZO: (b: Uint8Array) => b } })));
    const small = compileFeatureList({ slots: [{ name: "C1", slot: 1, type: "bytes" }], dense: [] }, "test");
    const err = await ParquetSource.open({ paths: [path], featureList: small, evalFraction: 0, onBadRecord: "fail" }).catch((e: unknown) => e);
    expect(ComputeErrors.is(err) && err.code).toBe("COMPUTE_ERR_SOURCE");
    expect((err as Error).message).toBe(`cannot read Parquet file ${path}: its column 'label' is compressed with LZO, which compute cannot decompress (it reads UNCOMPRESSED, SNAPPY, GZIP, BROTLI, ZSTD, LZ4_RAW, LZ4); write the file with one of those`);
  });
});

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function gzipOf(text: string): Uint8Array {
  return new Uint8Array(spawnSync("gzip", ["-c"], { input: Buffer.from(text) }).stdout);
}
