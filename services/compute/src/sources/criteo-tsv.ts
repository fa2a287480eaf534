import { readFileSync } from "node:fs";
import { printableBytes } from "@pangea/kit";
import { ComputeErrors } from "../errors.js";
import { CRITEO_NUM_DENSE, CRITEO_NUM_SLOTS, CRITEO_SLOT_BASE, criteoDenseName, criteoSlotName, hashedIdV2, normalizeCount, parseCount } from "@pangea/features";
import type { DataSource, RecordBlock, SourceDescription, SplitName } from "./source.js";
import { compressionFromName, decompress, type Compression } from "../formats/compression.js";
import { BadRecords, type BadRecordPolicy } from "./bad-records.js";

/** A line that does not parse; the caller adds where it is. */
class LineError extends Error {}

const FIELDS = 1 + CRITEO_NUM_DENSE + CRITEO_NUM_SLOTS;
const TAB = 9;
const LF = 10;
const CR = 13;

function fieldName(f: number): string {
  if (f === 0) return "label";
  return f <= CRITEO_NUM_DENSE ? criteoDenseName(f - 1) : criteoSlotName(f - 1 - CRITEO_NUM_DENSE);
}

export interface CriteoOptions {
  /** The files, read in this order as one sequence of records. */
  paths: readonly string[];
  /** Fraction of records, taken from the end of the last file, held out for evaluation. */
  evalFraction: number;
  /** How the files are compressed; auto: by each file's name (.gz, .zst, ...). */
  compression?: Compression | "auto";
  slotBase?: number;
  onBadRecord?: BadRecordPolicy;
}

/**
 * Criteo's TSV (label, I1..I13 integer counts, C1..C26 categorical tokens,
 * any field but the label may be empty), one or more files (e.g. one per
 * day, gzipped), parsed from bytes into columns held in memory. The last
 * evalFraction of the records form the eval split.
 */
export class CriteoTsvSource implements DataSource {
  readonly info: SourceDescription;
  private labels = new Float32Array(0);
  private dense = new Float32Array(0);
  private ids = new Uint32Array(0);
  private readonly trainCount: number;
  private n = 0;

  constructor(opts: CriteoOptions) {
    const slotBase = opts.slotBase ?? CRITEO_SLOT_BASE;
    const bad = new BadRecords(opts.onBadRecord ?? "fail");
    for (const path of opts.paths) this.readFile(path, opts.compression ?? "auto", slotBase, bad);
    const n = this.n;
    const files = opts.paths.length === 1 ? opts.paths[0]! : `${opts.paths.length} files (${opts.paths[0]} .. ${opts.paths[opts.paths.length - 1]})`;
    if (n === 0) throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `${opts.paths.length === 1 ? `data file ${files}` : files} has no records${bad.skipped ? ` (${bad.summary()})` : ""}`);
    this.labels = this.labels.subarray(0, n);
    this.dense = this.dense.subarray(0, n * CRITEO_NUM_DENSE);
    this.ids = this.ids.subarray(0, n * CRITEO_NUM_SLOTS * 2);
    const evalCount = Math.min(n - 1, Math.round(n * opts.evalFraction));
    this.trainCount = n - evalCount;
    this.info = {
      description: `Criteo TSV ${files} (${n} records)`,
      numDense: CRITEO_NUM_DENSE,
      slotIds: Array.from({ length: CRITEO_NUM_SLOTS }, (_, s) => slotBase + s),
      trainRecords: this.trainCount,
      evalRecords: evalCount,
      skippedRecords: bad.skipped,
      skippedSummary: bad.summary(),
    };
  }

  private readFile(path: string, compression: Compression | "auto", slotBase: number, bad: BadRecords): void {
    let raw: Buffer;
    try {
      raw = readFileSync(path);
    } catch (err) {
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot read data file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const data = decompress(raw, compression === "auto" ? compressionFromName(path) : compression, path);
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let lines = 0;
    for (let i = 0; i < bytes.length; i++) if (bytes[i] === LF) lines++;
    if (bytes.length > 0 && bytes[bytes.length - 1] !== LF) lines++;
    this.reserve(this.n + lines);
    let lineNo = 0;
    let pos = 0;
    while (pos < bytes.length) {
      lineNo++;
      let end = bytes.indexOf(LF, pos);
      if (end < 0) end = bytes.length;
      let lineEnd = end;
      if (lineEnd > pos && bytes[lineEnd - 1] === CR) lineEnd--;
      if (lineEnd > pos) {
        try {
          this.parseLine(bytes, pos, lineEnd, this.n, this.labels, this.dense, this.ids, slotBase);
          this.n++;
        } catch (err) {
          if (!(err instanceof LineError)) throw err;
          bad.record(`${path}:${lineNo} (byte ${pos})`, err.message);
        }
      }
      pos = end + 1;
    }
  }

  /** Room for n records, kept (grown by half again at least) across files. */
  private reserve(n: number): void {
    if (n <= this.labels.length) return;
    const cap = Math.max(n, Math.ceil(this.labels.length * 1.5));
    const grow = <A extends Float32Array | Uint32Array>(a: A, make: (len: number) => A, per: number): A => {
      const b = make(cap * per);
      b.set(a.subarray(0, this.n * per));
      return b;
    };
    this.labels = grow(this.labels, (l) => new Float32Array(l), 1);
    this.dense = grow(this.dense, (l) => new Float32Array(l), CRITEO_NUM_DENSE);
    this.ids = grow(this.ids, (l) => new Uint32Array(l), CRITEO_NUM_SLOTS * 2);
  }

  private parseLine(
    b: Buffer, start: number, end: number, r: number,
    labels: Float32Array, dense: Float32Array, ids: Uint32Array, slotBase: number,
  ): void {
    let f = 0;
    let fs = start;
    for (let i = start; i <= end; i++) {
      if (i < end && b[i] !== TAB) continue;
      if (f >= FIELDS) throw new LineError(`more than ${FIELDS} tab-separated fields`);
      if (f === 0) {
        if (i - fs !== 1 || (b[fs] !== 48 && b[fs] !== 49)) {
          throw new LineError(`label '${printableBytes(b.subarray(fs, i))}' must be 0 or 1`);
        }
        labels[r] = b[fs] - 48;
      } else if (f <= CRITEO_NUM_DENSE) {
        const count = parseCount(b, fs, i);
        if (Number.isNaN(count)) throw new LineError(`field ${fieldName(f)} '${printableBytes(b.subarray(fs, i))}' is not an integer`);
        dense[r * CRITEO_NUM_DENSE + f - 1] = normalizeCount(count);
      } else {
        hashedIdV2(b, fs, i, slotBase + f - 1 - CRITEO_NUM_DENSE, ids, 2 * (r * CRITEO_NUM_SLOTS + f - 1 - CRITEO_NUM_DENSE));
      }
      f++;
      fs = i + 1;
    }
    if (f !== FIELDS) throw new LineError(`expected ${FIELDS} tab-separated fields (label, I1-I13, C1-C26), got ${f}`);
  }

  read(split: SplitName, start: number, count: number, block: RecordBlock): void {
    const base = split === "train" ? start : this.trainCount + start;
    const S = CRITEO_NUM_SLOTS;
    block.labels.set(this.labels.subarray(base, base + count));
    block.weights.fill(1, 0, count);
    block.dense.set(this.dense.subarray(base * CRITEO_NUM_DENSE, (base + count) * CRITEO_NUM_DENSE));
    if (block.idWords.length < count * S * 2) block.idWords = new Uint32Array(count * S * 2);
    block.idWords.set(this.ids.subarray(base * S * 2, (base + count) * S * 2));
    for (let c = 0; c <= count * S; c++) block.cellOffsets[c] = c;
    block.count = count;
    block.nnz = count * S;
  }
}
