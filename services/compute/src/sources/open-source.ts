import { resolve } from "node:path";
import { existsSync } from "node:fs";
import type { ComputeConfig } from "../config.js";
import { ComputeErrors } from "../errors.js";
import { PbFraming, sortIdByDefault } from "../formats/pb-framing.js";
import { TfRecordFraming } from "../formats/tfrecord.js";
import { CriteoTsvSource } from "./criteo-tsv.js";
import { MonolithFilesSource } from "./monolith-files.js";
import { refreshStatBuffer, type Logger } from "@pangea/kit";
import type { BatchSource } from "../server/batch-stream.js";
import { SyntheticSource } from "./synthetic.js";
import { refuseParquetFiles } from "../formats/byte-stream.js";
import { contentSample } from "./content-sample.js";
import { expandDataPaths, sharedFiles } from "./data-paths.js";
import { HeldOutFiles } from "./held-out-files.js";
import { affordableParseThreads } from "./record-cache.js";
import type { DataSource } from "./source.js";
import { FeatureErrors, criteoLayoutMismatch, loadFeatureList, type FeatureList } from "@pangea/features";

/**
 * The data source a compute configuration describes. The Kafka and Parquet
 * sources are loaded only for their formats: kafkajs and hyparquet took
 * about 80 ms of every compute's start.
 */
export async function openSource(c: ComputeConfig, log: Logger): Promise<BatchSource> {
  if (c.syntheticTasks !== 1 && (c.data || c.kafkaBrokers)) {
    throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", "--synthetic-tasks is for the built-in synthetic data; a feature list's labels declare the tasks of --data or Kafka records");
  }
  if (c.kafkaBrokers) {
    if (!c.kafkaTopic) throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", "--kafka-brokers needs --kafka-topic");
    if (c.data || c.evalData) throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", "--kafka-brokers and --data/--eval-data are exclusive: read from Kafka or from files");
    if (c.format === "criteo" || c.format === "parquet" || !c.featureList) {
      throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", "Kafka messages must be Monolith records: give --format instance, example or examplebatch and a --feature-list");
    }
    const { KafkaSource } = await import("./kafka-source.js");
    return KafkaSource.open({
      brokers: c.kafkaBrokers,
      topic: c.kafkaTopic,
      groupId: c.kafkaGroup,
      message: c.format,
      featureList: readFeatureList(c.featureList),
      onBadRecord: c.onBadRecord,
      maxQueued: 65_536,
      idleTimeoutMs: c.kafkaIdleTimeoutMs,
      log,
    });
  }
  if (!c.data) {
    if (c.evalData) throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", "--eval-data needs --data: the built-in data holds out its own records (--eval-records)");
    return new SyntheticSource({ seed: c.seed, evalRecords: c.evalRecords, tasks: c.syntheticTasks as 1 | 2 });
  }
  // Directories whose subdirectories are not read: said with the job's data warnings.
  const notes: string[] = [];
  const data = expandDataPaths(c.data, "--data", notes);
  refuseListAsData(c.featureList, data, "--data");
  // Sampled before the pass: files rewritten while it reads them then differ from the sample the next start takes.
  const sample = contentSample(data);
  if (!c.evalData) return withDataNotes(await openFiles(c, data, c.evalFraction, c.featureList ? readFeatureList(c.featureList) : null), notes, sample);
  // Held-out files: every record of --data trains, every record of --eval-data evaluates.
  const heldPaths = expandDataPaths(c.evalData, "--eval-data", notes);
  refuseListAsData(c.featureList, heldPaths, "--eval-data");
  const shared = sharedFiles(data, heldPaths);
  if (shared.length) {
    const { inA, inB } = shared[0]!;
    const which = resolve(inA) === resolve(inB) ? "which --data trains on" : `the same file as ${inA} (a link), which --data trains on`;
    throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `--eval-data names ${inB}, ${which}: held-out records must not be trained on`);
  }
  // One read of the feature list for both sets of files.
  const list = c.featureList ? readFeatureList(c.featureList) : null;
  const train = await openFiles(c, data, 0, list);
  const held = await openFiles(c, heldPaths, 0, list);
  return withDataNotes(new HeldOutFiles(train, held), notes, sample);
}

/** The source, its data warnings led by `notes` (what the data paths passed over), and its training files' content sample. */
function withDataNotes(source: DataSource, notes: readonly string[], sample: string): DataSource {
  if (notes.length) source.info.dataWarnings = [...notes, ...(source.info.dataWarnings ?? [])];
  source.info.contentSample = sample;
  return source;
}

/** Files of one format: the last evalFraction of their records held out. `list`: --feature-list, read, or null when none is given. */
async function openFiles(c: ComputeConfig, paths: string[], evalFraction: number, list: FeatureList | null): Promise<DataSource> {
  // Where the decoded records are cached, what the source may hold in memory, and the threads writing the cache (see record-cache.ts).
  const cache = { memoryMb: c.maxMemoryMb, parseThreads: affordableParseThreads(c.parseThreads, c.maxMemoryMb), ...(c.cacheDir ? { cacheDir: c.cacheDir } : {}) };
  // A Parquet file under the default --format criteo: that first, not how its feature list does not fit Criteo's layout.
  if (c.format !== "parquet") refuseParquetFiles(paths);
  if (c.format === "criteo") {
    // A Criteo line has one label, its first field; a list declaring tasks would otherwise train one task silently.
    if (list?.namedTasks) {
      throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `--format criteo has one label (a line's first field), but --feature-list ${c.featureList} declares "labels": several labels need Parquet or Monolith files`);
    }
    // A list beside Criteo TSV gives slots dims and pooling only: a groupSlot would be dropped silently.
    if (list && list.groupSlot !== null) {
      throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `--format criteo takes no groupSlot from --feature-list ${c.featureList} (only its slots' dims and pooling); GAUC needs Parquet or Monolith files`);
    }
    // The columns fix the layout; a list may only add slot dims and pooling. One of another layout would otherwise be ignored.
    const layout = list ? criteoLayoutMismatch(list.config) : null;
    if (layout) {
      throw ComputeErrors.create(
        "COMPUTE_ERR_BAD_CONFIG",
        `--format criteo reads Criteo's fixed layout (C1..C26 hashed from bytes into slots 1..26, I1..I13 as log1p counts), but --feature-list ${c.featureList} differs: ${layout}; give a list of that layout to set slot dims or pooling (pangea gen-data --format criteo --feature-list-out writes one), or leave --feature-list out`,
      );
    }
    return CriteoTsvSource.open({ paths, evalFraction, compression: c.compression, onBadRecord: c.onBadRecord, ...(list ? { featureList: list } : {}), ...cache });
  }
  if (!list) {
    throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `--format ${c.format} needs --feature-list to know which features are slots and which are dense`);
  }
  if (c.format === "parquet") {
    // Loaded on demand after the data paths were stat'ed (see refreshStatBuffer).
    refreshStatBuffer();
    return (await import("./parquet-source.js")).ParquetSource.open({ paths, featureList: list, evalFraction, onBadRecord: c.onBadRecord, ...cache });
  }
  const framing =
    c.framing === "tfrecord"
      ? new TfRecordFraming()
      : new PbFraming({ lagrangexHeader: c.lagrangexHeader, kafkaDumpPrefix: c.kafkaDumpPrefix, hasSortId: c.sortId === "auto" ? sortIdByDefault(c.format) : c.sortId, kafkaDump: c.kafkaDump });
  return MonolithFilesSource.open({ paths, message: c.format, framing, compression: c.compression, featureList: list, evalFraction, onBadRecord: c.onBadRecord, ...cache });
}

/** A feature list compute cannot use is a configuration error of compute's (exit 2), whatever the list's own code says. */
function readFeatureList(path: string): FeatureList {
  let list: FeatureList;
  try {
    list = loadFeatureList(path);
  } catch (err) {
    if (FeatureErrors.is(err)) throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", err.message, { cause: err });
    throw err;
  }
  // The orchestrator would refuse the registration after the whole pass over the data, in words about a "source description".
  if (list.numDense === 0) {
    throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `--feature-list ${path} declares no dense feature; every model takes at least one (a feature_list.conf declares slots only: the JSON form declares "dense")`);
  }
  return list;
}

/**
 * The feature list among the data files (a directory given to --data that holds it too): it would be read as records,
 * and fail as framing that does not fit, far from the cause. Refused naming it.
 */
function refuseListAsData(featureList: string | undefined, files: readonly string[], flag: string): void {
  if (!featureList || !existsSync(featureList)) return;
  const shared = sharedFiles(files, [featureList]);
  if (shared.length) throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${flag} names ${shared[0]!.inA}, the --feature-list: it is no data file; move it out of the data's directory, or name the data files alone`);
}
