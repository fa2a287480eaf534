import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kafka, logLevel } from "kafkajs";
import { parquetWriteBuffer } from "hyparquet-writer";
import { createLogger } from "@pangea/kit";
import { MessageType, decodeMessage, readFloat32 } from "@pangea/schema";
import { KafkaFixtureBroker } from "@pangea/test-utils";
import { compileFeatureList, type FeatureListConfig } from "@pangea/features";
import { encodeExample, encodeExampleBatch, encodeInstance, type PlainSample } from "@pangea/monolith";
import { SyntheticSource } from "../src/sources/synthetic.js";
import { RecordBlock, type DataSource } from "../src/sources/source.js";
import { MonolithFilesSource, type MessageKind } from "../src/sources/monolith-files.js";
import { ParquetSource } from "../src/sources/parquet-source.js";
import { KafkaSource } from "../src/sources/kafka-source.js";
import { PbFraming, PB_FILE_DEFAULTS, encodePbRecords } from "../src/formats/pb-framing.js";
import { encodeBatch } from "../src/batching/batch-encoder.js";
import { loadConfig } from "../src/config.js";
import { openSource } from "../src/sources/open-source.js";
import { ComputeErrors } from "../src/errors.js";

/** Several labels per record, from every format that carries them, into TrainingBatch labels [B, T]; and the bad input around them. */
const dir = mkdtempSync(join(tmpdir(), "pangea-multi-label-"));
const N = 300;
const one = new SyntheticSource({ seed: 17, evalRecords: 0 });
const two = new SyntheticSource({ seed: 17, evalRecords: 0, tasks: 2 });
const samples = Array.from({ length: N }, (_, i) => two.plainSample("train", i));

function encode(kind: MessageKind, ss: PlainSample[]): Uint8Array[] {
  if (kind === "instance") return ss.map(encodeInstance);
  if (kind === "example") return ss.map(encodeExample);
  const out: Uint8Array[] = [];
  for (let i = 0; i < ss.length; i += 100) out.push(encodeExampleBatch(ss.slice(i, i + 100)));
  return out;
}

function monolithFile(kind: MessageKind, ss: PlainSample[], config: FeatureListConfig) {
  const path = join(dir, `${kind}-${Math.random()}.pb`);
  writeFileSync(path, encodePbRecords(encode(kind, ss), PB_FILE_DEFAULTS));
  const open = (onBadRecord: "fail" | "skip" = "fail") =>
    MonolithFilesSource.open({ paths: [path], message: kind, framing: new PbFraming(PB_FILE_DEFAULTS), compression: "auto", featureList: compileFeatureList(config, "test"), evalFraction: 0, onBadRecord });
  return { path, open };
}

/** What a trainer receives: the TrainingBatch's labels tensor of a source's first n train records. */
function batchLabels(src: DataSource, n: number): { data: number[]; shape: number[] } {
  const T = src.info.tasks?.length || 1;
  const block = new RecordBlock(n, src.info.numDense, src.info.slotIds.length, T);
  src.read("train", 0, n, block);
  const msg = decodeMessage(encodeBatch("test", block, src.info.slotIds, "train", 0, 0), MessageType.TRAINING_BATCH);
  const t = readFloat32(msg.payload.labels, "labels");
  return { data: Array.from(t.data), shape: t.shape };
}

const listFor = (kind: MessageKind) => one.featureListConfig(kind === "instance" ? "fid_v1" : "fid_v2");
const { label: _single, ...unlabelled } = listFor("example");
/** Raw labels as a Monolith writer may hold them: a click written as 0, 1 or a count, a watch time in seconds. */
const rawClick = (i: number) => [0, 1, 2.5, -1][i % 4]!;
const watch = (i: number) => i * 0.25;

describe("Monolith files with several labels per sample", () => {
  it.each(["instance", "example", "examplebatch"] as const)("%s: the generator's click and conversion reach the batch as labels [B, 2]", async (kind) => {
    const src = await (monolithFile(kind, samples, two.featureListConfig(kind === "instance" ? "fid_v1" : "fid_v2")).open());
    expect(src.info.tasks).toEqual([{ name: "click", loss: "bce", weight: 1 }, { name: "conversion", loss: "bce", weight: 1 }]);
    expect(src.info.groupSlot).toBe(1);
    const expected = new RecordBlock(N, 13, 26, 2);
    two.read("train", 0, N, expected);
    const got = batchLabels(src, N);
    expect(got.shape).toEqual([N, 2]);
    expect(got.data).toEqual(Array.from(expected.labels));
    expect(got.data.some((y, j) => j % 2 === 1 && y === 1)).toBe(true);
  });

  it.each(["instance", "example", "examplebatch"] as const)("%s: a bce label is binarised (> 0 is 1), an mse label kept, each read from the index the list names", async (kind) => {
    const ss = samples.slice(0, 40).map((s, i) => ({ ...s, labels: [rawClick(i), watch(i)] }));
    const config = { ...unlabelled, slots: listFor(kind).slots, labels: [{ name: "watch_seconds", loss: "mse" as const, index: 1, weight: 0.5 }, { name: "click", loss: "bce" as const, index: 0, weight: 1 }] };
    const src = await (monolithFile(kind, ss, config).open());
    expect(src.info.tasks).toEqual([{ name: "watch_seconds", loss: "mse", weight: 0.5 }, { name: "click", loss: "bce", weight: 1 }]);
    const got = batchLabels(src, 40);
    expect(got.shape).toEqual([40, 2]);
    expect(got.data).toEqual(ss.flatMap((_, i) => [watch(i), rawClick(i) > 0 ? 1 : 0]));
  });

  it("a sample with fewer labels than the list declares is a bad record naming file and record; skip counts it", async () => {
    const ss = samples.slice(0, 10).map((s, i) => (i === 4 ? { ...s, labels: [1] } : s));
    const config = two.featureListConfig("fid_v2");
    const { path, open } = monolithFile("example", ss, config);
    const offset = encodePbRecords(encode("example", ss.slice(0, 4)), PB_FILE_DEFAULTS).length;
    try {
      await open();
      expect.unreachable();
    } catch (err) {
      expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_RECORD")).toBe(true);
      expect((err as Error).message).toBe(`${path}: record at byte ${offset}: not a valid example: has 1 label, the feature list reads label 1 (conversion)`);
    }
    const skipped = await open("skip");
    expect(skipped.info.trainRecords).toBe(9);
    expect(skipped.info.skippedRecords).toBe(1);
    expect(skipped.info.skippedSummary).toBe(
      `1 bad record skipped, 9 samples kept: 1 x not a valid example: has 1 label, the feature list reads label 1 (conversion); first: ${path}: record at byte ${offset}: not a valid example: has 1 label, the feature list reads label 1 (conversion)`,
    );
  });

  it("data of one label read with a list of two: the first record's error carries no framing hint, and skip counts every record under one reason", async () => {
    const ss = samples.slice(0, 10).map((s) => ({ ...s, labels: [1] }));
    const { path, open } = monolithFile("instance", ss, two.featureListConfig("fid_v1"));
    await expect(open()).rejects.toThrow(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: record at byte 0: not a valid instance: has 1 label, the feature list reads label 1 \\(conversion\\)$`));
    // The pass's first record not fitting the list is said as the list's problem (exit 2), with a hint to check it, not to skip.
    const first = await open().then(() => null, (e: unknown) => e);
    expect(ComputeErrors.is(first, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
    expect((first as { exitCode: number }).exitCode).toBe(2);
    expect((first as { hint?: string }).hint).toBe("the first record read does not fit --feature-list: check the list against the data (if only some records are like it, --on-bad-record=skip counts and skips them)");
    const err = await open("skip").then(() => null, (e: unknown) => e);
    // Every record bad: no samples, and the reason once, counted 10 times (the first record's had read as another reason).
    expect((err as Error).message).toContain("10 x not a valid instance: has 1 label, the feature list reads label 1 (conversion); no sample kept from ");
    expect((err as Error).message).toContain(" (is it in the format and framing given, with the labels the feature list reads?); first: ");
  });

  it("in an ExampleBatch, the message names the example; the whole batch is skipped (taken whole or not at all)", async () => {
    const ss = samples.slice(0, 200).map((s, i) => (i === 103 ? { ...s, labels: [] } : s));
    const { path, open } = monolithFile("examplebatch", ss, two.featureListConfig("fid_v2"));
    const offset = encodePbRecords(encode("examplebatch", ss.slice(0, 100)), PB_FILE_DEFAULTS).length;
    await expect(open()).rejects.toThrow(`${path}: record at byte ${offset}: not a valid examplebatch: example 3 of the batch has 0 labels, the feature list reads label 0 (click)`);
    const skipped = await open("skip");
    expect(skipped.info.trainRecords).toBe(100);
    expect(skipped.info.skippedRecords).toBe(1);
  });
});

describe("Parquet with a label column per task", () => {
  /** A Parquet click is 0 or 1, as a TSV's is (Monolith's counts and -1s are Monolith's own rule). */
  const parquetClick = (i: number) => [0, 1, 1, 0][i % 4]!;
  type Cols = { is_click: (number | null)[]; watch: (number | null)[] };
  function parquet(n: number, damage?: (c: Cols) => void, labelType: "DOUBLE" | "STRING" = "DOUBLE", drop?: string): string {
    const cols: Cols = { is_click: [], watch: [] };
    const dense: (number | null)[][] = Array.from({ length: 13 }, () => []);
    const cats: string[][] = Array.from({ length: 26 }, () => []);
    for (let i = 0; i < n; i++) {
      const f = one.tsvLine("train", i).split("\t");
      cols.is_click.push(parquetClick(i));
      cols.watch.push(watch(i));
      for (let j = 0; j < 13; j++) dense[j]!.push(f[1 + j] === "" ? null : Number(f[1 + j]));
      for (let k = 0; k < 26; k++) cats[k]!.push(f[14 + k]!);
    }
    damage?.(cols);
    const path = join(dir, `labels-${Math.random()}.parquet`);
    const columnData = [
      { name: "is_click", data: cols.is_click, type: "DOUBLE" as const },
      labelType === "STRING" ? { name: "watch", data: cols.watch.map((w) => (w === null ? null : String(w === 0.5 ? "n/a" : w))), type: "STRING" as const } : { name: "watch", data: cols.watch, type: "DOUBLE" as const },
      ...dense.map((data, j) => ({ name: `I${j + 1}`, data, type: "DOUBLE" as const })),
      ...cats.map((data, k) => ({ name: `C${k + 1}`, data, type: "STRING" as const })),
    ].filter((c) => c.name !== drop);
    writeFileSync(path, new Uint8Array(parquetWriteBuffer({ columnData })));
    return path;
  }
  const { label: _l, ...bytesList } = one.featureListConfig("bytes");
  const list = compileFeatureList({ ...bytesList, labels: [{ name: "click", column: "is_click", loss: "bce", weight: 1 }, { name: "watch_seconds", column: "watch", loss: "mse", weight: 1 }] }, "test");
  const open = (path: string, onBadRecord: "fail" | "skip" = "fail") => ParquetSource.open({ paths: [path], featureList: list, evalFraction: 0, onBadRecord });

  it("reads a bce and an mse column named in the list into labels [B, 2]", async () => {
    const src = await open(parquet(60));
    expect(src.info.tasks).toEqual([{ name: "click", loss: "bce", weight: 1 }, { name: "watch_seconds", loss: "mse", weight: 1 }]);
    const got = batchLabels(src, 60);
    expect(got.shape).toEqual([60, 2]);
    expect(got.data).toEqual(Array.from({ length: 60 }, (_, i) => [parquetClick(i), watch(i)]).flat());
  });

  it("a bce label other than 0 or 1 (a count, a -1) is a bad row naming the value and the task; mse takes any number", async () => {
    for (const v of [2.5, -1, 2]) {
      const path = parquet(10, (c) => (c.is_click[4] = v));
      await expect(open(path)).rejects.toThrow(`${path}: row 4: label column 'is_click' holds ${v}, expected 0 or 1 (task 'click' is a binary one, loss bce)`);
    }
    const src = await open(parquet(10, (c) => (c.watch[4] = -7.5)));
    expect(batchLabels(src, 10).data.slice(8, 10)).toEqual([parquetClick(4), -7.5]);
  });

  it("a file lacking a declared label column is refused in one line naming file and column", async () => {
    const path = parquet(10, undefined, "DOUBLE", "watch");
    const err = await open(path).catch((e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
    expect((err as Error).message).toBe(`${path}: the feature list names columns the Parquet file lacks: watch`);
  });

  it("a null label names file, row and column: fail stops there, skip counts the row", async () => {
    const path = parquet(30, (c) => (c.watch[12] = null));
    await expect(open(path)).rejects.toThrow(new RegExp(`^${path}: row 12: label column 'watch' is null$`));
    const src = await open(path, "skip");
    expect(src.info.trainRecords).toBe(29);
    expect(src.info.skippedRecords).toBe(1);
    expect(src.info.skippedSummary).toBe(`1 bad record skipped, 29 samples kept: 1 x label column 'watch' is null; first: ${path}: row 12: label column 'watch' is null`);
    // The row is gone whole: the next row's labels follow row 11's.
    expect(batchLabels(src, 13).data.slice(22, 26)).toEqual([parquetClick(11), watch(11), parquetClick(13), watch(13)]);
  });

  it("a label that is not a number names file, row, column and value; a column of strings is refused before any row", async () => {
    const nan = parquet(10, (c) => (c.is_click[3] = Number.NaN));
    await expect(open(nan)).rejects.toThrow(new RegExp(`^${nan}: row 3: label column 'is_click' holds NaN, expected a number$`));
    const text = parquet(10, undefined, "STRING");
    const err = await open(text).catch((e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
    expect((err as Error).message).toBe(`${text}: column 'watch' (label 'watch_seconds') holds string values; a label column holds numbers or booleans, one per row`);
  });

  it("fails compute's start with that line under --on-bad-record fail, the default", async () => {
    const path = parquet(20, (c) => (c.is_click[5] = null));
    const listPath = join(dir, "two-labels.json");
    writeFileSync(listPath, JSON.stringify({ ...bytesList, labels: list.labels.map(({ name, column, loss }) => ({ name, column, loss })) }));
    const c = loadConfig(["--data", path, "--format", "parquet", "--feature-list", listPath], {})!;
    const err = await openSource(c, createLogger("compute-test", "silent")).then(() => null, (e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_RECORD")).toBe(true);
    expect((err as Error).message).toBe(`${path}: row 5: label column 'is_click' is null`);
    const skip = loadConfig(["--data", path, "--format", "parquet", "--feature-list", listPath, "--on-bad-record", "skip"], {})!;
    expect((await openSource(skip, createLogger("compute-test", "silent"))).info.skippedRecords).toBe(1);
  });
});

describe("Criteo TSV stays single-label", () => {
  it("refuses a feature list that declares labels or another layout; one of Criteo's layout gives its slots dims and pooling", async () => {
    const tsv = join(dir, "one.tsv");
    writeFileSync(tsv, Array.from({ length: 20 }, (_, i) => one.tsvLine("train", i)).join("\n") + "\n");
    const multi = join(dir, "criteo-labels.json");
    writeFileSync(multi, JSON.stringify(two.featureListConfig("bytes")));
    const err = await openSource(loadConfig(["--data", tsv, "--feature-list", multi], {})!, createLogger("compute-test", "silent")).then(() => null, (e: unknown) => e);
    expect(ComputeErrors.is(err, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
    expect((err as Error).message).toBe(`--format criteo has one label (a line's first field), but --feature-list ${multi} declares "labels": several labels need Parquet or Monolith files`);
    const single = join(dir, "criteo-label.json");
    const layout = one.featureListConfig("bytes");
    layout.slots[0]!.dim = 4;
    layout.slots[1]!.pooling = "mean";
    writeFileSync(single, JSON.stringify(layout));
    const src = await openSource(loadConfig(["--data", tsv, "--feature-list", single], {})!, createLogger("compute-test", "silent"));
    expect("info" in src && src.info.trainRecords).toBe(18);
    expect(src.info.slotDims?.slice(0, 3)).toEqual([4, 0, 0]);
    expect(src.info.slotPooling?.slice(0, 3)).toEqual(["", "mean", ""]);
    // A list of other features (it used to be ignored: the job trained C1..C26 and I1..I13 whatever it said).
    const refused = async (config: unknown) => {
      const path = join(dir, `criteo-other-${Math.random()}.json`);
      writeFileSync(path, JSON.stringify(config));
      const e = await openSource(loadConfig(["--data", tsv, "--feature-list", path], {})!, createLogger("compute-test", "silent")).then(() => null, (x: unknown) => x);
      expect(ComputeErrors.is(e, "COMPUTE_ERR_BAD_CONFIG")).toBe(true);
      const message = (e as Error).message;
      expect(message.startsWith(`--format criteo reads Criteo's fixed layout (C1..C26 hashed from bytes into slots 1..26, I1..I13 as log1p counts), but --feature-list ${path} differs: `)).toBe(true);
      expect(message.endsWith("; give a list of that layout to set slot dims or pooling (pangea gen-data --format criteo --feature-list-out writes one), or leave --feature-list out")).toBe(true);
      return message;
    };
    expect(await refused({ slots: [{ name: "user_id", slot: 1, type: "bytes" }], dense: [{ name: "price" }] })).toContain("differs: it declares 1 slot, the layout 26;");
    expect(await refused(one.featureListConfig("fid_v2"))).toContain("differs: its slots[0] is 'C1' (slot 1, type fid_v2), the layout's 'C1' (slot 1, type bytes);");
    expect(await refused({ ...one.featureListConfig("bytes"), label: { index: 2, column: "click" } })).toContain("differs: its label reads index 2, column 'click'; a Criteo line's label is its first field (leave \"label\" out);");
    const noLog = one.featureListConfig("bytes");
    noLog.dense![2]!.transform = "none";
    expect(await refused(noLog)).toContain("differs: its dense[2] is 'I3' (size 1, transform none), the layout's 'I3' (size 1, transform log1p);");
  });

  it("--synthetic-tasks is refused beside --data", async () => {
    const err = await openSource(loadConfig(["--data", join(dir, "one.tsv"), "--synthetic-tasks", "2"], {})!, createLogger("compute-test", "silent")).then(() => null, (e: unknown) => e);
    expect((err as Error).message).toBe("--synthetic-tasks is for the built-in synthetic data; a feature list's labels declare the tasks of --data or Kafka records");
  });
});

describe("Kafka records with several labels (the test broker fixture)", () => {
  let broker: KafkaFixtureBroker;
  let source: KafkaSource | undefined;
  beforeAll(async () => {
    process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1";
    broker = await KafkaFixtureBroker.start({ defaultPartitions: 1 });
  });
  afterAll(async () => {
    await source?.close();
    await broker?.stop();
  });

  it("an Example with a click and a watch time becomes one row of labels [B, 2]; one lacking a label is skipped and counted", async () => {
    const topic = "pangea-two-labels";
    const ss = samples.slice(0, 20).map((s, i) => ({ ...s, labels: i === 7 ? [1] : [rawClick(i), watch(i)] }));
    const kafka = new Kafka({ clientId: "t", brokers: [broker.address], logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: ss.map((s) => ({ value: Buffer.from(encodeExample(s)) })) });
    await producer.disconnect();
    source = await KafkaSource.open({
      brokers: [broker.address], topic, groupId: "pangea-two-labels", message: "example",
      featureList: compileFeatureList({ ...unlabelled, labels: [{ name: "click", loss: "bce", weight: 1 }, { name: "watch_seconds", loss: "mse", weight: 1 }] }, "test"),
      onBadRecord: "skip", maxQueued: 1000, idleTimeoutMs: 1000, log: createLogger("kafka-test", "silent"),
    });
    expect(source.info.tasks).toEqual([{ name: "click", loss: "bce", weight: 1 }, { name: "watch_seconds", loss: "mse", weight: 1 }]);
    const batch = (await source.nextBatch(19, () => false))!;
    expect(batch.block.count).toBe(19);
    const kept = ss.map((_, i) => i).filter((i) => i !== 7);
    expect(Array.from(batch.block.labels)).toEqual(kept.flatMap((i) => [rawClick(i) > 0 ? 1 : 0, watch(i)]));
    batch.ack();
    expect(source.stats().skipped).toBe(1);
    const msg = decodeMessage(encodeBatch("test", batch.block, source.info.slotIds, "train", 0, 0), MessageType.TRAINING_BATCH);
    expect(readFloat32(msg.payload.labels, "labels").shape).toEqual([19, 2]);
  });

  it("an ExampleBatch message with an example lacking a label is skipped whole, none of its examples trained on", async () => {
    const topic = "pangea-two-labels-batch";
    const ss = samples.slice(0, 30).map((s, i) => ({ ...s, labels: i === 14 ? [1] : [rawClick(i), watch(i)] }));
    const kafka = new Kafka({ clientId: "t", brokers: [broker.address], logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [0, 10, 20].map((at) => ({ value: Buffer.from(encodeExampleBatch(ss.slice(at, at + 10))) })) });
    await producer.disconnect();
    const batched = await KafkaSource.open({
      brokers: [broker.address], topic, groupId: "pangea-two-labels-batch", message: "examplebatch",
      featureList: compileFeatureList({ ...unlabelled, labels: [{ name: "click", loss: "bce", weight: 1 }, { name: "watch_seconds", loss: "mse", weight: 1 }] }, "test"),
      onBadRecord: "skip", maxQueued: 1000, idleTimeoutMs: 1000, log: createLogger("kafka-test", "silent"),
    });
    try {
      const batch = (await batched.nextBatch(30, () => false))!;
      const kept = ss.map((_, i) => i).filter((i) => i < 10 || i >= 20);
      expect(batch.block.count).toBe(20);
      expect(Array.from(batch.block.labels)).toEqual(kept.flatMap((i) => [rawClick(i) > 0 ? 1 : 0, watch(i)]));
      expect(batched.stats().skipped).toBe(1);
    } finally {
      await batched.close();
    }
  });
});
