import { createWriteStream, renameSync, rmSync, writeFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { dirname, resolve } from "node:path";
import type { Writable } from "node:stream";
import { createDeflate, createGzip, deflateSync, gzipSync } from "node:zlib";
import { z } from "zod";
import { seedNumber, UsageError, makeDirs, nonNegativeInt, unwritableFileReason, parseConfig, positiveInt, runMain, usageText, type FlagTable } from "@pangea/kit";
import { SyntheticSource } from "./sources/synthetic.js";
import { ComputeErrors } from "./errors.js";
import { encodeTfRecords } from "./formats/tfrecord.js";
import { encodePbRecords, PB_FILE_DEFAULTS, sortIdByDefault } from "./formats/pb-framing.js";
import { compressSnappyBlocks, compressionFromName, NAME_ENDING } from "./formats/compression.js";
import { parquetWriteBuffer } from "hyparquet-writer";
import { encodeExample, encodeExampleBatch, encodeInstance, type PlainSample } from "@pangea/monolith";

const FLAGS: FlagTable = {
  out: { description: "file to write" },
  records: { description: "number of records (samples)", default: "100000" },
  seed: { description: "seed of the synthetic data", default: "42" },
  format: { description: "criteo (TSV), instance, example, examplebatch or parquet", default: "criteo" },
  framing: { description: "pb or tfrecord (Monolith formats)", default: "pb" },
  compression: { description: "auto (by --out's name, as compute reads it: .gz gzip, .zz/.zlib zlib, .sz/.snappy snappy, else none), none, gzip, zlib or snappy (snappy: Monolith formats)", default: "auto" },
  "batch-size": { description: "examples per ExampleBatch", default: "256" },
  "feature-list-out": { description: "also write the feature list that reads the file back (JSON)" },
  tasks: { description: "labels per record: 1 (click) or 2 (click and conversion, as compute's --synthetic-tasks 2); 2 needs a Monolith format or parquet", default: "1" },
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

/** Writes the TSV to `path`; an error names `out`, the file asked for. */
async function writeTsv(source: SyntheticSource, path: string, records: number, compression: "none" | "gzip" | "zlib", out: string): Promise<void> {
  const file = createWriteStream(path);
  const failed = new Promise<never>((_, reject) =>
    file.on("error", (err) => reject(cannotWrite(out, err))),
  );
  const stream: Writable = compression === "none" ? file : compression === "gzip" ? createGzip() : createDeflate();
  if (stream !== file) stream.pipe(file);
  const chunk: string[] = [];
  for (let i = 0; i < records; i++) {
    chunk.push(source.tsvLine("train", i));
    if (chunk.length === 4096 || i === records - 1) {
      if (!stream.write(`${chunk.join("\n")}\n`)) await Promise.race([new Promise<void>((r) => stream.once("drain", () => r())), failed]);
      chunk.length = 0;
    }
  }
  // end's callback also runs when the stream failed (e.g. the file could not be opened): only the file's 'finish' means written.
  const written = new Promise<void>((r) => file.once("finish", () => r()));
  stream.end();
  await Promise.race([written, failed]);
}

/** Criteo's columns as Parquet: label, I1..I13 (nullable doubles), C1..C26 (strings, "" when missing). */
function parquetOf(source: SyntheticSource, records: number, tasks: number): ArrayBuffer {
  const label: number[] = [];
  const conversion: number[] = [];
  const dense: (number | null)[][] = Array.from({ length: 13 }, () => []);
  const cats: string[][] = Array.from({ length: 26 }, () => []);
  for (let i = 0; i < records; i++) {
    const fields = source.tsvLine("train", i).split("\t");
    label.push(Number(fields[0]));
    // The line's click is the sample's first label; the second task's label only the sample has.
    if (tasks === 2) conversion.push(source.plainSample("train", i).labels[1]!);
    for (let j = 0; j < 13; j++) dense[j]!.push(fields[1 + j] === "" ? null : Number(fields[1 + j]));
    for (let k = 0; k < 26; k++) cats[k]!.push(fields[14 + k]!);
  }
  return parquetWriteBuffer({
    columnData: [
      // The feature list's labels read columns by task name (click, conversion) when there are two.
      { name: tasks === 2 ? "click" : "label", data: label, type: "INT32" as const },
      ...(tasks === 2 ? [{ name: "conversion", data: conversion, type: "INT32" as const }] : []),
      ...dense.map((data, j) => ({ name: `I${j + 1}`, data, type: "DOUBLE" as const })),
      ...cats.map((data, k) => ({ name: `C${k + 1}`, data, type: "STRING" as const })),
    ],
  });
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
    await writeTsv(source, partial, c.records, compression as "none" | "gzip" | "zlib", c.out);
  } else if (c.format === "parquet") {
    writeOrFail(partial, new Uint8Array(parquetOf(source, c.records, c.tasks)), c.out);
  } else {
    const messages: Uint8Array[] = [];
    if (c.format === "examplebatch") {
      for (let i = 0; i < c.records; i += c.batchSize) {
        const batch: PlainSample[] = [];
        for (let k = i; k < Math.min(c.records, i + c.batchSize); k++) batch.push(source.plainSample("train", k));
        messages.push(encodeExampleBatch(batch));
      }
    } else {
      const encode = c.format === "instance" ? encodeInstance : encodeExample;
      for (let i = 0; i < c.records; i++) messages.push(encode(source.plainSample("train", i)));
    }
    // Framed as compute reads the format by default (--sort-id auto).
    const framed = c.framing === "tfrecord" ? encodeTfRecords(messages) : encodePbRecords(messages, { ...PB_FILE_DEFAULTS, hasSortId: sortIdByDefault(c.format) });
    writeOrFail(partial, compression === "gzip" ? gzipSync(framed) : compression === "zlib" ? deflateSync(framed) : compression === "snappy" ? compressSnappyBlocks(framed) : framed, c.out);
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
