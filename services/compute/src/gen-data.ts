import { createWriteStream, renameSync, rmSync, writeFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { dirname, resolve } from "node:path";
import type { Writable } from "node:stream";
import { createDeflate, createGzip } from "node:zlib";
import { z } from "zod";
import { seedNumber, UsageError, makeDirs, nonNegativeInt, unwritableFileReason, parseConfig, positiveInt, runMain, usageText, type FlagTable } from "@pangea/kit";
import { SyntheticSource } from "./sources/synthetic.js";
import { ComputeErrors } from "./errors.js";
import { encodeTfRecords } from "./formats/tfrecord.js";
import { encodePbRecords, PB_FILE_DEFAULTS, sortIdByDefault } from "./formats/pb-framing.js";
import { compressSnappyBlocks, compressionFromName, NAME_ENDING } from "./formats/compression.js";
import { fileWriter, ParquetWriter, schemaFromColumnData } from "hyparquet-writer";
import { encodeExample, encodeExampleBatch, encodeInstance, type PlainSample } from "@pangea/monolith";

const FLAGS: FlagTable = {
  out: { description: "file to write" },
  records: { description: "number of records (samples)", default: "100000" },
  seed: { description: "seed of the synthetic data and of the model that labels it: another seed is another data set, not more of one", default: "42" },
  format: { description: "criteo (TSV), instance, example, examplebatch or parquet", default: "criteo" },
  framing: { description: "pb or tfrecord (Monolith formats)", default: "pb" },
  compression: { description: "auto (by --out's name, as compute reads it: .gz gzip, .zz/.zlib zlib, .sz/.snappy snappy, else none), none, gzip, zlib or snappy (snappy: Monolith formats)", default: "auto" },
  "batch-size": { description: "examples per ExampleBatch", default: "256" },
  "feature-list-out": { description: "also write the feature list that reads the file back (JSON)" },
  tasks: { description: "labels per record: 1 (click) or 2 (click and conversion, as compute's --synthetic-tasks 2); 2 needs a Monolith format or parquet", default: "1" },
  "row-group-rows": { description: "rows per Parquet row group, 100 or more (the first group holds at most 1,000; compute decodes a group whole: about 2 KB a row, so 8000 fits --max-memory-mb 16)", default: "100000" },
};

const schema = z.object({
  out: z.string({ message: "expected a file path" }).min(1, "expected a file path"),
  records: positiveInt("a positive record count").default(100_000),
  seed: seedNumber().default(42),
  format: z.enum(["criteo", "instance", "example", "examplebatch", "parquet"], { message: "expected criteo, instance, example, examplebatch or parquet" }).default("criteo"),
  framing: z.enum(["pb", "tfrecord"], { message: "expected pb or tfrecord" }).default("pb"),
  compression: z.enum(["auto", "none", "gzip", "zlib", "snappy"], { message: "expected auto, none, gzip, zlib or snappy" }).default("auto"),
  batchSize: positiveInt("a positive batch size").default(256),
  featureListOut: z.string().min(1).optional(),
  tasks: z.enum(["1", "2"], { message: "expected 1 or 2" }).default("1").transform(Number),
  // Each group adds to the footer the writer holds to the end: 5,000 groups of one row took 539 MB and a 20 MB file.
  rowGroupRows: positiveInt("a row count of 100 or more").refine((n) => n >= 100, "expected a row count of 100 or more").default(100_000),
});

const usage = () => usageText("pangea gen-data", "Write the built-in synthetic Criteo-like data set as a Criteo TSV file, Monolith Instance/Example/ExampleBatch records or a Parquet file.", FLAGS);

/**
 * Checked before the data is generated, and the file's directory made: a
 * path that cannot be written is a usage error (exit 2) naming the flag, not
 * a failure after the work.
 */
function prepareOutput(flag: string, path: string): void {
  const problem = unwritableFileReason(path);
  if (problem) throw new UsageError(`${flag} ${problem}`);
  makeDirs(dirname(path));
}

/** The error of a file gen-data cannot write: it names `out`, the file asked for (not its partial file). */
function cannotWrite(out: string, err: unknown): Error {
  return ComputeErrors.create("COMPUTE_ERR_WRITE", `cannot write ${out}: ${(err as Error).message}`);
}

/** Writes `data` to `path`; an error names `out` (the file asked for, when `path` is its partial file). */
function writeOrFail(path: string, data: Uint8Array | string, out = path): void {
  try {
    writeFileSync(path, data);
  } catch (err) {
    throw cannotWrite(out, err);
  }
}

/** Records generated, framed and written per chunk: what gen-data holds at once, whatever --records is. */
const CHUNK_RECORDS = 4096;

/**
 * Writes `chunks` to `path` as they come, through gzip or zlib when asked; an error names `out`, the file asked for.
 * Each chunk is written before the next is made, so memory holds one chunk and the stream's buffer.
 */
async function writeChunks(path: string, out: string, compression: "none" | "gzip" | "zlib", chunks: Iterable<Uint8Array | string>): Promise<void> {
  const file = createWriteStream(path);
  const failed = new Promise<never>((_, reject) => file.on("error", (err) => reject(cannotWrite(out, err))));
  // A failure before anything waits on it (the file cannot be opened) is caught where the writes wait.
  failed.catch(() => {});
  const stream: Writable = compression === "none" ? file : compression === "gzip" ? createGzip() : createDeflate();
  if (stream !== file) stream.pipe(file);
  let written = 0;
  for (const chunk of chunks) {
    if (!stream.write(chunk)) await Promise.race([new Promise<void>((r) => stream.once("drain", () => r())), failed]);
    written += chunk.length;
    // About every 64 MiB of data (as bytes or characters): the garbage of the chunks before is collected.
    if (written >= 64 << 20) {
      collectGarbage();
      written = 0;
    }
  }
  // end's callback also runs when the stream failed (e.g. the file could not be opened): only the file's 'finish' means written.
  const finished = new Promise<void>((r) => file.once("finish", () => r()));
  stream.end();
  await Promise.race([finished, failed]);
}

/** The TSV's lines, CHUNK_RECORDS to a chunk. */
function* tsvChunks(source: SyntheticSource, records: number): Generator<string> {
  for (let i = 0; i < records; i += CHUNK_RECORDS) {
    const lines: string[] = [];
    for (let k = i; k < Math.min(records, i + CHUNK_RECORDS); k++) lines.push(source.tsvLine("train", k));
    yield `${lines.join("\n")}\n`;
  }
}

/**
 * The Monolith records, framed, about CHUNK_RECORDS samples to a chunk (whole ExampleBatches); with snappy, each
 * chunk is a block of its own (the block framing's files are blocks end to end, as Hadoop's writer makes them).
 */
function* monolithChunks(source: SyntheticSource, c: { records: number; format: "instance" | "example" | "examplebatch"; framing: "pb" | "tfrecord"; batchSize: number }, snappy: boolean): Generator<Uint8Array> {
  const encode = c.format === "instance" ? encodeInstance : encodeExample;
  // Framed as compute reads the format by default (--sort-id auto).
  const frame = (messages: Uint8Array[]) => (c.framing === "tfrecord" ? encodeTfRecords(messages) : encodePbRecords(messages, { ...PB_FILE_DEFAULTS, hasSortId: sortIdByDefault(c.format) }));
  const step = c.format === "examplebatch" ? Math.max(1, Math.floor(CHUNK_RECORDS / c.batchSize)) * c.batchSize : CHUNK_RECORDS;
  for (let i = 0; i < c.records; i += step) {
    const messages: Uint8Array[] = [];
    const end = Math.min(c.records, i + step);
    if (c.format === "examplebatch") {
      for (let b = i; b < end; b += c.batchSize) {
        const batch: PlainSample[] = [];
        for (let k = b; k < Math.min(end, b + c.batchSize); k++) batch.push(source.plainSample("train", k));
        messages.push(encodeExampleBatch(batch));
      }
    } else {
      for (let k = i; k < end; k++) messages.push(encode(source.plainSample("train", k)));
    }
    const framed = frame(messages);
    yield snappy ? compressSnappyBlocks(framed) : framed;
  }
}

/** Criteo's columns as Parquet, rows `from`..`to`: label, I1..I13 (nullable doubles), C1..C26 (strings, "" when missing). */
function parquetColumns(source: SyntheticSource, from: number, to: number, tasks: number) {
  const label: number[] = [];
  const conversion: number[] = [];
  const dense: (number | null)[][] = Array.from({ length: 13 }, () => []);
  const cats: string[][] = Array.from({ length: 26 }, () => []);
  for (let i = from; i < to; i++) {
    const fields = source.tsvLine("train", i).split("\t");
    label.push(Number(fields[0]));
    // The line's click is the sample's first label; the second task's label only the sample has.
    if (tasks === 2) conversion.push(source.plainSample("train", i).labels[1]!);
    for (let j = 0; j < 13; j++) dense[j]!.push(fields[1 + j] === "" ? null : Number(fields[1 + j]));
    for (let k = 0; k < 26; k++) cats[k]!.push(fields[14 + k]!);
  }
  return [
    // The feature list's labels read columns by task name (click, conversion) when there are two.
    { name: tasks === 2 ? "click" : "label", data: label, type: "INT32" as const },
    ...(tasks === 2 ? [{ name: "conversion", data: conversion, type: "INT32" as const }] : []),
    ...dense.map((data, j) => ({ name: `I${j + 1}`, data, type: "DOUBLE" as const })),
    ...cats.map((data, k) => ({ name: `C${k + 1}`, data, type: "STRING" as const })),
  ];
}

/**
 * The Parquet file, one row group at a time (hyparquet-writer's layout: a first group of 1,000 rows, then groups of
 * `groupRows`, 100,000 by default), each written to the file before the next is made; a file system error names `out`.
 */
async function writeParquet(source: SyntheticSource, path: string, c: { records: number; tasks: number; rowGroupRows: number }, out: string): Promise<void> {
  const writing = async <T>(step: () => T) => {
    try {
      return await step();
    } catch (err) {
      // The file system's refusals (a full disk, a path gone) are the write's; anything else is no write error.
      throw (err as NodeJS.ErrnoException).code ? cannotWrite(out, err) : err;
    }
  };
  const writer = await writing(() => fileWriter(path));
  let pq: ParquetWriter | null = null;
  for (let at = 0; at < c.records; ) {
    const n = Math.min(c.records - at, at === 0 ? Math.min(1_000, c.rowGroupRows) : c.rowGroupRows);
    const columnData = parquetColumns(source, at, at + n, c.tasks);
    pq ??= new ParquetWriter({ writer, schema: schemaFromColumnData({ columnData }) });
    const group = pq;
    await writing(() => group.write({ columnData, rowGroupSize: n }));
    collectGarbage();
    // A turn of the event loop between groups: a signal (Ctrl-C, the launcher gone) is handled now, not after the file.
    await new Promise((r) => setImmediate(r));
    at += n;
  }
  await writing(() => pq!.finish());
}

/**
 * A full collection, where `pangea gen-data` lets the writer ask for one (node --expose-gc): V8 otherwise lets the
 * garbage of the chunks written grow the heap towards its limit (a quarter of the machine's memory, up to 4 GiB:
 * 560 MiB for 400,000 Parquet records, measured), where the data held at once is one chunk.
 */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

runMain("pangea gen-data", async () => {
  const c = parseConfig(schema, FLAGS, process.argv.slice(2), {});
  if (!c) {
    process.stdout.write(usage());
    return;
  }
  // The file must read back as compute reads it by default (--compression auto: by its name), so a name that says one
  // compression and a flag that says another is refused rather than written unreadable.
  const named = compressionFromName(c.out);
  if (c.compression !== "auto" && named !== "none" && c.compression !== named) {
    throw new UsageError(`--compression ${c.compression} does not match --out ${c.out}, whose name says ${named} (compute reads a file by its name); give a name without that extension, or --compression ${named}`);
  }
  const compression = c.compression === "auto" ? named : c.compression;
  if (compression === "zstd") throw new UsageError(`--out ${c.out}: gen-data does not write zstd (compute reads it); write the file uncompressed and compress it with the zstd tool`);
  if (compression !== "none" && c.format === "parquet") {
    const whole = "a Parquet file is not compressed whole (its pages are, when a writer compresses them)";
    throw new UsageError(c.compression === "auto" ? `--out ${c.out}: ${whole}; give a name without the ${compression} extension` : `--compression ${compression}: ${whole}; leave --compression out for Parquet`);
  }
  if ((c.format === "criteo" || c.format === "parquet") && process.argv.slice(2).some((a) => a === "--framing" || a.startsWith("--framing="))) {
    throw new UsageError(`--framing is for the Monolith formats (instance, example, examplebatch); ${c.format === "criteo" ? "a Criteo TSV file is lines of text" : "a Parquet file has its own layout"}`);
  }
  if (compression === "snappy" && c.format === "criteo") throw new UsageError(`--out ${c.out}: gen-data writes a Criteo file plain, gzip (.gz) or zlib (.zz); snappy is for the Monolith formats`);
  if (c.format !== "parquet" && process.argv.slice(2).some((a) => a === "--row-group-rows" || a.startsWith("--row-group-rows="))) {
    throw new UsageError(`--row-group-rows is for --format parquet; a ${c.format === "criteo" ? "Criteo TSV file" : "file of Monolith records"} has no row groups`);
  }
  if (c.tasks === 2 && c.format === "criteo") throw new UsageError("--tasks 2 needs a format with several labels (instance, example, examplebatch or parquet): a Criteo line has one");
  prepareOutput("--out", c.out);
  if (c.featureListOut) {
    // The list written last would replace the data, and the line would still say it was written.
    if (resolve(c.featureListOut) === resolve(c.out)) throw new UsageError(`--feature-list-out ${c.featureListOut} is --out's file too; give the feature list its own path`);
    prepareOutput("--feature-list-out", c.featureListOut);
  }
  const source = new SyntheticSource({ seed: c.seed, evalRecords: 0, tasks: c.tasks as 1 | 2 });
  // Written under another name and renamed once whole: a run interrupted or failed (a full disk) leaves no --out that
  // reads as a smaller data set, only a partial file it removes.
  const partial = `${c.out}.partial-${process.pid}`;
  process.on("exit", () => rmSync(partial, { force: true }));
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, () => process.exit(128 + osConstants.signals[signal]));
  if (c.format === "criteo") {
    await writeChunks(partial, c.out, compression as "none" | "gzip" | "zlib", tsvChunks(source, c.records));
  } else if (c.format === "parquet") {
    await writeParquet(source, partial, c, c.out);
  } else {
    const snappy = compression === "snappy";
    await writeChunks(partial, c.out, snappy ? "none" : (compression as "none" | "gzip" | "zlib"), monolithChunks(source, { ...c, format: c.format }, snappy));
  }
  try {
    renameSync(partial, c.out);
  } catch (err) {
    throw cannotWrite(c.out, err);
  }
  if (c.featureListOut) {
    // Criteo's C columns and Parquet's string columns are hashed from their bytes; Monolith records carry ids.
    const list = source.featureListConfig(c.format === "instance" ? "fid_v1" : c.format === "parquet" || c.format === "criteo" ? "bytes" : "fid_v2");
    writeOrFail(c.featureListOut, `${JSON.stringify(list, null, 2)}\n`);
  }
  // Written as asked, but compute reads by the name: say how this file is to be read.
  const readWith = compression !== "none" && named === "none" ? ` (${compression}: read it with --compression ${compression}, or name it ${c.out}${NAME_ENDING[compression]})` : "";
  process.stdout.write(`wrote ${c.records} records to ${c.out}${readWith}\n`);
}, usage);
