/**
 * Reader and compute-path throughput (a benchmark, not a test): writes the
 * synthetic data in every supported format to a temp dir, then times loading
 * each, and times the full compute path (read -> hash -> batch -> serialize)
 * for in-memory synthetic data and a loaded file. Prints one JSON line per
 * measurement. Usage: node data-pipeline.js [--records N]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { SyntheticSource } from "../sources/synthetic.js";
import { CriteoTsvSource } from "../sources/criteo-tsv.js";
import { MonolithFilesSource, type MessageKind } from "../sources/monolith-files.js";
import { ParquetSource } from "../sources/parquet-source.js";
import { RecordBlock, type DataSource } from "../sources/source.js";
import { PbFraming, PB_FILE_DEFAULTS, encodePbRecords } from "../formats/pb-framing.js";
import { TfRecordFraming, encodeTfRecords } from "../formats/tfrecord.js";
import { compressSnappyBlocks } from "../formats/compression.js";
import { encodeBatch } from "../batching/batch-encoder.js";
import { computePath } from "./serve-batches.js";
import { parquetWriteBuffer } from "hyparquet-writer";
import { createLogger } from "@pangea/kit";
import { KafkaSource } from "../sources/kafka-source.js";
import { compileFeatureList } from "@pangea/features";
import { encodeExample, encodeExampleBatch, encodeInstance } from "@pangea/monolith";

const flag = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const N = Number(flag("records") ?? 100_000);
// With a broker holding `kafka-records` Instance messages on `kafka-topic`, the Kafka reader is timed too.
const kafkaBrokers = flag("kafka-brokers");
const kafkaTopic = flag("kafka-topic");
const kafkaRecords = Number(flag("kafka-records") ?? 0);
const dir = mkdtempSync(join(tmpdir(), "pangea-bench-"));
const synthetic = new SyntheticSource({ seed: 1, evalRecords: 0 });

function report(name: string, records: number, seconds: number, extra: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ name, records, seconds: +seconds.toFixed(3), recordsPerSec: Math.round(records / seconds), ...extra })}\n`);
}

async function time<T>(fn: () => T | Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await fn();
  return [v, (performance.now() - t) / 1000];
}

const samples = Array.from({ length: N }, (_, i) => synthetic.plainSample("train", i));
const tsv = join(dir, "data.tsv");
writeFileSync(tsv, Array.from({ length: N }, (_, i) => synthetic.tsvLine("train", i)).join("\n") + "\n");
const files: [string, MessageKind, "pb" | "tfrecord", Uint8Array][] = [];
const batches: Uint8Array[] = [];
for (let i = 0; i < N; i += 256) batches.push(encodeExampleBatch(samples.slice(i, i + 256)));
const inst = samples.map(encodeInstance);
const ex = samples.map(encodeExample);
files.push(["instance.pb", "instance", "pb", encodePbRecords(inst, PB_FILE_DEFAULTS)]);
files.push(["example.pb", "example", "pb", encodePbRecords(ex, PB_FILE_DEFAULTS)]);
files.push(["examplebatch.pb", "examplebatch", "pb", encodePbRecords(batches, { ...PB_FILE_DEFAULTS, hasSortId: false })]);
files.push(["instance.tfrecord", "instance", "tfrecord", encodeTfRecords(inst)]);
files.push(["instance.pb.gz", "instance", "pb", gzipSync(encodePbRecords(inst, PB_FILE_DEFAULTS))]);
files.push(["instance.pb.snappy", "instance", "pb", compressSnappyBlocks(encodePbRecords(inst, PB_FILE_DEFAULTS))]);
for (const [name, , , data] of files) writeFileSync(join(dir, name), data);

try {
  const [, genSeconds] = await time(() => {
    const block = new RecordBlock(1024, 13, 26);
    for (let s = 0; s < N; s += 1024) synthetic.read("train", s, Math.min(1024, N - s), block);
  });
  report("synthetic generate", N, genSeconds);
  const [criteo, tsvSeconds] = await time(() => CriteoTsvSource.open({ paths: [tsv], evalFraction: 0 }));
  report("criteo tsv load", N, tsvSeconds);
  let instanceSource: DataSource | null = null;
  for (const [name, kind, framing] of files) {
    const list = compileFeatureList(synthetic.featureListConfig(kind === "instance" ? "fid_v1" : "fid_v2"), "bench");
    const [src, s] = await time(
      () =>
        MonolithFilesSource.open({
          paths: [join(dir, name)],
          message: kind,
          framing: framing === "tfrecord" ? new TfRecordFraming() : new PbFraming(name.startsWith("examplebatch") ? { ...PB_FILE_DEFAULTS, hasSortId: false } : PB_FILE_DEFAULTS),
          compression: "auto",
          featureList: list,
          evalFraction: 0,
          onBadRecord: "fail",
        }),
    );
    if (name === "instance.pb") instanceSource = src;
    report(`${name} load`, N, s);
  }
  const pq = join(dir, "data.parquet");
  const cols = { label: [] as number[], dense: Array.from({ length: 13 }, () => [] as (number | null)[]), cats: Array.from({ length: 26 }, () => [] as string[]) };
  for (let i = 0; i < N; i++) {
    const f = synthetic.tsvLine("train", i).split("\t");
    cols.label.push(Number(f[0]));
    for (let j = 0; j < 13; j++) cols.dense[j]!.push(f[1 + j] === "" ? null : Number(f[1 + j]));
    for (let k = 0; k < 26; k++) cols.cats[k]!.push(f[14 + k]!);
  }
  writeFileSync(pq, new Uint8Array(parquetWriteBuffer({
    columnData: [
      { name: "label", data: cols.label, type: "INT32" },
      ...cols.dense.map((data, j) => ({ name: `I${j + 1}`, data, type: "DOUBLE" as const })),
      ...cols.cats.map((data, k) => ({ name: `C${k + 1}`, data, type: "STRING" as const })),
    ],
  })));
  const [, pqSeconds] = await time(() => ParquetSource.open({ paths: [pq], featureList: compileFeatureList(synthetic.featureListConfig("bytes"), "bench"), evalFraction: 0, onBadRecord: "fail" }));
  report("parquet load", N, pqSeconds);

  const [bytesSyn, synPath] = await time(() => computePath(synthetic, N));
  report("compute path: synthetic -> batch -> serialize", N, synPath, { mbPerSec: +((bytesSyn / synPath) / 1e6).toFixed(1) });
  const [bytesTsv, tsvPath] = await time(() => computePath(criteo, N));
  report("compute path: loaded criteo -> batch -> serialize", N, tsvPath, { mbPerSec: +((bytesTsv / tsvPath) / 1e6).toFixed(1) });
  if (instanceSource) {
    const [, instPath] = await time(() => computePath(instanceSource!, N));
    report("compute path: loaded instances -> batch -> serialize", N, instPath);
  }
  if (kafkaBrokers && kafkaTopic && kafkaRecords > 0) {
    const log = createLogger("bench", "silent");
    const [, kafkaSeconds] = await time(async () => {
      const src = await KafkaSource.open({
        brokers: kafkaBrokers.split(","), topic: kafkaTopic, groupId: `bench-${Date.now()}`, message: "instance",
        featureList: compileFeatureList(synthetic.featureListConfig("fid_v1"), "bench"), onBadRecord: "fail",
        maxQueued: 65_536, idleTimeoutMs: 5_000, log,
      });
      let got = 0;
      while (got < kafkaRecords) {
        const b = await src.nextBatch(Math.min(1024, kafkaRecords - got), () => false);
        if (!b) throw new Error(`Kafka topic ${kafkaTopic} ran dry after ${got} of ${kafkaRecords} records`);
        encodeBatch("bench", b.block, src.info.slotIds, "train", 0, 0);
        b.ack();
        got += b.block.count;
      }
      await src.close();
    });
    report("compute path: kafka consume -> batch -> serialize", kafkaRecords, kafkaSeconds);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
