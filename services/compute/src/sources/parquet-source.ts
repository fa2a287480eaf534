import { kindOf, printable } from "@pangea/kit";
import { CachedSource } from "./cached-source.js";
import { listDescription } from "./source.js";
import { parquetMetadataAsync, parquetRead, parquetSchema, type AsyncBuffer, type FileMetaData, type ParquetParsers } from "hyparquet";
import { ComputeErrors } from "../errors.js";
import { BadRecords, type BadRecordPolicy } from "./bad-records.js";
import { SampleColumns, SampleError } from "./sample-columns.js";
import { cacheSizes, openOrBuild, placeCache } from "./record-cache.js";
import { emptyDenseWarning, emptySlotsWarning, shortDenseWarning } from "./slot-coverage.js";
import { closeSync, fstatSync, read, readSync } from "node:fs";
import { openDataFile, type FileStamp } from "../formats/data-file.js";
import { compressionFromMagic, hasParquetMagic } from "../formats/compression.js";
import { DEFAULT_MAX_MEMORY_MB } from "@pangea/service-flags";
import { bigIntToWords, labelValue, normalizeCount, targetOutOfRange, type FeatureList, type SlotKind } from "@pangea/features";
import { SampleAssembler, WireError } from "@pangea/monolith";
import { GroupColumns } from "./group-columns.js";
import { chunksRead, columnTypeProblem, listColumns } from "./parquet-columns.js";
import { parquetDecompressors, READABLE_CODECS } from "../formats/parquet-codecs.js";

export interface ParquetOptions {
  paths: readonly string[];
  featureList: FeatureList;
  evalFraction: number;
  onBadRecord: BadRecordPolicy;
  /** Where the decoded rows are cached (see record-cache.ts); absent: beside the first file. */
  cacheDir?: string;
  /** What the source may hold in memory, in MiB. */
  memoryMb?: number;
}

const utf8 = new TextEncoder();

/**
 * Parquet files whose columns are named as the feature list's features:
 * slot features hold strings or bytes (type bytes, hashed), integers (type
 * int64, hashed) or fids (fid_v1/fid_v2; one id or a list); dense features
 * hold numbers; a bce label column holds 0 or 1 (checked from the schema, see parquet-columns.ts, and by row). A null
 * slot value gives the cell no id; a null dense value reads as 0. Read a
 * row group at a time into a record cache on disk, and read back by index.
 */
export class ParquetSource extends CachedSource {

  static async open(opts: ParquetOptions): Promise<ParquetSource> {
    const list = opts.featureList;
    const memoryMb = opts.memoryMb ?? DEFAULT_MAX_MEMORY_MB;
    const layout = { tasks: list.labels.length, dense: list.numDense, slots: list.slotIds.length, fixedCells: false };
    // strings: how a slot's string cells are hashed (their bytes as stored); a cache of another reading is not reused.
    const decodeKey = JSON.stringify({ source: "parquet", onBadRecord: opts.onBadRecord, list: list.config, labels: list.labels, strings: "stored-bytes" });
    const valueColumns = [...new Set([...list.labels.map((l) => l.column), ...list.denseByName.keys()])];
    const slotColumns = [...list.slotByName.keys()].filter((c) => !valueColumns.includes(c));
    const wanted = [...new Set([...list.labels.map((l) => l.column), ...list.slotByName.keys(), ...list.denseByName.keys()])];
    const place = placeCache(opts.paths, decodeKey, opts.cacheDir ?? null);
    // What decoding each file's largest row group takes (the pass holds one group's values whole), and the files of no rows.
    const groupValues: { path: string; rows: number; bytes: number }[] = [];
    const noRows: string[] = [];
    const cache = await openOrBuild(place, layout, memoryMb, async (w) => {
      const bad = new BadRecords(opts.onBadRecord, "Parquet, its columns holding what the feature list declares");
      const compressors = await parquetDecompressors();
      const columns = new SampleColumns(list);
      const asm = new SampleAssembler(list);
      const { chunkBytes } = cacheSizes(memoryMb);
      for (const path of opts.paths) {
        const { file, meta, close, unchanged } = await openParquet(path, list, wanted, place.stamps.get(path) ?? null);
        groupValues.push({ path, ...largestGroup(meta, wanted) });
        if (Number(meta.num_rows) === 0) noRows.push(path);
        try {
          // A row group at a time: what the pass holds is one group's values, not the file's. (Not part of a group: the
          // library decodes each page it reads whole, so pieces of a group made it decode its pages again and again, and
          // the garbage of that took more memory than the group: 364 MB against 208 MB for groups of 59,000 rows.)
          let groupStart = 0;
          for (const [g, group] of meta.row_groups.entries()) {
            const groupEnd = groupStart + Number(group.num_rows);
            const range = { file, metadata: meta, rowStart: groupStart, rowEnd: groupEnd };
            // The library's own words name no place: the group and its rows do.
            const where = `row group ${g} (rows ${groupStart}-${groupEnd - 1})`;
            let values: GroupColumns;
            let slots: GroupColumns;
            try {
              values = await readColumns({ ...range, columns: valueColumns, compressors });
              slots = await readColumns({ ...range, columns: slotColumns, parsers: STORED_BYTES, compressors });
            } catch (err) {
              const failure = parquetError(path, err, where);
              // Damage to a group's pages loses that group under skip, as damage to a TSV or Monolith file loses its
              // stretch: nothing of it was kept (its rows are used once all its columns are read).
              // Memory the group could not be given is no damage to it: the pass stops, saying so.
              // ("Invalid typed array length: N" is a damaged length in a page, and is damage.)
              const noMemory = err instanceof RangeError && /allocation failed/i.test(err.message);
              if (opts.onBadRecord !== "skip" || noMemory || !ComputeErrors.is(failure, "COMPUTE_ERR_BAD_FRAME")) throw failure;
              const next = g + 1 < meta.row_groups.length ? `row group ${g + 1} (row ${groupEnd})` : null;
              bad.lost(path, `: ${where}`, pageDamage(err), groupBytes(group, wanted), next, groupEnd - groupStart);
              groupStart = groupEnd;
              continue;
            }
            for (let row = groupStart; row < groupEnd; row++) {
              try {
                fillSample(values, slots, row, asm);
                columns.commit(asm);
              } catch (err) {
                if (!(err instanceof RowError || err instanceof SampleError || err instanceof WireError)) throw err;
                bad.record(path, `: row ${row}`, err.message);
              }
              if (columns.bytes >= chunkBytes) columns.spill(w);
            }
            groupStart = groupEnd;
          }
          unchanged();
        } catch (err) {
          // A file rewritten under the pass breaks its pages: the change is the cause to name.
          unchanged();
          throw err;
        } finally {
          close();
        }
      }
      columns.spill(w);
      // A file of no rows is no damage, but seldom what was meant (a day's export that wrote nothing), as an empty TSV file.
      const none = noRows.length ? [`Parquet file${noRows.length === 1 ? "" : "s"} ${noRows.join(", ")} ${noRows.length === 1 ? "holds" : "hold"} no rows: nothing was read from ${noRows.length === 1 ? "it" : "them"}`] : [];
      return { records: columns.total, skippedRecords: bad.records, skippedStretches: bad.stretches, skippedBytes: bad.lostBytes, skippedSummary: bad.summary(columns.total), ...(none.length ? { warnings: none } : {}) };
    });
    const { records, skippedSummary, slotIdCounts, denseNonzeroCounts } = cache.index;
    const empty = emptySlotsWarning(slotIdCounts, list, records, "check that each slot's column is named as in the files and holds values (a column of nulls is missing in every row)");
    const flat = emptyDenseWarning(denseNonzeroCounts, list, records, "check that each one's column is named as in the files and holds values other than 0 and null");
    // Of the pass that ran now (a reused cache decodes nothing).
    const large = largeGroupsWarning(groupValues, wanted.length, memoryMb);
    const short = shortDenseWarning(denseNonzeroCounts, list, records);
    const warnings = [empty, flat, short, large, ...(cache.index.warnings ?? [])].filter((w) => w !== null);
    if (records === 0) throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `no usable rows in ${opts.paths.join(", ")}${skippedSummary ? ` (${skippedSummary})` : ""}`);
    const evalCount = Math.min(records - 1, Math.round(records * opts.evalFraction));
    return new ParquetSource(cache, evalCount, {
      description: `Parquet ${opts.paths.join(", ")}: ${records} rows`,
      ...listDescription(list),
      ...(warnings.length ? { dataWarnings: warnings } : {}),
    });
  }

}

/**
 * What decoding a value of a row group costs the pass, in bytes: the library
 * makes an object of each string cell, and a group is decoded whole (a page
 * is decoded whole, so reading part of a group decoded its pages again and
 * again). Measured: groups of 59,000 rows of 41 columns took compute 110 MB
 * above the same records read from a Criteo TSV under --max-memory-mb 16.
 */
const DECODED_BYTES_PER_VALUE = 48;

/**
 * What a row of a list column costs beyond its values: the library makes a
 * list of each. Measured: 300,000 rows of a 4-id list took compute 92 MB more
 * than the same ids in 4 columns of one value each.
 */
const DECODED_BYTES_PER_LIST_ROW = 320;

/**
 * The row group of `meta` that takes the most to decode for the `columns` read, its rows and that estimate in bytes:
 * its values (a list cell holds several) and list rows at the costs measured above, and at least twice its columns'
 * uncompressed bytes (a page is held decompressed while its values are made of it: a few cells of hundreds of MB
 * take that much, however few values they are).
 */
export function largestGroup(meta: FileMetaData, columns: readonly string[]): { rows: number; bytes: number } {
  const read = new Set(columns);
  const lists = listColumns(meta);
  let largest = { rows: 0, bytes: 0 };
  for (const g of meta.row_groups) {
    let values = 0;
    let listRows = 0;
    let uncompressed = 0;
    for (const m of chunksRead(g, read)) {
      values += Number(m.num_values);
      uncompressed += Number(m.total_uncompressed_size);
      if (lists.has(m.path_in_schema[0]!)) listRows += Number(g.num_rows);
    }
    const bytes = Math.max(values * DECODED_BYTES_PER_VALUE + listRows * DECODED_BYTES_PER_LIST_ROW, 2 * uncompressed);
    if (bytes > largest.bytes) largest = { rows: Number(g.num_rows), bytes };
  }
  return largest;
}

/**
 * A warning naming the files whose largest row group (`rows` rows, `bytes` to decode the columns read) takes more than
 * the budget to decode, or null.
 */
export function largeGroupsWarning(files: readonly { path: string; rows: number; bytes: number }[], columns: number, memoryMb: number): string | null {
  const budget = memoryMb * 1024 * 1024;
  const large = files.filter((f) => f.bytes > budget);
  if (large.length === 0) return null;
  const worst = large.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  // Rows of the same width as the largest group's: how many fit; none, when one row alone takes more (cells of hundreds of MB).
  const perRow = worst.bytes / Math.max(1, worst.rows);
  const fits = Math.floor(budget / perRow);
  const named = large.length > 3 ? `${large.slice(0, 3).map((f) => f.path).join(", ")} and ${large.length - 3} more` : large.map((f) => f.path).join(", ");
  const advice = fits >= 1 ? `row groups of at most ${fits} rows keep within it` : `a row alone takes about ${Math.ceil(perRow / (1 << 20))} MB: cells that large are no feature's values`;
  return `Parquet file${large.length === 1 ? "" : "s"} ${named} ${large.length === 1 ? "has" : "have"} row groups of up to ${worst.rows} rows: compute decodes a group whole, about ${Math.ceil(worst.bytes / (1 << 20))} MB for the ${columns} columns read, beyond --max-memory-mb ${memoryMb}; ${advice}`;
}

/** A Parquet file's footer, checked to hold the columns the feature list reads. */
async function openParquet(path: string, list: FeatureList, wanted: readonly string[], stamp: FileStamp | null): Promise<{ file: AsyncBuffer; meta: FileMetaData; close: () => void; unchanged: () => void }> {
  const opened = openDataFile(path, stamp);
  const close = () => closeSync(opened.fd);
  // A file rewritten in place while its rows were read is half old, half new: not cached as either.
  const unchanged = () => {
    const now = fstatSync(opened.fd);
    if (now.size !== opened.stamp.size || now.mtimeMs !== opened.stamp.mtimeMs) {
      throw ComputeErrors.create("COMPUTE_ERR_DATA_CHANGED", `data file ${path} changed while its pass read it: ${opened.stamp.size} bytes, modified ${new Date(opened.stamp.mtimeMs).toISOString()} when its pass opened it; ${now.size} bytes, modified ${new Date(now.mtimeMs).toISOString()} at its end`, { hint: "start compute again once the files are complete" });
    }
  };
  try {
    notParquetReason(opened.fd, opened.stamp.size);
    const file = fileBuffer(opened.fd, opened.stamp.size);
    const meta = await parquetMetadataAsync(file).catch((err: unknown) => {
      // The library's words are about its decoder ("thrift unhandled type: 10"): the footer is what it could not read.
      // A read that failed (EIO) is no damage: passed on with its code.
      if ((err as NodeJS.ErrnoException).code) throw err;
      throw new Error(`its footer (the schema and row groups, at its end) does not decode, the file is damaged: ${(err as Error).message}`);
    });
    // The file's columns: its schema's top-level fields (not the names inside a list or struct, nor the root's).
    const top = parquetSchema(meta).children.map((c) => c.element.name);
    const present = new Set(top);
    const missing = wanted.filter((c) => !present.has(c));
    if (missing.length) {
      // A name that differs only in case is likely the one meant: names are compared as written.
      const folded = new Map(top.map((name) => [name.toLowerCase(), name]));
      const near = missing.map((c) => folded.get(c.toLowerCase())).filter((c): c is string => c !== undefined);
      const hint = near.length ? ` (it has ${near.map((c) => `'${printable(c, 80)}'`).join(", ")}: column names are compared with their case)` : "";
      throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${path}: the feature list names columns the Parquet file lacks: ${missing.join(", ")}${hint}`);
    }
    const wrongType = columnTypeProblem(meta, list);
    if (wrongType) throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${path}: ${wrongType}`);
    unreadableCodec(path, meta, wanted);
    return { file, meta, close, unchanged };
  } catch (err) {
    close();
    throw parquetError(path, err);
  }
}

/** Throws, before any row is read, when a column read is compressed with a codec compute cannot decompress (LZO). */
function unreadableCodec(path: string, meta: FileMetaData, wanted: readonly string[]): void {
  const read = new Set(wanted);
  for (const g of meta.row_groups) {
    for (const m of chunksRead(g, read)) {
      if (READABLE_CODECS.includes(m.codec)) continue;
      // Not damage: the file is sound, compute lacks the codec (COMPUTE_ERR_SOURCE, as unreadable data).
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot read Parquet file ${path}: its column '${printable(m.path_in_schema.join("."))}' is compressed with ${printable(String(m.codec))}, which compute cannot decompress (it reads ${READABLE_CODECS.join(", ")}); write the file with one of those`);
    }
  }
}

/**
 * Throws what makes the file no Parquet file at a glance (the library's own
 * words for those are about offsets in a DataView): empty, shorter than its
 * two magic numbers and footer length, or without PAR1 at both ends.
 */
function notParquetReason(fd: number, size: number): void {
  if (size === 0) throw new Error("the file is empty (0 bytes)");
  if (size < 12) throw new Error(`the file is ${size} bytes, shorter than any Parquet file (PAR1, a footer length and PAR1 are 12)`);
  const head = Buffer.alloc(4);
  const tail = Buffer.alloc(4);
  readSync(fd, head, 0, 4, 0);
  readSync(fd, tail, 0, 4, size - 4);
  if (!hasParquetMagic(head) || !hasParquetMagic(tail)) {
    const gzip = compressionFromMagic(head) === "gzip";
    if (gzip) throw new Error("the file is gzip-compressed (Parquet compresses inside the file): decompress it first");
    // Only a file that starts as Parquet and does not end so looks cut short; one that does neither is another format.
    const why = hasParquetMagic(head) ? "starts with PAR1 but does not end with it: cut short?" : hasParquetMagic(tail) ? `ends with PAR1 but starts with ${JSON.stringify(head.toString("latin1"))}` : `starts with ${JSON.stringify(head.toString("latin1"))}: another format? (--format names it)`;
    throw new Error(`it does not start and end with PAR1, as every Parquet file does (it ${why})`);
  }
}

/**
 * The Parquet file as hyparquet reads it, through the descriptor opened
 * (and checked) once: a file replaced meanwhile is not read in its place,
 * and one cut short says where.
 */
function fileBuffer(fd: number, size: number): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end = size): Promise<ArrayBuffer> {
      // The footer's offsets are the file's own word: past its end, the file was damaged or cut (and a piece joined on).
      if (end > size || start < 0) throw new Error(`its metadata points at bytes ${start}-${end}, past the file's end (${size} bytes): the file is damaged or was cut`);
      const bytes = new Uint8Array(end - start);
      for (let got = 0; got < bytes.length; ) {
        const n = await new Promise<number>((resolve, reject) => read(fd, bytes, got, bytes.length - got, start + got, (err, k) => (err ? reject(err) : resolve(k))));
        if (n === 0) throw new Error(`the file ends at byte ${start + got}, but was ${size} bytes when it was opened (it shrank while being read)`);
        got += n;
      }
      return bytes.buffer;
    },
  };
}

/**
 * Slot columns' strings are hashed as UTF-8 bytes: read as the bytes stored
 * in the file, not decoded into strings only to be encoded back (half of
 * the pass's time, with the garbage it made).
 */
const STORED_BYTES = { stringFromBytes: (bytes: Uint8Array | undefined) => bytes } as unknown as ParquetParsers;

/** A row group's values of `columns` (none: a group of no columns). */
async function readColumns(options: Parameters<typeof parquetRead>[0] & { columns: string[]; rowStart: number; rowEnd: number }): Promise<GroupColumns> {
  const out = new GroupColumns();
  if (options.columns.length === 0) return out;
  await parquetRead({ ...options, onChunk: (c) => out.add(c.columnName, c.rowStart, c.rowEnd, c.columnData as ArrayLike<unknown>) });
  return out.seal();
}

/** The stored bytes of a row group's `columns`. */
function groupBytes(group: FileMetaData["row_groups"][number], columns: readonly string[]): number {
  return chunksRead(group, new Set(columns)).reduce((sum, m) => sum + Number(m.total_compressed_size), 0);
}

function parquetError(path: string, err: unknown, where?: string): Error {
  if (ComputeErrors.is(err)) return err;
  const code = (err as NodeJS.ErrnoException).code;
  return ComputeErrors.create(code ? "COMPUTE_ERR_SOURCE" : "COMPUTE_ERR_BAD_FRAME", `cannot read Parquet file ${path}${where ? ` at ${where}` : ""}: ${code ?? pageDamage(err)}`);
}

/** The library's words for damage it met; a JavaScript range error (a damaged length or offset in a page) said as such. */
function pageDamage(err: unknown): string {
  const text = printable((err as Error).message, 200);
  return err instanceof RangeError ? `a page does not decode (${text}): its bytes are damaged` : text;
}

class RowError extends Error {}

const words = new Uint32Array(2);

/** The sample of row `row`: `values` holds the label and dense columns, `slots` the slot columns (as stored bytes when strings). */
function fillSample(values: GroupColumns, slots: GroupColumns, row: number, asm: SampleAssembler): void {
  const list = asm.list;
  asm.reset();
  for (const l of list.labels) {
    const raw = values.value(l.column, row);
    if (raw === null || raw === undefined) throw new RowError(`label column '${l.column}' is null`);
    if (Number.isNaN(labelValue(l, raw))) {
      const far = targetOutOfRange(l, raw);
      throw new RowError(far ? `label column '${l.column}' ${far}` : `label column '${l.column}' holds ${typeof raw === "string" ? JSON.stringify(raw) : String(raw)}, expected a number`);
    }
    // A click is 0 or 1, as a TSV's label must be: a 2 or a -1 taken as 1 or 0 made a job train on other labels than
    // the file's without a word (Monolith's labels keep their own rule, > 0 is a click).
    const n = Number(raw);
    if (l.loss === "bce" && n !== 0 && n !== 1) throw new RowError(`label column '${l.column}' holds ${String(raw)}, expected 0 or 1 (task '${l.name}' is a binary one, loss bce)`);
    asm.labels[l.index] = n;
  }
  for (const [name, s] of list.slotByName) {
    const v = slots.has(name) ? slots.value(name, row) : values.value(name, row);
    if (v === null || v === undefined) continue;
    // A null in a list is a missing id, as a null cell is.
    for (const item of Array.isArray(v) ? v : [v]) if (item !== null && item !== undefined) addValue(asm, name, s, item);
  }
  for (const [name, d] of list.denseByName) {
    const v = values.value(name, row);
    const cell: unknown[] = v === null || v === undefined ? [] : Array.isArray(v) ? v : [v];
    // Fewer values than the size are missing ones (0, as null is); more would be dropped without a word.
    if (cell.length > d.size) throw new RowError(`dense column '${name}' holds ${cell.length} values; the feature list declares size ${d.size}`);
    cell.forEach((x, k) => {
      // Numbers only: Number() would read "" as 0 and "0x10" as 16.
      const n = typeof x === "number" ? x : typeof x === "bigint" || typeof x === "boolean" ? Number(x) : x === null ? 0 : Number.NaN;
      if (!Number.isFinite(n)) throw new RowError(`dense column '${name}' holds ${typeof x === "number" || typeof x === "bigint" ? String(x) : kindOf(x)}, expected a number`);
      asm.dense[d.offset + k] = d.log1p ? normalizeCount(n) : n;
    });
  }
}

function addValue(asm: SampleAssembler, name: string, s: { column: number; slot: number; kind: SlotKind }, v: unknown): void {
  if (s.kind === "bytes") {
    const bytes = typeof v === "string" ? utf8.encode(v) : v instanceof Uint8Array ? v : null;
    if (!bytes) throw new RowError(`column '${name}' (type bytes) holds ${kindOf(v)}`);
    asm.addRaw(bytes, 0, bytes.length, s.column, s.slot);
    return;
  }
  let big: bigint;
  if (typeof v === "bigint") big = v;
  else if (typeof v === "number" && Number.isSafeInteger(v)) big = BigInt(v);
  else if (typeof v === "number" && Number.isInteger(v)) {
    // A DOUBLE column of ids (pandas writes integer columns with nulls so): past 2^53 nearby ids are one value.
    throw new RowError(`column '${name}' (type ${s.kind}) holds ${v}, a number beyond 2^53 in a column that is not INT64 (DOUBLE, DECIMAL), where ids are not exact (neighbouring ids become one); write the column as INT64`);
  }
  else if (v instanceof Uint8Array) {
    // Slot columns are read as their stored bytes: a string column's value comes as bytes.
    throw new RowError(`column '${name}' (type ${s.kind}) holds a string or bytes ${JSON.stringify(printable(Buffer.from(v.subarray(0, 40)).toString("utf8"), 40))}, expected an integer; a slot whose values are strings is type bytes`);
  } else throw new RowError(`column '${name}' (type ${s.kind}) holds ${typeof v === "number" ? v : kindOf(v)}, expected an integer`);
  bigIntToWords(big, words, 0);
  asm.addInteger(s, words[0]!, words[1]!);
}
