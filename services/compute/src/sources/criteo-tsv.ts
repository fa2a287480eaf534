import { readFileSync } from "node:fs";
import { printableBytes } from "@pangea/kit";
import { ComputeErrors } from "../errors.js";
import { CRITEO_NUM_DENSE, CRITEO_NUM_SLOTS, CRITEO_SLOT_BASE, criteoDenseName, criteoSlotName, hashedIdV2, normalizeCount, parseCount } from "@pangea/features";
import type { DataSource, RecordBlock, SourceDescription, SplitName } from "./source.js";
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
  path: string;
  /** Fraction of records, taken from the end of the file, held out for evaluation. */
  evalFraction: number;
  slotBase?: number;
  onBadRecord?: BadRecordPolicy;
}

/**
 * Criteo's TSV (label, I1..I13 integer counts, C1..C26 categorical tokens,
 * any field but the label may be empty), parsed from bytes into columns held
 * in memory. The last evalFraction of the records form the eval split.
 */
export class CriteoTsvSource implements DataSource {
  readonly info: SourceDescription;
  private readonly labels: Float32Array;
  private readonly dense: Float32Array;
  private readonly ids: Uint32Array;
  private readonly trainCount: number;

  constructor(opts: CriteoOptions) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(opts.path);
    } catch (err) {
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot read data file ${opts.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const slotBase = opts.slotBase ?? CRITEO_SLOT_BASE;
    const bad = new BadRecords(opts.onBadRecord ?? "fail");
    let lines = 0;
    for (let i = 0; i < bytes.length; i++) if (bytes[i] === LF) lines++;
    if (bytes.length > 0 && bytes[bytes.length - 1] !== LF) lines++;
    const labels = new Float32Array(lines);
    const dense = new Float32Array(lines * CRITEO_NUM_DENSE);
    const ids = new Uint32Array(lines * CRITEO_NUM_SLOTS * 2);
    let n = 0;
    let lineNo = 0;
    let pos = 0;
    while (pos < bytes.length) {
      lineNo++;
      let end = bytes.indexOf(LF, pos);
      if (end < 0) end = bytes.length;
      let lineEnd = end;
      if (lineEnd > pos && bytes[lineEnd - 1] === CR) lineEnd--;
      if (lineEnd > pos) {
        const where = `${opts.path}:${lineNo} (byte ${pos})`;
        try {
          this.parseLine(bytes, pos, lineEnd, n, labels, dense, ids, slotBase);
          n++;
        } catch (err) {
          if (!(err instanceof LineError)) throw err;
          bad.record(where, err.message);
        }
      }
      pos = end + 1;
    }
    if (n === 0) throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `data file ${opts.path} has no records${bad.skipped ? ` (${bad.summary()})` : ""}`);
    this.labels = labels.subarray(0, n);
    this.dense = dense.subarray(0, n * CRITEO_NUM_DENSE);
    this.ids = ids.subarray(0, n * CRITEO_NUM_SLOTS * 2);
    const evalCount = Math.min(n - 1, Math.round(n * opts.evalFraction));
    this.trainCount = n - evalCount;
    this.info = {
      description: `Criteo TSV ${opts.path} (${n} records)`,
      numDense: CRITEO_NUM_DENSE,
      slotIds: Array.from({ length: CRITEO_NUM_SLOTS }, (_, s) => slotBase + s),
      trainRecords: this.trainCount,
      evalRecords: evalCount,
      skippedRecords: bad.skipped,
      skippedSummary: bad.summary(),
    };
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
