import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { gunzipSync, inflateSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { RecordBlock, type DataSource } from "../src/sources/source.js";
import { loadConfig } from "../src/config.js";
import { openSource } from "../src/sources/open-source.js";
import { largestGroup } from "../src/sources/parquet-source.js";
import { parquetMetadata } from "hyparquet";

/** `gen-data --tasks 2` writes the built-in data's two labels in a file a user can train several tasks on. */
const dir = mkdtempSync(join(tmpdir(), "pangea-gen-tasks-"));
const GEN = join(import.meta.dirname, "../dist/gen-data.js");
const CLI = join(import.meta.dirname, "../../../packages/cli/dist/main.js");
const N = 500;

function gen(args: string[]) {
  return spawnSync(process.execPath, [GEN, ...args], { encoding: "utf8" });
}

describe("gen-data --tasks 2", () => {
  it.each(["parquet", "example", "examplebatch"] as const)("%s: read back with its feature list, every record's click and conversion are the generator's", async (format) => {
    const out = join(dir, `two.${format}`);
    const list = join(dir, `two-${format}.json`);
    const r = gen(["--out", out, "--records", String(N), "--format", format, "--tasks", "2", "--feature-list-out", list]);
    expect(r.status, r.stderr).toBe(0);
    const src = (await openSource(loadConfig(["--data", out, "--format", format, "--feature-list", list, "--eval-fraction", "0"], {})!, createLogger("t", "silent"))) as DataSource;
    expect(src.info.tasks!.map((t) => t.name)).toEqual(["click", "conversion"]);
    expect(src.info.groupSlot).toBe(1);
    const got = new RecordBlock(N, 13, 26, 2);
    src.read("train", 0, N, got);
    const want = new RecordBlock(N, 13, 26, 2);
    new SyntheticSource({ seed: 42, evalRecords: 0, tasks: 2 }).read("train", 0, N, want);
    expect(got.labels).toEqual(want.labels);
    // Both labels occur, and a conversion only on a click.
    for (let i = 0; i < N; i++) if (got.labels[2 * i + 1] === 1) expect(got.labels[2 * i]).toBe(1);
    expect(got.labels.filter((_, k) => k % 2 === 1).some((v) => v === 1)).toBe(true);
  });

  it("criteo is refused (a TSV line has one label), exit 2", () => {
    const r = gen(["--out", join(dir, "x.tsv"), "--records", "10", "--tasks", "2"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--tasks 2 needs a format with several labels (instance, example, examplebatch or parquet): a Criteo line has one");
  });
});

describe("gen-data writes as it generates", () => {
  // 10,000 records: two whole chunks of 4,096 and a part one; ExampleBatches of 300 end mid-chunk and with a short one.
  const M = 10_000;
  const want = new RecordBlock(M, 13, 26, 1);
  new SyntheticSource({ seed: 42, evalRecords: 0 }).read("train", 0, M, want);
  it.each([
    ["criteo", "d.tsv", []],
    ["criteo", "d.tsv.gz", []],
    ["instance", "d.pb.snappy", []],
    ["example", "d.tfrecord.zz", ["--framing", "tfrecord"]],
    ["examplebatch", "d.batches.gz", ["--batch-size", "300"]],
    ["parquet", "d.parquet", []],
  ] as const)("%s to %s: every record reads back as the generator's, across its chunks", async (format, name, extra) => {
    const sub = mkdtempSync(join(dir, "chunks-"));
    const out = join(sub, name);
    const list = join(sub, "list.json");
    const r = gen(["--out", out, "--records", String(M), "--format", format, "--feature-list-out", list, ...extra]);
    expect(r.status, r.stderr).toBe(0);
    const framing = extra.includes("tfrecord") ? ["--framing", "tfrecord"] : [];
    const src = (await openSource(loadConfig(["--data", out, "--format", format, "--feature-list", list, "--eval-fraction", "0", ...framing], {})!, createLogger("t", "silent"))) as DataSource;
    expect(src.info.trainRecords).toBe(M);
    const got = new RecordBlock(M, 13, 26, 1);
    src.read("train", 0, M, got);
    expect(got.labels).toEqual(want.labels);
    expect(got.dense).toEqual(want.dense);
  });

  it("--row-group-rows: Parquet row groups of that many rows after the first 1,000, small enough for the budget compute's warning names", async () => {
    const sub = mkdtempSync(join(dir, "groups-"));
    const groups = (extra: string[]) => {
      const out = join(sub, `g${extra.length}.parquet`);
      const r = gen(["--out", out, "--records", "20000", "--format", "parquet", ...extra]);
      expect(r.status, r.stderr).toBe(0);
      const buf = readFileSync(out);
      return parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    };
    const columns = ["label", ...Array.from({ length: 13 }, (_, j) => `I${j + 1}`), ...Array.from({ length: 26 }, (_, k) => `C${k + 1}`)];
    const small = groups(["--row-group-rows", "8000"]);
    expect(small.row_groups.map((g) => Number(g.num_rows))).toEqual([1000, 8000, 8000, 3000]);
    // What compute estimates a group takes to decode, the 41 columns read: within --max-memory-mb 16 at 8,000 rows, not at the default.
    expect(largestGroup(small, columns).bytes).toBeLessThan(16 << 20);
    const large = groups([]);
    expect(large.row_groups.map((g) => Number(g.num_rows))).toEqual([1000, 19000]);
    expect(largestGroup(large, columns).bytes).toBeGreaterThan(16 << 20);
  });

  // Measured here: Instance 151 MiB; Parquet 400 MiB (413 MiB for 1,000,000 records: a row group's encoding, not the file).
  it.each([
    ["instance", 256],
    ["parquet", 512],
  ] as const)("pangea gen-data --format %s: memory stays bounded however many records (400,000 in under %i MiB of peak RSS)", (format, bound) => {
    const out = join(mkdtempSync(join(dir, "big-")), `big.${format}`);
    // Each process reports its own peak (maxRSS, KiB) as it exits: the CLI and the gen-data process it runs.
    const report = join(dir, "report-maxrss.mjs");
    writeFileSync(report, "process.on('exit', () => process.stderr.write(`maxrss ${process.resourceUsage().maxRSS}\\n`));\n");
    const r = spawnSync(process.execPath, [CLI, "gen-data", "--out", out, "--records", "400000", "--format", format], { encoding: "utf8", env: { ...process.env, NODE_OPTIONS: `--import ${report}` } });
    expect(r.status, r.stderr).toBe(0);
    const peaks = [...r.stderr.matchAll(/maxrss (\d+)/g)].map((m) => Number(m[1]) / 1024);
    expect(peaks).toHaveLength(2);
    process.stdout.write(`pangea gen-data --format ${format}, 400,000 records: peak RSS ${Math.max(...peaks).toFixed(0)} MiB\n`);
    // Before it wrote as it generated: 1.8 GB for 1.5M Instance records; 560 MiB for 400,000 Parquet ones without the collections.
    expect(Math.max(...peaks)).toBeLessThan(bound);
  }, 120_000);
});

describe("gen-data --compression", () => {
  // compute reads a file by its name (--compression auto): what gen-data writes must read back that way.
  it("follows --out's name: a Criteo TSV named .gz is gzip, .zz zlib, and reads back whole", () => {
    const plain = join(dir, "plain.tsv");
    expect(gen(["--out", plain, "--records", "50"]).status).toBe(0);
    for (const [name, inflate] of [["c.tsv.gz", gunzipSync], ["c.tsv.zz", inflateSync]] as const) {
      const out = join(dir, name);
      const r = gen(["--out", out, "--records", "50"]);
      expect(r.status, r.stderr).toBe(0);
      expect(inflate(readFileSync(out)).equals(readFileSync(plain))).toBe(true);
    }
  });

  it.each([
    ["gzip", "x.tsv", "criteo"],
    ["zlib", "x.tsv", "criteo"],
    ["gzip", "x.examples", "example"],
  ] as const)("--compression %s with a plain name %s (%s): written as asked, and said how to read; compute, reading by the name, refuses gzip naming the fix", async (kind, name, format) => {
    const sub = mkdtempSync(join(dir, "flagged-"));
    const out = join(sub, name);
    const list = join(sub, "list.json");
    const r = gen(["--out", out, "--records", "20", "--format", format, "--compression", kind, "--feature-list-out", list]);
    expect([r.status, r.stdout]).toEqual([0, `wrote 20 records to ${out} (${kind}: read it with --compression ${kind}, or name it ${out}${kind === "gzip" ? ".gz" : ".zz"})\n`]);
    // The list written for Criteo is its layout (hashed from bytes), which compute takes beside a TSV.
    const read = (extra: string[]) => openSource(loadConfig(["--data", out, "--format", format, "--eval-fraction", "0", "--feature-list", list, ...extra], {})!, createLogger("t", "silent"));
    // zlib's two header bytes prove nothing (they can begin text): only gzip's and zstd's magic is refused up front.
    if (kind === "gzip") await expect(read([])).rejects.toThrow(`data file ${out} is gzip-compressed (it starts with gzip's magic bytes) but its name says uncompressed; name it ${out}.gz (compressions are read by name), or give --compression gzip if every file given is`);
    const src = (await read(["--compression", kind])) as DataSource;
    expect(src.info.trainRecords).toBe(20);
  });

  it.each(["criteo", "example"] as const)("a Parquet file read as %s is refused at start naming --format parquet (its bytes are no bad records)", async (format) => {
    const sub = mkdtempSync(join(dir, "parquet-as-"));
    const out = join(sub, "x.parquet");
    const list = join(sub, "list.json");
    expect(gen(["--out", out, "--records", "20", "--format", "parquet", "--feature-list-out", list]).status).toBe(0);
    const read = openSource(loadConfig(["--data", out, "--format", format, "--eval-fraction", "0", ...(format === "criteo" ? [] : ["--feature-list", list])], {})!, createLogger("t", "silent"));
    await expect(read).rejects.toThrow(`data file ${out} is a Parquet file (it starts with PAR1), not this format; read it with --format parquet and a --feature-list naming its columns`);
    // With its feature list under the default --format criteo: the same (it was how the list does not fit Criteo's layout,
    // or that Criteo has one label, which sent the user to edit a list that was right).
    if (format === "criteo") {
      const withList = openSource(loadConfig(["--data", out, "--eval-fraction", "0", "--feature-list", list], {})!, createLogger("t", "silent"));
      await expect(withList).rejects.toThrow(`data file ${out} is a Parquet file (it starts with PAR1), not this format`);
    }
  });

  it("interrupted while it writes, it leaves neither --out (which would read as a smaller data set) nor its partial file", async () => {
    const sub = mkdtempSync(join(dir, "interrupted-"));
    const child = spawn(process.execPath, [GEN, "--out", join(sub, "big.tsv"), "--records", "50000000"], { stdio: "ignore" });
    // Its partial file exists once writing began.
    for (let i = 0; i < 200 && !readdirSync(sub).some((f) => f.startsWith("big.tsv.partial-")); i++) await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(sub)).toEqual([`big.tsv.partial-${child.pid}`]);
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    expect([code, readdirSync(sub)]).toEqual([143, []]);
  });

  it("a plain file that begins with gzip's four header bytes, but holds no deflate data after them, is read as it is", async () => {
    const out = join(mkdtempSync(join(dir, "lookalike-")), "x.tsv");
    writeFileSync(out, Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.from("\t1\t2\n".repeat(50))]));
    const read = openSource(loadConfig(["--data", out, "--eval-fraction", "0"], {})!, createLogger("t", "silent"));
    await expect(read).rejects.toThrow(/COMPUTE_ERR_BAD_RECORD|must be 0 or 1/);
  });

  it.each([
    ["--framing for a Criteo TSV (it was ignored)", ["--out", "x.tsv", "--framing", "tfrecord"], "--framing is for the Monolith formats (instance, example, examplebatch); a Criteo TSV file is lines of text"],
    ["--framing for a Parquet file (it was ignored)", ["--out", "x.parquet", "--format", "parquet", "--framing", "tfrecord"], "--framing is for the Monolith formats (instance, example, examplebatch); a Parquet file has its own layout"],
    ["a flag the name contradicts", ["--out", "x.tsv.gz", "--compression", "none"], "--compression none does not match --out X/x.tsv.gz, whose name says gzip (compute reads a file by its name); give a name without that extension, or --compression gzip"],
    ["zstd, which compute reads but gen-data cannot write", ["--out", "x.tsv.zst"], "--out X/x.tsv.zst: gen-data does not write zstd (compute reads it); write the file uncompressed and compress it with the zstd tool"],
    ["snappy for a Criteo file", ["--out", "x.tsv.sz"], "--out X/x.tsv.sz: gen-data writes a Criteo file plain, gzip (.gz) or zlib (.zz); snappy is for the Monolith formats"],
    ["--row-group-rows for a Criteo TSV", ["--out", "x.tsv", "--row-group-rows", "5000"], "--row-group-rows is for --format parquet; a Criteo TSV file has no row groups"],
    ["--row-group-rows of none", ["--out", "x.parquet", "--format", "parquet", "--row-group-rows", "0"], `invalid --row-group-rows: expected a row count of 100 or more: a whole number from 1 to 2^53 - 1, got "0"`],
    // Each group adds to the footer the writer holds: 5,000 groups of one row took 539 MB.
    ["--row-group-rows of 5", ["--out", "x.parquet", "--format", "parquet", "--row-group-rows", "5"], `invalid --row-group-rows: expected a row count of 100 or more, got "5"`],
    ["a compressed Parquet name", ["--out", "x.parquet.gz", "--format", "parquet"], "--out X/x.parquet.gz: a Parquet file is not compressed whole (its pages are, when a writer compresses them); give a name without the gzip extension"],
  ])("%s: one line, exit 2, nothing written", (_what, args, line) => {
    const sub = mkdtempSync(join(dir, "refused-"));
    const r = gen([...args.map((a) => (a.startsWith("x.") ? join(sub, a) : a)), "--records", "10"]);
    expect(r.status).toBe(2);
    expect(r.stderr.split("\n")[0]).toBe(`pangea gen-data: ${line.replaceAll("X/", `${sub}/`)}`);
    expect(readdirSync(sub)).toEqual([]);
  });
});
