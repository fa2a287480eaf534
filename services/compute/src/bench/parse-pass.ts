/**
 * One file source's start-up pass, timed (a benchmark, not a test; run by
 * scripts/bench-parse.mjs in a fresh process per measurement): opens the
 * file with --threads parse threads into an empty cache directory, then
 * serves every training record from the cache as the batch stream does
 * (read -> batch -> serialize). Prints one JSON line, with the pass's CPU
 * time (all threads) beside its wall time.
 * Usage: node parse-pass.js --format criteo|instance|example|examplebatch|parquet --file F [--feature-list L] --threads N --cache-dir D
 */
import { loadFeatureList } from "@pangea/features";
import { DEFAULT_MAX_MEMORY_MB } from "@pangea/service-flags";
import { PbFraming, sortIdByDefault } from "../formats/pb-framing.js";
import { CriteoTsvSource } from "../sources/criteo-tsv.js";
import { MonolithFilesSource, type MessageKind } from "../sources/monolith-files.js";
import { ParquetSource } from "../sources/parquet-source.js";
import type { DataSource } from "../sources/source.js";
import { affordableParseThreads } from "../sources/record-cache.js";
import { computePath } from "./serve-batches.js";

const flag = (name: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) throw new Error(`--${name} is needed`);
  return process.argv[i + 1]!;
};
const format = flag("format");
const paths = [flag("file")];
// As compute asks for them: no more workers than the budget pays for.
const parseThreads = affordableParseThreads(Number(flag("threads")), DEFAULT_MAX_MEMORY_MB);
const common = { paths, evalFraction: 0, onBadRecord: "fail" as const, cacheDir: flag("cache-dir"), memoryMb: DEFAULT_MAX_MEMORY_MB, parseThreads };

const started = performance.now();
const cpu = process.cpuUsage();
let source: DataSource;
if (format === "criteo") source = await CriteoTsvSource.open(common);
else if (format === "parquet") source = await ParquetSource.open({ ...common, featureList: loadFeatureList(flag("feature-list")) });
else {
  const message = format as MessageKind;
  const framing = new PbFraming({ hasSortId: sortIdByDefault(message), lagrangexHeader: false, kafkaDumpPrefix: false, kafkaDump: false });
  source = await MonolithFilesSource.open({ ...common, message, framing, compression: "auto", featureList: loadFeatureList(flag("feature-list")) });
}
const passSeconds = (performance.now() - started) / 1000;
// The process's CPU time, every thread's: on a machine other work loads, what the pass cost, whatever it got.
const used = process.cpuUsage(cpu);
const passCpuSeconds = (used.user + used.system) / 1e6;
const records = source.info.trainRecords;
const served = performance.now();
computePath(source, records);
const serveSeconds = (performance.now() - served) / 1000;
process.stdout.write(`${JSON.stringify({ format, threads: parseThreads, records, passSeconds, passRecordsPerSec: records / passSeconds, passRecordsPerCpuSec: records / passCpuSeconds, serveRecordsPerSec: records / serveSeconds })}\n`);
