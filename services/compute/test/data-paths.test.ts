import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { createLogger } from "@pangea/kit";
import { encodeExample } from "@pangea/monolith";
import { expandDataPaths } from "../src/sources/data-paths.js";
import { HeldOutFiles } from "../src/sources/held-out-files.js";
import { CriteoTsvSource } from "../src/sources/criteo-tsv.js";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { RecordBlock, type DataSource } from "../src/sources/source.js";
import { PB_FILE_DEFAULTS, encodePbRecords } from "../src/formats/pb-framing.js";
import { loadConfig } from "../src/config.js";
import { openSource } from "../src/sources/open-source.js";
import { ComputeErrors } from "../src/errors.js";

/** Many files: what --data and --eval-data name, and how their records line up. */
const dir = mkdtempSync(join(tmpdir(), "pangea-paths-"));
const synthetic = new SyntheticSource({ seed: 3, evalRecords: 0 });
const DAYS = 4;
const PER_DAY = 250;

/** Day d's records are synthetic records d*PER_DAY .. (d+1)*PER_DAY-1, so all days in order equal one file of them all. */
const tsv = (from: number, n: number) => Array.from({ length: n }, (_, i) => synthetic.tsvLine("train", from + i)).join("\n") + "\n";

mkdirSync(join(dir, "criteo"));
for (let d = 0; d < DAYS; d++) {
  const text = tsv(d * PER_DAY, PER_DAY);
  // Alternately gzipped and plain, as downloads come.
  if (d % 2 === 0) writeFileSync(join(dir, "criteo", `day_${d}.gz`), gzipSync(text));
  else writeFileSync(join(dir, "criteo", `day_${d}`), text);
}
writeFileSync(join(dir, "criteo", ".partial"), "not data\n");
const all = join(dir, "all.tsv");
writeFileSync(all, tsv(0, DAYS * PER_DAY));

function block(src: DataSource, split: "train" | "eval", start: number, n: number): RecordBlock {
  const b = new RecordBlock(n, src.info.numDense, src.info.slotIds.length);
  src.read(split, start, n, b);
  return b;
}

function expectSameRecords(a: RecordBlock, b: RecordBlock): void {
  expect(a.count).toBe(b.count);
  expect(a.labels.subarray(0, a.count)).toEqual(b.labels.subarray(0, b.count));
  expect(a.dense.subarray(0, a.count * 13)).toEqual(b.dense.subarray(0, b.count * 13));
  expect(a.idWords.subarray(0, a.nnz * 2)).toEqual(b.idWords.subarray(0, b.nnz * 2));
}

async function open(args: string[]) {
  const c = loadConfig(args, {})!;
  return openSource(c, createLogger("compute-test", "silent")) as Promise<DataSource>;
}

describe("--data paths", () => {
  it("a directory is its files by name (hidden ones left out); a glob its matches, sorted; plain files stay in the order given", async () => {
    const days = [0, 1, 2, 3].map((d) => join(dir, "criteo", d % 2 === 0 ? `day_${d}.gz` : `day_${d}`));
    expect(expandDataPaths([join(dir, "criteo")], "--data")).toEqual(days);
    expect(expandDataPaths([join(dir, "criteo", "day_*")], "--data")).toEqual(days);
    expect(expandDataPaths([join(dir, "criteo", "day_[02].gz")], "--data")).toEqual([days[0], days[2]]);
    expect(expandDataPaths([join(dir, "criteo", "day_?"), all], "--data")).toEqual([days[1], days[3], all]);
    expect(expandDataPaths([all, join(dir, "criteo", "day_1")], "--data")).toEqual([all, days[1]]);
    // Wildcards in a directory part, and a relative pattern.
    expect(expandDataPaths([join(dir, "c*", "day_3")], "--data")).toEqual([days[3]]);
    const rel = relative(process.cwd(), join(dir, "criteo"));
    expect(expandDataPaths([`${rel}/day_*.gz`], "--data")).toEqual([join(rel, "day_0.gz"), join(rel, "day_2.gz")]);
  });

  it("a symlink to a file counts as a file in a directory", async () => {
    const linked = join(dir, "linked");
    mkdirSync(linked);
    symlinkSync(all, join(linked, "all.tsv"));
    expect(expandDataPaths([linked], "--data")).toEqual([join(linked, "all.tsv")]);
  });

  it.each([
    [[join(dir, "criteo", "day_9*")], `--data: the pattern '${join(dir, "criteo", "day_9*")}' matches no file`],
    [[join(dir, "nowhere", "*.gz")], `--data: the pattern '${join(dir, "nowhere", "*.gz")}' matches no file`],
    [[join(dir, "missing.tsv")], `--data: cannot read data file ${join(dir, "missing.tsv")}: ENOENT`],
  ])("an entry naming nothing is one line: %j", async (entries, message) => {
    const err = (() => {
      try {
        expandDataPaths(entries, "--data");
      } catch (e) {
        return e;
      }
      return null;
    })();
    // A flag naming nothing is a bad flag: exit 2.
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
    expect((err as Error).message).toBe(message);
  });

  it("empty entries name nothing: left out beside a file, refused alone", () => {
    expect(expandDataPaths([join(dir, "all.tsv"), ""], "--data")).toEqual([join(dir, "all.tsv")]);
    expect(() => expandDataPaths(["", ""], "--data")).toThrow("--data names no file");
  });

  it("--data and --eval-data refuse an empty entry in their list (a doubled or trailing comma, where a path may have been meant)", () => {
    for (const [flag, value] of [["--data", "a.tsv,"], ["--data", "a.tsv,,b.tsv"], ["--eval-data", ",b.tsv"]] as const) {
      expect(() => loadConfig([flag, value], {})).toThrow(`invalid ${flag}: expected comma-separated paths, got an empty entry (a doubled, leading or trailing comma)`);
    }
    expect(loadConfig(["--data", "a.tsv, b.tsv"], {})!.data).toEqual(["a.tsv", "b.tsv"]);
    expect(() => loadConfig(["--data", " "], {})).toThrow('invalid --data: expected comma-separated paths, got " "');
  });

  it("a link to nothing or a FIFO in a directory or a pattern's matches is refused by name, not passed over; a subdirectory is passed over", () => {
    const days = join(dir, "days");
    mkdirSync(join(days, "sub"), { recursive: true });
    writeFileSync(join(days, "day0.tsv"), tsv(0, 10));
    expect(expandDataPaths([days], "--data")).toEqual([join(days, "day0.tsv")]);
    symlinkSync(join(dir, "unmounted", "day1.tsv"), join(days, "day1.tsv"));
    const gone = `a symbolic link to ${join(dir, "unmounted", "day1.tsv")}, which does not exist`;
    expect(() => expandDataPaths([days], "--data")).toThrow(`--data: the directory ${days} holds ${join(days, "day1.tsv")}, ${gone}`);
    expect(() => expandDataPaths([join(days, "day*.tsv")], "--eval-data")).toThrow(`--eval-data: the pattern '${join(days, "day*.tsv")}' holds ${join(days, "day1.tsv")}, ${gone}`);
    const fifos = join(dir, "fifos");
    mkdirSync(fifos);
    writeFileSync(join(fifos, "day0.tsv"), tsv(0, 10));
    expect(spawnSync("mkfifo", [join(fifos, "day2.tsv")]).status).toBe(0);
    expect(() => expandDataPaths([fifos], "--data")).toThrow(`--data: the directory ${fifos} holds ${join(fifos, "day2.tsv")}, a FIFO, not a data file; name it in --data on its own to read it as one`);
    // Named on its own, a FIFO is data (test/fifo-data).
    expect(expandDataPaths([join(fifos, "day2.tsv")], "--data")).toEqual([join(fifos, "day2.tsv")]);
  });

  it("a directory a pattern matches is its files, as if named on its own (as the shell would expand the pattern)", () => {
    const days = join(dir, "by-day");
    for (const d of ["2024-01-01", "2024-01-02"]) {
      mkdirSync(join(days, d, "nested"), { recursive: true });
      writeFileSync(join(days, d, "part-0.tsv"), tsv(0, 10));
      writeFileSync(join(days, d, "part-1.tsv"), tsv(10, 20));
    }
    writeFileSync(join(days, "2024-01-03.tsv"), tsv(20, 30));
    expect(expandDataPaths([join(days, "2024-*")], "--data")).toEqual([
      join(days, "2024-01-01", "part-0.tsv"),
      join(days, "2024-01-01", "part-1.tsv"),
      join(days, "2024-01-02", "part-0.tsv"),
      join(days, "2024-01-02", "part-1.tsv"),
      join(days, "2024-01-03.tsv"),
    ]);
    expect(expandDataPaths([join(days, "*-02")], "--data")).toEqual([join(days, "2024-01-02", "part-0.tsv"), join(days, "2024-01-02", "part-1.tsv")]);
  });

  it("an empty directory is refused", async () => {
    mkdirSync(join(dir, "empty"));
    expect(() => expandDataPaths([join(dir, "empty")], "--data")).toThrow(new RegExp(`^--data: the directory ${join(dir, "empty")} holds no files$`));
    // One holding only hidden files says that those are not read.
    mkdirSync(join(dir, "hidden-only"));
    writeFileSync(join(dir, "hidden-only", ".day_0.tsv"), tsv(0, 2));
    // Hidden directories (compute's own cache, a .git) are not what the note is about.
    mkdirSync(join(dir, "hidden-only", ".pangea-cache"));
    mkdirSync(join(dir, "hidden-only", ".git"));
    expect(() => expandDataPaths([join(dir, "hidden-only")], "--data")).toThrow(`--data: the directory ${join(dir, "hidden-only")} holds no files to read (.day_0.tsv is passed over: files whose names start with '.' or '_' are not read from a directory; name one on its own to read it)`);
    expect(expandDataPaths([join(dir, "hidden-only", ".day_0.tsv")], "--data")).toEqual([join(dir, "hidden-only", ".day_0.tsv")]);
  });

  it("a Spark output directory: its _SUCCESS marker and _metadata are passed over, by a listing and by a pattern", async () => {
    const spark = join(dir, "spark-out");
    mkdirSync(spark);
    for (const name of ["part-00000.tsv", "part-00001.tsv"]) writeFileSync(join(spark, name), tsv(0, 2));
    writeFileSync(join(spark, "_SUCCESS"), "");
    writeFileSync(join(spark, "_metadata"), "footer");
    const parts = [join(spark, "part-00000.tsv"), join(spark, "part-00001.tsv")];
    expect(expandDataPaths([spark], "--data")).toEqual(parts);
    expect(expandDataPaths([`${spark}/*`], "--data")).toEqual(parts);
    // Named on its own, or by a pattern that starts with '_', it is read.
    expect(expandDataPaths([`${spark}/_*`], "--data")).toEqual([join(spark, "_SUCCESS"), join(spark, "_metadata")]);
    // Only markers: the line says they are passed over.
    const marker = join(dir, "marker-only");
    mkdirSync(marker);
    writeFileSync(join(marker, "_SUCCESS"), "");
    expect(() => expandDataPaths([marker], "--data")).toThrow(`--data: the directory ${marker} holds no files to read (_SUCCESS is passed over: files whose names start with '.' or '_' are not read from a directory; name one on its own to read it)`);
  });

  it("a directory of only directories (Hive's partitions, day=0/...) says its subdirectories are not read and how to name them", async () => {
    const hive = join(dir, "hive");
    for (const d of ["day=0", "day=1"]) {
      mkdirSync(join(hive, d), { recursive: true });
      writeFileSync(join(hive, d, "part-0.tsv"), tsv(0, 2));
    }
    // Spark's partitioned output has its _SUCCESS marker beside the partitions: the partitions are what to say.
    writeFileSync(join(hive, "_SUCCESS"), "");
    expect(() => expandDataPaths([`${hive}/`], "--data")).toThrow(`--data: the directory ${hive}/ holds no files (it holds 2 directories: day=0, day=1; a directory's subdirectories are not read: name them, or a pattern such as '${hive}/*/*')`);
    expect(expandDataPaths([`${hive}/*/*`], "--data")).toEqual([join(hive, "day=0", "part-0.tsv"), join(hive, "day=1", "part-0.tsv")]);
    // A directory read for its files that also holds subdirectories: their files are not read, and a note says so.
    const mixed = join(dir, "mixed");
    mkdirSync(join(mixed, "day=0", "hour=0"), { recursive: true });
    mkdirSync(join(mixed, "day=0", "hour=1"));
    writeFileSync(join(mixed, "day=0", "stray.tsv"), tsv(0, 2));
    writeFileSync(join(mixed, "day=0", "hour=0", "part-0.tsv"), tsv(0, 2));
    const notes: string[] = [];
    expect(expandDataPaths([`${mixed}/*`], "--data", notes)).toEqual([join(mixed, "day=0", "stray.tsv")]);
    expect(notes).toEqual([`--data: the directory ${join(mixed, "day=0")} holds subdirectories whose files are not read (hour=0, hour=1); name them, or a pattern such as '${join(mixed, "day=0")}/*/*', to read them`]);
    const none: string[] = [];
    expandDataPaths([join(mixed, "day=0", "hour=0")], "--data", none);
    expect(none).toEqual([]);
  });
});

describe("Criteo days", () => {
  it("several files, some gzipped, read as one sequence equal to one file of the same lines; the held-out share comes from the end", async () => {
    const days = await open(["--data", `${join(dir, "criteo", "day_*")}`, "--format", "criteo", "--eval-fraction", "0.2"]);
    const one = await CriteoTsvSource.open({ paths: [all], evalFraction: 0.2 });
    expect(days.info.trainRecords).toBe(800);
    expect(days.info.evalRecords).toBe(200);
    expect(days.info.description).toMatch(/^Criteo TSV 4 files \(.*day_0\.gz \.\. .*day_3\) \(1000 records\)$/);
    expectSameRecords(block(days, "train", 0, 800), block(one, "train", 0, 800));
    expectSameRecords(block(days, "eval", 0, 200), block(one, "eval", 0, 200));
  });

  it.runIf(spawnSync("zstd", ["--version"]).status === 0)("zstd-compressed TSV (Debian's zstd tool) reads as the plain file", async () => {
    execFileSync("zstd", ["-q", "-f", all, "-o", join(dir, "all.tsv.zst")]);
    const z = await open(["--data", join(dir, "all.tsv.zst"), "--format", "criteo", "--eval-fraction", "0"]);
    expectSameRecords(block(z, "train", 0, 1000), block(await CriteoTsvSource.open({ paths: [all], evalFraction: 0 }), "train", 0, 1000));
  });

  it("--eval-data: every --data record trains, every --eval-data record evaluates", async () => {
    const src = await open(["--data", join(dir, "criteo", "day_[012]*"), "--eval-data", join(dir, "criteo", "day_3"), "--format", "criteo"]);
    const one = await CriteoTsvSource.open({ paths: [all], evalFraction: 0 });
    expect(src.info.trainRecords).toBe(750);
    expect(src.info.evalRecords).toBe(250);
    expectSameRecords(block(src, "train", 0, 750), block(one, "train", 0, 750));
    expectSameRecords(block(src, "eval", 0, 250), block(one, "train", 750, 250));
  });

  it("--eval-data's own data warnings and skipped lines are kept, marked as the held-out files'", async () => {
    const held = join(dir, "held-empty");
    mkdirSync(held);
    writeFileSync(join(held, "a.tsv"), tsv(0, 40) + "2\tbad\n");
    writeFileSync(join(held, "b.tsv"), "");
    const src = await open(["--data", join(dir, "criteo", "day_0.gz"), "--eval-data", held, "--format", "criteo", "--on-bad-record", "skip"]);
    expect(src.info.evalRecords).toBe(40);
    expect(src.info.dataWarnings).toEqual([`held out: data file ${join(held, "b.tsv")} is empty (0 bytes): nothing was read from it`]);
    expect(src.info.skippedSummary).toMatch(/^held out: 1 bad record skipped, 40 samples kept: 1 x /);
  });

  it("a bad line names its own file and line", async () => {
    writeFileSync(join(dir, "bad-day.tsv"), `${tsv(0, 3)}2\tx\n`);
    const err = await open(["--data", `${all},${join(dir, "bad-day.tsv")}`, "--format", "criteo"]).then(() => null, (e: unknown) => e);
    expect((err as Error).message).toMatch(new RegExp(`^${join(dir, "bad-day.tsv")}:4 \\(byte \\d+\\): `));
  });
});

describe("Monolith files by glob, held out by --eval-data", () => {
  it("reads every matching file; --eval-data without --data, or with Kafka, is refused", async () => {
    const samples = Array.from({ length: 300 }, (_, i) => synthetic.plainSample("train", i));
    mkdirSync(join(dir, "monolith"));
    for (let p = 0; p < 3; p++) writeFileSync(join(dir, "monolith", `part-${p}.pb`), encodePbRecords(samples.slice(p * 100, p * 100 + 100).map(encodeExample), PB_FILE_DEFAULTS));
    const list = join(dir, "list.json");
    writeFileSync(list, JSON.stringify(synthetic.featureListConfig("fid_v2")));
    const src = await open(["--data", join(dir, "monolith", "part-[01].pb"), "--eval-data", join(dir, "monolith", "part-2.pb"), "--format", "example", "--feature-list", list]);
    expect(src.info.trainRecords).toBe(200);
    expect(src.info.evalRecords).toBe(100);
    expectSameRecords(block(src, "eval", 0, 100), block(synthetic, "train", 200, 100));
    await expect(open(["--eval-data", join(dir, "monolith", "part-2.pb")])).rejects.toThrow("--eval-data needs --data");
    await expect(open(["--kafka-brokers", "localhost:9092", "--kafka-topic", "t", "--eval-data", all, "--format", "example", "--feature-list", list])).rejects.toThrow("--kafka-brokers and --data/--eval-data are exclusive");
  });

  it("held-out data with other features than the training data is refused", async () => {
    const criteo = await CriteoTsvSource.open({ paths: [all], evalFraction: 0, slotBase: 100 });
    expect(() => new HeldOutFiles(synthetic, criteo)).toThrow(/^--eval-data holds other features than --data: slots \[100,101,/);
  });
});

describe("what --data refuses besides", () => {
  it("a file whose name holds wildcard characters is itself when it exists", async () => {
    const odd = join(dir, "day[1].tsv");
    writeFileSync(odd, tsv(0, 2));
    expect(expandDataPaths([odd], "--data")).toEqual([odd]);
  });

  it("a file named twice, by one entry or by two, and a held-out file that also trains", async () => {
    const day1 = join(dir, "criteo", "day_1");
    expect(() => expandDataPaths([join(dir, "criteo"), day1], "--data")).toThrow(`--data names ${day1} twice (by '${join(dir, "criteo")}' and by '${day1}')`);
    // Spelt otherwise, it is still one path, not a link.
    const spelt = `${join(dir, "criteo")}/./day_1`;
    expect(() => expandDataPaths([join(dir, "criteo"), spelt], "--data")).toThrow(`--data names ${spelt} twice (by '${join(dir, "criteo")}' and by '${spelt}')`);
    await expect(open(["--data", join(dir, "criteo"), "--eval-data", day1, "--format", "criteo"])).rejects.toThrow(`--eval-data names ${day1}, which --data trains on: held-out records must not be trained on`);
  });

  it("one file under two names (a symbolic or a hard link, in a directory or named), and a held-out link to a training file", async () => {
    const days = join(dir, "linked-days");
    mkdirSync(days);
    const day0 = join(days, "day_0.tsv");
    writeFileSync(day0, tsv(0, 2));
    // A directory's "latest" link to one of its days: the day would train twice.
    symlinkSync("day_0.tsv", join(days, "latest.tsv"));
    expect(() => expandDataPaths([days], "--data")).toThrow(`--data names one file twice: ${day0} and ${join(days, "latest.tsv")} are the same file (a link) (by '${days}')`);
    const hard = join(dir, "hard-day_0.tsv");
    linkSync(day0, hard);
    expect(() => expandDataPaths([day0, hard], "--data")).toThrow(`--data names one file twice: ${day0} and ${hard} are the same file (a link) (by '${day0}' and by '${hard}')`);
    // Two files of the same contents are two files.
    const copy = join(dir, "copy-day_0.tsv");
    copyFileSync(day0, copy);
    expect(expandDataPaths([day0, copy], "--data")).toEqual([day0, copy]);
    await expect(open(["--data", day0, "--eval-data", hard, "--format", "criteo"])).rejects.toThrow(`--eval-data names ${hard}, the same file as ${day0} (a link), which --data trains on: held-out records must not be trained on`);
  });

  it("--format criteo with a feature list naming a groupSlot (a list beside Criteo TSV gives slot dims and pooling only: it would not apply)", async () => {
    const list = join(dir, "grouped.json");
    writeFileSync(list, JSON.stringify({ ...synthetic.featureListConfig("bytes"), groupSlot: 1 }));
    await expect(open(["--data", all, "--format", "criteo", "--feature-list", list])).rejects.toThrow(/takes no groupSlot from --feature-list .* \(only its slots. dims and pooling\); GAUC needs Parquet or Monolith files$/);
  });

  it("a data directory that also holds the --feature-list is refused naming it, not read as records", async () => {
    const both = join(dir, "with-list");
    mkdirSync(both);
    const records = Array.from({ length: 20 }, (_, i) => encodeExample(synthetic.plainSample("train", i)));
    writeFileSync(join(both, "day_0.pb"), encodePbRecords(records, PB_FILE_DEFAULTS, records.map((_, i) => new TextEncoder().encode(`k${i}`))));
    const list = join(both, "fl.json");
    writeFileSync(list, JSON.stringify(synthetic.featureListConfig("fid_v2")));
    for (const flag of ["--data", "--eval-data"]) {
      const args = flag === "--data" ? ["--data", both] : ["--data", join(both, "day_0.pb"), "--eval-data", both];
      const err = await open([...args, "--format", "example", "--feature-list", list]).then(() => null, (e: unknown) => e);
      expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG"), String(err)).toBe(true);
      expect((err as Error).message).toBe(`${flag} names ${list}, the --feature-list: it is no data file; move it out of the data's directory, or name the data files alone`);
    }
    // Named alone, the data file reads.
    expect((await open(["--data", join(both, "day_0.pb"), "--format", "example", "--feature-list", list, "--eval-fraction", "0"])).info.trainRecords).toBe(20);
  });
});

