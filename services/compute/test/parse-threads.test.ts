import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { compileFeatureList } from "@pangea/features";
import { encodeInstance } from "@pangea/monolith";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { CriteoTsvSource } from "../src/sources/criteo-tsv.js";
import { MonolithFilesSource } from "../src/sources/monolith-files.js";
import { PbFraming, PB_FILE_DEFAULTS, encodePbRecords } from "../src/formats/pb-framing.js";
import { ComputeErrors } from "../src/errors.js";
import { openParser } from "../src/sources/parse-pool.js";
import { OrderedSteps } from "../src/sources/ordered-steps.js";
import { affordableParseThreads, parseSizes, passThreads } from "../src/sources/record-cache.js";

/**
 * The record cache written with parse worker threads is byte for byte the
 * one the pass writes on its own thread: same records, order and chunks,
 * the same bad-record counts and first error under --on-bad-record skip,
 * and the same one-line error under fail. A small budget (16 MiB) makes
 * pieces of ~85 KB and chunks of 256 KB, so these files of a few hundred KB
 * cross many piece and chunk boundaries. A truncated gzip file gives the
 * same records too: its stream stops at the same byte whatever the pace.
 */
const dir = mkdtempSync(join(tmpdir(), "pangea-parse-threads-"));
const MEMORY_MB = 16;
const THREADS = 2;
const synthetic = new SyntheticSource({ seed: 5, evalRecords: 0 });
const list = compileFeatureList(synthetic.featureListConfig("fid_v1"), "test");

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The single cache file a source wrote in `cacheDir`. */
function cacheBytes(cacheDir: string): Buffer {
  const files = readdirSync(cacheDir).filter((f) => f.endsWith(".records"));
  expect(files).toHaveLength(1);
  return readFileSync(join(cacheDir, files[0]!));
}

/** Opens the source with 1 and with THREADS threads; both caches' bytes and descriptions, or both errors. */
async function both<S extends { info: { skippedRecords?: number; skippedStretches?: number; skippedSummary?: string; trainRecords: number } }>(name: string, open: (threads: number, cacheDir: string) => Promise<S>) {
  const out = [];
  for (const threads of [1, THREADS]) {
    const cacheDir = join(dir, `${name}-${threads}`);
    try {
      const src = await open(threads, cacheDir);
      // Where the cache is differs (its directory); what it holds must not.
      out.push({ bytes: cacheBytes(cacheDir), info: { ...src.info, storage: "" }, error: null });
    } catch (err) {
      out.push({ bytes: null, info: null, error: err as Error });
    }
  }
  return out;
}

function tsv(lines: number, bad: Map<number, string>): string {
  return Array.from({ length: lines }, (_, i) => bad.get(i) ?? synthetic.tsvLine("train", i)).join("\n");
}

const openTsv = (path: string, onBadRecord: "fail" | "skip") => (parseThreads: number, cacheDir: string) =>
  CriteoTsvSource.open({ paths: [path], evalFraction: 0.1, onBadRecord, cacheDir, memoryMb: MEMORY_MB, parseThreads });

describe("Criteo TSV parsed on worker threads", () => {
  // Bad lines early, at piece-sized distances, and last (the final line has no line feed); an empty and a CRLF line.
  const bad = new Map([
    [3, "1\t2\tnot-a-count"],
    [900, "2\t" + synthetic.tsvLine("train", 900).slice(2)],
    [901, ""],
    [1777, synthetic.tsvLine("train", 1777) + "\r"],
    [3999, "0\ttoo\tfew"],
  ]);
  const plain = join(dir, "bad.tsv");
  writeFileSync(plain, tsv(4000, bad));
  const gz = join(dir, "bad.tsv.gz");
  writeFileSync(gz, gzipSync(readFileSync(plain)));
  // A gzip member cut short: the damage is reported after the lines before it.
  const cut = join(dir, "cut.tsv.gz");
  const whole = gzipSync(Buffer.from(tsv(4000, new Map())));
  writeFileSync(cut, whole.subarray(0, Math.floor(whole.length * 0.7)));

  it.each([
    ["plain", plain],
    ["gzip", gz],
    ["truncated gzip", cut],
  ])("%s, --on-bad-record skip: the same cache bytes, counts and first error as one thread", async (name, path) => {
    // The file is more than one piece: the pass does start workers.
    expect(passThreads([path], THREADS, MEMORY_MB)).toBe(THREADS);
    const [one, many] = await both(`tsv-${name}`, openTsv(path, "skip"));
    expect(one!.error).toBeNull();
    expect(many!.error).toBeNull();
    expect((one!.info!.skippedRecords ?? 0) + (one!.info!.skippedStretches ?? 0)).toBeGreaterThan(0);
    expect(many!.info).toEqual(one!.info);
    expect(many!.bytes!.equals(one!.bytes!)).toBe(true);
  });

  it("--on-bad-record fail: the same one line, naming the file, line and byte", async () => {
    const [one, many] = await both("tsv-fail", openTsv(plain, "fail"));
    expect(ComputeErrors.is(one!.error, "COMPUTE_ERR_BAD_RECORD")).toBe(true);
    expect(one!.error!.message).toMatch(new RegExp(`^${plain}:4 \\(byte \\d+\\): field I2 'not-a-count' is not an integer$`));
    expect(many!.error!.message).toBe(one!.error!.message);
  });
});

describe("Monolith Instance files decoded on worker threads", () => {
  const N = 2000;
  const records = Array.from({ length: N }, (_, i) => encodeInstance(synthetic.plainSample("train", i)));
  // Packed fids of 3 bytes (a protobuf message, but not an Instance), twice; the file then ends inside a frame.
  records[10] = Uint8Array.from([0x0a, 0x03, 1, 2, 3]);
  records[1500] = Uint8Array.from([0x0a, 0x03, 1, 2, 3]);
  const framed = encodePbRecords(records, PB_FILE_DEFAULTS);
  const path = join(dir, "bad.pb");
  writeFileSync(path, framed.subarray(0, framed.length - 100));
  const openPb = (onBadRecord: "fail" | "skip") => (parseThreads: number, cacheDir: string) =>
    MonolithFilesSource.open({ paths: [path], message: "instance", framing: new PbFraming(PB_FILE_DEFAULTS), compression: "auto", featureList: list, evalFraction: 0.1, onBadRecord, cacheDir, memoryMb: MEMORY_MB, parseThreads });

  it("--on-bad-record skip: the same cache bytes, counts and first error as one thread", async () => {
    expect(passThreads([path], THREADS, MEMORY_MB)).toBe(THREADS);
    const [one, many] = await both("pb-skip", openPb("skip"));
    expect(one!.error).toBeNull();
    expect([one!.info!.skippedRecords, one!.info!.skippedStretches]).toEqual([2, 1]);
    expect(many!.info).toEqual(one!.info);
    expect(many!.bytes!.equals(one!.bytes!)).toBe(true);
  });

  it("--on-bad-record fail: the same one line, naming the file and byte offset", async () => {
    const [one, many] = await both("pb-fail", openPb("fail"));
    expect(one!.error!.message).toMatch(new RegExp(`^${path}: record at byte \\d+: not a valid instance: `));
    expect(many!.error!.message).toBe(one!.error!.message);
  });
});

describe("the threads compute asks for", () => {
  it("are --parse-threads, but no more workers than a quarter of --max-memory-mb pays for, and none when fewer than 2 fit", () => {
    expect(affordableParseThreads(2, 1024)).toBe(2);
    expect(affordableParseThreads(64, 1024)).toBe(6);
    expect(affordableParseThreads(8, 320)).toBe(2);
    expect(affordableParseThreads(8, 319)).toBe(1);
    expect(affordableParseThreads(1, 4096)).toBe(1);
  });

  it("are 1 for inputs no bigger than one piece", () => {
    const small = join(dir, "small.tsv");
    writeFileSync(small, tsv(10, new Map()));
    expect(passThreads([small], 4, 1024)).toBe(1);
  });
});

describe("a parse worker that fails", () => {
  it("fails the pass with one clear error instead of hanging, and its workers end", async () => {
    // A feature list the worker cannot compile: the worker throws as it starts.
    const broken = { ...list.config, slots: [list.config.slots[0]!, list.config.slots[0]!] };
    const parser = openParser({ kind: "monolith", init: { message: "instance", list: broken } }, 2);
    const steps = new OrderedSteps(parser, parseSizes(MEMORY_MB, 2).queued);
    try {
      const bytes = encodeInstance(synthetic.plainSample("train", 0));
      const ends = Uint32Array.of(bytes.length);
      await steps.piece({ bytes, ends }, [bytes.buffer as ArrayBuffer, ends.buffer], "test.pb: the records at bytes 0..0", () => {});
      await expect(steps.drain()).rejects.toThrow(/^test\.pb: the records at bytes 0\.\.0: cannot be decoded: a parse worker failed: .*declared twice/);
    } finally {
      await parser.close();
    }
  });
});
