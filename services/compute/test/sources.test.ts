import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { gzipSync, inflateRawSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CriteoTsvSource } from "../src/sources/criteo-tsv.js";
import { SyntheticSource, USER_SLOT } from "../src/sources/synthetic.js";
import { toSourceInfo } from "../src/source-info.js";
import { compileFeatureList } from "@pangea/features";
import { RecordBlock } from "../src/sources/source.js";
import { ComputeErrors } from "../src/errors.js";

const sklearnAvailable = spawnSync("/usr/bin/python3", ["-c", "import sklearn"]).status === 0;
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

  it("describes 13 dense features, 26 slots and its ground truth", async () => {
    expect(src.info.numDense).toBe(13);
    expect(src.info.slotIds).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    expect(src.info.trainRecords).toBe(0);
    expect(src.info.groundTruth!.auc).toBeGreaterThan(0.75);
    expect(src.info.groundTruth!.auc).toBeLessThan(0.95);
  });

  it("is a pure function of (seed, split, index)", async () => {
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

  it("gives a record the same ids whether generated in memory or read back from its TSV line", async () => {
    const n = 300;
    const path = write("synthetic.tsv", Array.from({ length: n }, (_, i) => src.tsvLine("train", i)).join("\n") + "\n");
    const file = await CriteoTsvSource.open({ paths: [path], evalFraction: 0 });
    const fromFile = new RecordBlock(n, 13, 26);
    const inMemory = new RecordBlock(n, 13, 26);
    file.read("train", 0, n, fromFile);
    src.read("train", 0, n, inMemory);
    expect(fromFile.idWords).toEqual(inMemory.idWords);
    expect(fromFile.labels).toEqual(inMemory.labels);
    expect(fromFile.dense).toEqual(inMemory.dense);
  });
});

describe("synthetic source with a second task (conversion)", () => {
  const N = 20_000;
  const one = new SyntheticSource({ seed: 42, evalRecords: N });
  const two = new SyntheticSource({ seed: 42, evalRecords: N, tasks: 2 });

  it("leaves the default single-task data bit for bit as it was", async () => {
    // Digest of the default data (seed 42) taken before the second task existed.
    const h = createHash("sha256");
    const src = new SyntheticSource({ seed: 42, evalRecords: 5000 });
    for (const split of ["train", "eval"] as const) {
      const b = new RecordBlock(4096, 13, 26);
      src.read(split, 1000, 4096, b);
      for (const a of [b.labels, b.dense, b.idWords, b.cellOffsets, b.weights]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    }
    h.update(src.tsvLine("train", 3));
    h.update(JSON.stringify(src.info.groundTruth));
    expect(h.digest("hex").slice(0, 16)).toBe("f22552e434378f2f");
    expect(src.info.tasks).toBeUndefined();
    expect(src.info.taskGroundTruth).toBeUndefined();
  });

  it("declares click and conversion, the user slot, and a ground truth per task", async () => {
    expect(two.info.tasks).toEqual([
      { name: "click", loss: "bce", weight: 1 },
      { name: "conversion", loss: "bce", weight: 1 },
    ]);
    expect(one.info.groupSlot).toBe(1);
    expect(two.info.groupSlot).toBe(one.info.slotIds[USER_SLOT]);
    expect(two.info.groundTruth).toEqual(one.info.groundTruth);
    expect(two.info.taskGroundTruth![0]).toEqual(one.info.groundTruth);
    expect(two.info.taskGroundTruth![1]!.auc).toBeGreaterThan(0.8);
    expect(toSourceInfo(two.info)).toMatchObject({
      hasGroupSlot: true,
      groupSlot: 1,
      groundTruthTaskAuc: two.info.taskGroundTruth!.map((g) => g.auc),
      groundTruthTaskLogloss: two.info.taskGroundTruth!.map((g) => g.logloss),
    });
    expect(toSourceInfo(one.info)).toMatchObject({ tasks: [], groundTruthTaskAuc: [], groundTruthTaskLogloss: [], hasGroupSlot: true, groupSlot: 1 });
  });

  it("keeps the click data and converts only clicked records", async () => {
    const a = new RecordBlock(N, 13, 26);
    const b = new RecordBlock(N, 13, 26, 2);
    one.read("eval", 0, N, a);
    two.read("eval", 0, N, b);
    // Byte comparisons: toEqual over a million elements takes seconds.
    const bytes = (x: Float32Array | Uint32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    expect(bytes(b.idWords).equals(bytes(a.idWords))).toBe(true);
    expect(bytes(b.dense).equals(bytes(a.dense))).toBe(true);
    const clicks = b.labels.filter((_, j) => j % 2 === 0);
    const converted = b.labels.filter((_, j) => j % 2 === 1);
    expect(bytes(clicks).equals(bytes(a.labels))).toBe(true);
    expect(converted.some((c, i) => c === 1 && clicks[i] !== 1)).toBe(false);
    const conversions = converted.reduce((n, c) => n + c, 0);
    for (const i of [0, 1, 2, 999, N - 1]) expect(two.truth("eval", i).labels).toEqual([b.labels[2 * i], b.labels[2 * i + 1]]);
    // A few percent of records convert: enough positives for a held-out AUC.
    expect(conversions / N).toBeGreaterThan(0.03);
    expect(conversions / N).toBeLessThan(0.12);
    expect(() => two.read("eval", 0, 8, new RecordBlock(8, 13, 26))).toThrow("a block of 1 labels for a source of 2");
  });

  it("draws each label from the probability it reports: the label rates match, and sklearn scores the same ground truth", async () => {
    const p: number[][] = [[], []];
    const y: number[][] = [[], []];
    for (let i = 0; i < N; i++) {
      const t = two.truth("eval", i);
      for (let k = 0; k < 2; k++) {
        p[k]!.push(t.p[k]!);
        y[k]!.push(t.labels[k]!);
      }
    }
    for (let k = 0; k < 2; k++) {
      const mean = p[k]!.reduce((a, b) => a + b, 0) / N;
      const rate = y[k]!.reduce((a, b) => a + b, 0) / N;
      // Four standard errors of a Bernoulli mean.
      expect(Math.abs(rate - mean)).toBeLessThan(4 * Math.sqrt((mean * (1 - mean)) / N));
    }
    if (!sklearnAvailable) return;
    const out = execFileSync(
      "/usr/bin/python3",
      ["-c", "import json,sys\nfrom sklearn.metrics import roc_auc_score, log_loss\nd=json.load(sys.stdin)\nprint(json.dumps([[roc_auc_score(y,p), log_loss(y,p)] for p,y in zip(d['p'],d['y'])]))"],
      { input: JSON.stringify({ p, y }), encoding: "utf8", maxBuffer: 64 << 20 },
    );
    const sk = JSON.parse(out) as [number, number][];
    sk.forEach(([auc, logloss], k) => {
      expect(two.info.taskGroundTruth![k]!.auc).toBeCloseTo(auc, 9);
      expect(two.info.taskGroundTruth![k]!.logloss).toBeCloseTo(logloss, 9);
    });
  });

  it("the user slot groups the held-out records in groups of several, nearly all holding both classes of each task", async () => {
    const b = new RecordBlock(N, 13, 26, 2);
    two.read("eval", 0, N, b);
    const groups = new Map<string, { n: number; pos: number[] }>();
    for (let i = 0; i < N; i++) {
      const cell = i * 26 + USER_SLOT;
      const key = `${b.idWords[2 * cell]}:${b.idWords[2 * cell + 1]}`;
      const g = groups.get(key) ?? { n: 0, pos: [0, 0] };
      g.n++;
      g.pos[0]! += b.labels[2 * i]!;
      g.pos[1]! += b.labels[2 * i + 1]!;
      groups.set(key, g);
    }
    expect(N / groups.size).toBeGreaterThan(20);
    for (let k = 0; k < 2; k++) {
      const covered = [...groups.values()].filter((g) => g.pos[k]! > 0 && g.pos[k]! < g.n).reduce((a, g) => a + g.n, 0);
      expect(covered / N, `task ${k}`).toBeGreaterThan(0.9);
    }
  });

  it("writes both labels into Monolith samples and its feature list declares them", async () => {
    const t = two.truth("train", 17);
    expect(two.plainSample("train", 17).labels).toEqual(t.labels);
    expect(one.plainSample("train", 17).labels).toEqual([t.labels[0]]);
    const list = compileFeatureList(two.featureListConfig("fid_v2"), "synthetic");
    expect(list.labels.map((l) => [l.name, l.index, l.loss])).toEqual([["click", 0, "bce"], ["conversion", 1, "bce"]]);
    expect(list.groupSlot).toBe(1);
    expect(compileFeatureList(one.featureListConfig("fid_v2"), "synthetic").namedTasks).toBe(false);
  });
});

describe("Criteo TSV source", () => {
  it("parses labels, counts (empty = 0, negative clamped) and tokens, and holds out the tail", async () => {
    const rows = Array.from({ length: 10 }, (_, i) => line(String(i % 2), goodDense.map((d, j) => (j === 1 ? "-1" : j === 2 ? "" : d)), goodCats));
    const src = await CriteoTsvSource.open({ paths: [write("ok.tsv", rows.join("\r\n"))], evalFraction: 0.2 });
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
    // A comma-separated line was named a bad label, quoting the whole line as the label.
    ["comma-separated line", [1, ...goodDense, ...goodCats].join(","), "bad.tsv:2 (byte 217): expected 40 tab-separated fields (label, I1-I13, C1-C26), got 1 (the line holds no tab; is the file comma-separated?)"],
    ["line of one word", "hello", "bad.tsv:2 (byte 217): expected 40 tab-separated fields (label, I1-I13, C1-C26), got 1 (the line holds no tab)"],
    ["non-integer count", line("0", goodDense.map((d, j) => (j === 4 ? "4.5" : d)), goodCats), "bad.tsv:2 (byte 217): field I5 '4.5' is not an integer"],
    ["lone minus", line("0", goodDense.map((d, j) => (j === 0 ? "-" : d)), goodCats), "bad.tsv:2 (byte 217): field I1 '-' is not an integer"],
    // 309 digits and more read as Infinity, which had reached the trainers (TRAINER_ERR_NON_FINITE, far from this line).
    ["count too large", line("0", goodDense.map((d, j) => (j === 1 ? `1${"0".repeat(400)}` : d)), goodCats), `bad.tsv:2 (byte 217): field I2 '1${"0".repeat(63)}… (337 more bytes)' is too large a count (it reads as Infinity)`],
  ])("names file, line and byte offset for a %s", async (_what, bad, message) => {
    const path = write("bad.tsv", `${line("0", goodDense, goodCats)}\n${bad}\n`);
    try {
      await CriteoTsvSource.open({ paths: [path], evalFraction: 0 });
      expect.unreachable();
    } catch (err) {
      expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_RECORD")).toBe(true);
      expect((err as Error).message).toBe(`${path.replace(/bad\.tsv$/, "")}${message}`);
    }
  });

  it("a gzip file with a bit flipped mid-way: the lines its wrong output gave that do not parse go with the checksum's failure, not as bad records", async () => {
    // Varied lines (a small LCG), so the deflate stream has codes a flip misreads from there on.
    let x = 12345;
    const rnd = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
    const rows = Array.from({ length: 6000 }, () => line(String(rnd() % 2), goodDense.map(() => String(rnd() % 1000)), goodCats.map(() => (rnd() % 7 === 0 ? "" : (rnd() % 4096).toString(16).padStart(8, "0")))));
    const original = Buffer.from(`${rows.join("\n")}\n`);
    const whole = gzipSync(original);
    let flipped = whole;
    let wrongFrom = 0;
    for (let at = Math.floor(whole.length / 2); ; at++) {
      expect(at).toBeLessThan(whole.length / 2 + 400);
      flipped = Buffer.from(whole);
      flipped[at]! ^= 0x10;
      let out: Buffer;
      try {
        out = inflateRawSync(flipped.subarray(10, flipped.length - 8));
      } catch {
        continue; // an error mid-way: no wrong output to the end
      }
      wrongFrom = 0;
      while (wrongFrom < out.length && out[wrongFrom] === original[wrongFrom]) wrongFrom++;
      // Garbled from there on: most lines after the flip do not parse.
      const after = out.subarray(wrongFrom).toString("latin1").split("\n").slice(1, -1);
      if (after.length > 20 && after.filter((l) => l.split("\t").length !== 40).length > after.length / 2) break;
    }
    const intact = original.subarray(0, wrongFrom).toString().split("\n").length - 1;
    const path = join(dir, "flipped.tsv.gz");
    writeFileSync(path, flipped);
    const src = await CriteoTsvSource.open({ paths: [path], evalFraction: 0, onBadRecord: "skip", cacheDir: mkdtempSync(join(tmpdir(), "pangea-cache-")) });
    expect(src.info.trainRecords).toBeGreaterThanOrEqual(intact);
    expect(src.info.skippedRecords).toBe(0);
    expect(src.info.skippedStretches).toBe(1);
    expect(src.info.skippedSummary).toMatch(/^1 damaged stretch skipped \(\d+ bytes; \d+ records of wrong output that did not parse, other records in it are not counted\), \d+ samples kept: 1 x cannot gzip-decompress: incorrect data check: .* taken as its wrong output, not bad records\)/);
    // The same data gzipped whole with a bad line of its own: a bad record, its stream being sound.
    const withBad = join(dir, "one-bad.tsv.gz");
    writeFileSync(withBad, gzipSync(Buffer.from(`${rows.slice(0, 100).join("\n")}\n${line("2", goodDense, goodCats)}\n`)));
    const sound = await CriteoTsvSource.open({ paths: [withBad], evalFraction: 0, onBadRecord: "skip", cacheDir: mkdtempSync(join(tmpdir(), "pangea-cache-")) });
    expect([sound.info.trainRecords, sound.info.skippedRecords, sound.info.skippedStretches]).toEqual([100, 1, 0]);
    expect(sound.info.skippedSummary).toBe(`1 bad record skipped, 100 samples kept: 1 x label '2' must be 0 or 1; first: ${withBad}:101 (byte ${Buffer.byteLength(rows.slice(0, 100).join("\n")) + 1}): label '2' must be 0 or 1`);
  });

  it("refuses a missing or empty file with COMPUTE_ERR_SOURCE", async () => {
    await expect(CriteoTsvSource.open({ paths: [join(dir, "nope.tsv")], evalFraction: 0 })).rejects.toThrow(/cannot read data file .*nope\.tsv: ENOENT/);
    await expect(CriteoTsvSource.open({ paths: [write("empty.tsv", "\n\n")], evalFraction: 0 })).rejects.toThrow(/has no records$/);
    // A file of 0 bytes (compressed by its name or not) says so.
    for (const name of ["zero.tsv", "zero.tsv.gz"]) {
      const path = write(name, "");
      await expect(CriteoTsvSource.open({ paths: [path], evalFraction: 0 })).rejects.toThrow(`data file ${path} has no records (data file ${path} is empty (0 bytes): nothing was read from it)`);
    }
  });
});
