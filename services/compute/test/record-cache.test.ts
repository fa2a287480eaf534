import { gzipSync } from "node:zlib";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CriteoTsvSource } from "../src/sources/criteo-tsv.js";
import { MonolithFilesSource } from "../src/sources/monolith-files.js";
import { ByteStream } from "../src/formats/byte-stream.js";
import { PbFraming, PB_FILE_DEFAULTS, encodePbRecords } from "../src/formats/pb-framing.js";
import { RecordBlock, type DataSource } from "../src/sources/source.js";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { ComputeErrors } from "../src/errors.js";
import { compileFeatureList } from "@pangea/features";
import { encodeInstance } from "@pangea/monolith";

/**
 * File sources stream their input into a record cache and read batches back
 * from it: what they serve equals the input, a small budget holds the same
 * records, a restart reuses the cache, a changed or damaged cache is not
 * trusted, and damage found while streaming is reported with file and offset.
 */
const dir = mkdtempSync(join(tmpdir(), "pangea-cache-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const synthetic = new SyntheticSource({ seed: 3, evalRecords: 0 });
const N = 5000;
const lines = Array.from({ length: N }, (_, i) => synthetic.tsvLine("train", i));

function tsv(name: string, n = N): string {
  const path = join(dir, name);
  writeFileSync(path, lines.slice(0, n).join("\n") + "\n");
  return path;
}

function read(src: DataSource, start: number, count: number): RecordBlock {
  const b = new RecordBlock(count, src.info.numDense, src.info.slotIds.length);
  src.read("train", start, count, b);
  return b;
}

/** Byte-for-byte equal columns (compared as bytes: a deep equality of 200k numbers is slow). */
function expectSame(a: RecordBlock, b: RecordBlock): void {
  expect(a.count).toBe(b.count);
  expect(a.nnz).toBe(b.nnz);
  const bytes = (x: Float32Array | Uint32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  const same = (what: string, x: Float32Array | Uint32Array, y: Float32Array | Uint32Array) => expect(bytes(x).equals(bytes(y)), what).toBe(true);
  same("labels", a.labels.subarray(0, a.count), b.labels.subarray(0, b.count));
  same("weights", a.weights.subarray(0, a.count), b.weights.subarray(0, b.count));
  same("dense", a.dense.subarray(0, a.count * a.numDense), b.dense.subarray(0, b.count * b.numDense));
  same("ids", a.idWords.subarray(0, a.nnz * 2), b.idWords.subarray(0, b.nnz * 2));
  same("cell offsets", a.cellOffsets.subarray(0, a.count * a.numSlots + 1), b.cellOffsets.subarray(0, b.count * b.numSlots + 1));
}

describe("the record cache", () => {
  it("a 16 MiB budget (chunks of 256 KiB, 2 MiB read set) serves the same records as the default, across chunk boundaries; a restart reuses the cache", async () => {
    const path = tsv("same.tsv");
    const cacheDir = join(dir, "cache-same");
    const big = await CriteoTsvSource.open({ paths: [path], evalFraction: 0.1, cacheDir: join(dir, "cache-big") });
    const small = await CriteoTsvSource.open({ paths: [path], evalFraction: 0.1, cacheDir, memoryMb: 16 });
    expect(small.info.trainRecords).toBe(4500);
    expect(small.info.storage).toMatch(/^record cache written: /);
    // Ranges that straddle chunks (256 KiB hold about 960 Criteo records), read out of order.
    for (const [start, count] of [[4000, 500], [0, 1], [900, 1200], [2, 4498]] as const) expectSame(read(small, start, count), read(big, start, count));
    const evalBig = new RecordBlock(500, 13, 26);
    const evalSmall = new RecordBlock(500, 13, 26);
    big.read("eval", 0, 500, evalBig);
    small.read("eval", 0, 500, evalSmall);
    expectSame(evalSmall, evalBig);
    const again = await CriteoTsvSource.open({ paths: [path], evalFraction: 0.1, cacheDir, memoryMb: 16 });
    expect(again.info.storage).toMatch(/^record cache reused: /);
    expectSame(read(again, 100, 3000), read(big, 100, 3000));
  });

  it("a file changed between runs gets a new cache (the old one is deleted); a file gone is named", async () => {
    const path = tsv("shrinks.tsv");
    const cacheDir = join(dir, "cache-shrinks");
    expect((await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir })).info.trainRecords).toBe(N);
    writeFileSync(path, lines.slice(0, 1000).join("\n") + "\n");
    const after = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir });
    expect(after.info.trainRecords).toBe(1000);
    expect(after.info.storage).toMatch(/^record cache written: /);
    expect(readdirSync(cacheDir)).toHaveLength(1);
    rmSync(path);
    await expect(CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir })).rejects.toThrow(`cannot read data file ${path}: ENOENT`);
  });

  it("a cache cut short (a pass killed as it wrote, a disk that filled) is not trusted: it is written again", async () => {
    const path = tsv("cut.tsv");
    const cacheDir = join(dir, "cache-cut");
    await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir });
    const [name] = readdirSync(cacheDir);
    truncateSync(join(cacheDir, name!), 1000);
    const again = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir });
    expect(again.info.storage).toMatch(/^record cache written: /);
    expectSame(read(again, 0, N), read(await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir: join(dir, "cache-cut-ref") }), 0, N));
  });
});

describe("a pass killed midway", () => {
  it("leaves a temporary file that is never read and is deleted once its process is gone", async () => {
    const path = tsv("killed.tsv");
    const cacheDir = join(dir, "cache-killed");
    await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir });
    const [name] = readdirSync(cacheDir);
    // What a pass killed by kill -9 leaves: its temporary file, named for its (now gone) process.
    const orphan = `${name!.split("-")[0]}-0123456789abcdef.records.tmp-2147483646`;
    const live = `${name!.split("-")[0]}-0123456789abcdef.records.tmp-${process.pid}`;
    writeFileSync(join(cacheDir, orphan), "half a cache");
    writeFileSync(join(cacheDir, live), "a pass still running");
    const again = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir });
    expect(again.info.storage).toMatch(/^record cache reused: /);
    expect(readdirSync(cacheDir).sort()).toEqual([name, live].sort());
    // A live pid's temporary file untouched for long is a gone pass's too (in containers every compute is pid 1).
    const old = `${name!.split("-")[0]}-0123456789abcdef.records.tmp-${process.pid}-00ff00ff`;
    writeFileSync(join(cacheDir, old), "a pass of an earlier container");
    utimesSync(join(cacheDir, old), new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir });
    expect(readdirSync(cacheDir).sort()).toEqual([name, live].sort());
  });

  it("a pass that cannot be put in place leaves no temporary file", async () => {
    const path = tsv("blocked.tsv");
    const cacheDir = join(dir, "cache-blocked");
    const first = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir });
    const [name] = readdirSync(cacheDir);
    expect(first.info.storage).toMatch(/^record cache written: /);
    // The cache's name taken by a directory with something in it: the rename fails.
    rmSync(join(cacheDir, name!));
    mkdirSync(join(cacheDir, name!, "x"), { recursive: true });
    const err = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/cannot write the record cache/);
    expect(readdirSync(cacheDir)).toEqual([name]);
  });
});

describe("damage found while streaming", () => {
  it("a line too long to be one is skipped to its end, once: the lines after it read as they are", async () => {
    const path = join(dir, "long-line.tsv");
    writeFileSync(path, [...lines.slice(0, 10), "1\t" + "7".repeat(3 << 20), ...lines.slice(10, 20)].join("\n") + "\n");
    const err = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir: join(dir, "c-long-1") }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(new RegExp(`^${path}: byte \\d+ \\(line 11\\): a line longer than \\d+ bytes \\(skipped to its end\\)`));
    const src = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, onBadRecord: "skip", cacheDir: join(dir, "c-long-2") });
    expect([src.info.trainRecords, src.info.skippedRecords, src.info.skippedStretches]).toEqual([20, 0, 1]);
  });


  it("a truncated gzip member: fail names file and byte offset; skip keeps the records before it and counts the damage", async () => {
    const path = join(dir, "cut.tsv.gz");
    const gz = gzipSync(Buffer.from(lines.join("\n") + "\n"));
    writeFileSync(path, gz.subarray(0, gz.length - 200));
    const err = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, cacheDir: join(dir, "c1") }).catch((e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_FRAME"), String(err)).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^${path}: byte ${gz.length - 200} \\(decompressed byte \\d+, after line \\d+\\): cannot gzip-decompress: unexpected end of file$`));
    const src = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, onBadRecord: "skip", cacheDir: join(dir, "c2") });
    expect(src.info.trainRecords).toBeGreaterThan(N - 100);
    expect(src.info.trainRecords).toBeLessThan(N);
    expect([src.info.skippedRecords, src.info.skippedStretches]).toEqual([0, 1]);
    expect(src.info.skippedSummary).toContain("cannot gzip-decompress: unexpected end of file");
    expectSame(read(src, 0, 1000), read(await CriteoTsvSource.open({ paths: [tsv("whole.tsv")], evalFraction: 0, cacheDir: join(dir, "c3") }), 0, 1000));
  });

  it("Monolith records in a truncated gzip file: the record cut and the damage are one stretch, with no hint to check the framing options", async () => {
    const list = compileFeatureList(synthetic.featureListConfig("fid_v1"), "test");
    const records = Array.from({ length: 2000 }, (_, i) => encodeInstance(synthetic.plainSample("train", i)));
    const gz = gzipSync(encodePbRecords(records, PB_FILE_DEFAULTS));
    const path = join(dir, "cut.pb.gz");
    writeFileSync(path, gz.subarray(0, gz.length - 100));
    const open = (onBadRecord: "fail" | "skip") => MonolithFilesSource.open({ paths: [path], message: "instance", framing: new PbFraming(PB_FILE_DEFAULTS), compression: "auto", featureList: list, evalFraction: 0, onBadRecord, cacheDir: join(dir, `m-${onBadRecord}`) });
    await expect(open("fail")).rejects.toThrow(
      new RegExp(`^${path}: decompressed byte \\d+: record size \\d+ runs past the end of the readable data \\(\\d+ bytes left\\) \\(\\d+ decompressed bytes to the end unreadable\\), then at byte \\d+ \\(decompressed byte \\d+\\): cannot gzip-decompress: unexpected end of file \\(the file ends there\\)$`),
    );
    const src = await open("skip");
    expect(src.info.trainRecords).toBeGreaterThan(1900);
    expect(src.info.skippedSummary).toMatch(/^1 damaged stretch skipped \(\d+ bytes; the records in it are not counted\), \d+ samples kept: 1 x record size \d+ runs past the end of the readable data .*: cannot gzip-decompress: unexpected end of file \(the file ends there\); first: /);
  });

  it("a file that shrinks while it is read ends the stream with damage naming the sizes", async () => {
    const path = join(dir, "shrinking.bin");
    writeFileSync(path, Buffer.alloc(4 << 20, 7));
    const s = new ByteStream(path, "none");
    expect(await s.next()).not.toBeNull();
    truncateSync(path, 100_000);
    let total = 0;
    for (let p = await s.next(); p; p = await s.next()) total += p.length;
    s.close();
    expect(total).toBeLessThan(4 << 20);
    expect(s.damage?.message).toBe(`reading ended at byte ${s.damage!.fileOffset}, but the file was ${4 << 20} bytes when it began (it shrank while being read)`);
    expect(readFileSync(path).length).toBe(100_000);
  });
});
