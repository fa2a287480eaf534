import { CachedSource } from "./cached-source.js";
import { printableBytes } from "@pangea/kit";
import { ComputeErrors } from "../errors.js";
import { CRITEO_NUM_DENSE, CRITEO_NUM_SLOTS, CRITEO_SLOT_BASE, criteoDenseName, criteoSlotName, hashedIdV2, normalizeCount, parseCount } from "@pangea/features";
import { compressionFromName, type Compression } from "../formats/compression.js";
import { ByteStream } from "../formats/byte-stream.js";
import { cacheSizes, openOrBuild, placeCache, type CacheWriter } from "./record-cache.js";
import { DEFAULT_MAX_MEMORY_MB } from "@pangea/service-flags";
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
  /** Where the decoded records are cached (see record-cache.ts); absent: beside the first file. */
  cacheDir?: string;
  /** What the source may hold in memory, in MiB. */
  memoryMb?: number;
}

/**
 * Criteo's TSV (label, I1..I13 integer counts, C1..C26 categorical tokens,
 * any field but the label may be empty), one or more files (e.g. one per
 * day, gzipped), read once as a stream of lines, parsed and hashed into a
 * record cache on disk, and read back from it by index. The last
 * evalFraction of the records form the eval split.
 */
export class CriteoTsvSource extends CachedSource {

  static async open(opts: CriteoOptions): Promise<CriteoTsvSource> {
    const slotBase = opts.slotBase ?? CRITEO_SLOT_BASE;
    const compression = opts.compression ?? "auto";
    const onBadRecord = opts.onBadRecord ?? "fail";
    const memoryMb = opts.memoryMb ?? DEFAULT_MAX_MEMORY_MB;
    const layout = { tasks: 1, dense: CRITEO_NUM_DENSE, slots: CRITEO_NUM_SLOTS, fixedCells: true };
    const place = placeCache(opts.paths, JSON.stringify({ source: "criteo", compression, slotBase, onBadRecord }), opts.cacheDir ?? null);
    const cache = await openOrBuild(place, layout, memoryMb, async (w) => {
      const bad = new BadRecords(onBadRecord);
      const pass = new CriteoPass(w, slotBase, cacheSizes(memoryMb).chunkBytes);
      for (const path of opts.paths) await pass.readFile(path, compression === "auto" ? compressionFromName(path) : compression, bad);
      pass.flush();
      return { records: pass.records, skippedRecords: bad.skipped, skippedBytes: bad.lostBytes, skippedSummary: bad.summary() };
    });
    const { records: n, skippedRecords, skippedSummary } = cache.index;
    const files = opts.paths.length === 1 ? opts.paths[0]! : `${opts.paths.length} files (${opts.paths[0]} .. ${opts.paths[opts.paths.length - 1]})`;
    if (n === 0) throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `${opts.paths.length === 1 ? `data file ${files}` : files} has no records${skippedRecords ? ` (${skippedSummary})` : ""}`);
    const evalCount = Math.min(n - 1, Math.round(n * opts.evalFraction));
    return new CriteoTsvSource(cache, n - evalCount, {
      description: `Criteo TSV ${files} (${n} records)`,
      storage: cache.note,
      numDense: CRITEO_NUM_DENSE,
      slotIds: Array.from({ length: CRITEO_NUM_SLOTS }, (_, s) => slotBase + s),
      trainRecords: n - evalCount,
      evalRecords: evalCount,
      skippedRecords,
      skippedBytes: cache.index.skippedBytes,
      skippedSummary,
    });
  }

}

/** One pass over the files: lines parsed into a chunk of records, spilled to the cache when full. */
class CriteoPass {
  records = 0;
  private n = 0;
  private readonly capacity: number;
  private readonly labels: Float32Array;
  private readonly dense: Float32Array;
  private readonly ids: Uint32Array;

  constructor(
    private readonly writer: CacheWriter,
    private readonly slotBase: number,
    chunkBytes: number,
  ) {
    this.capacity = Math.max(1, Math.floor(chunkBytes / (4 * (2 + CRITEO_NUM_DENSE + 2 * CRITEO_NUM_SLOTS))));
    this.labels = new Float32Array(this.capacity);
    this.dense = new Float32Array(this.capacity * CRITEO_NUM_DENSE);
    this.ids = new Uint32Array(this.capacity * CRITEO_NUM_SLOTS * 2);
  }

  async readFile(path: string, compression: Compression, bad: BadRecords): Promise<void> {
    const stream = new ByteStream(path, compression);
    try {
      let lineNo = 0;
      // A line cut by a piece's end waits here for the rest.
      let carry: Uint8Array = new Uint8Array(0);
      /** Decompressed offset of carry[0] (or of the next piece when carry is empty). */
      let carryAt = 0;
      /** Inside a line too long to be one: its bytes are skipped up to its end. */
      let skipping = false;
      for (;;) {
        const piece = await stream.next();
        if (piece === null) break;
        const bytes = carry.length ? Buffer.concat([carry, piece]) : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
        let pos = 0;
        if (skipping) {
          const end = bytes.indexOf(LF);
          if (end < 0) {
            carryAt += bytes.length;
            continue;
          }
          lineNo++;
          pos = end + 1;
          skipping = false;
        }
        for (;;) {
          const end = bytes.indexOf(LF, pos);
          if (end < 0) break;
          lineNo++;
          this.line(bytes, pos, end, path, lineNo, carryAt + pos, bad);
          pos = end + 1;
        }
        carry = bytes.subarray(pos);
        // A line longer than any real one would grow the carry without bound: damage, not a line.
        if (carry.length > MAX_LINE_BYTES) {
          bad.lost(`${path}: byte ${carryAt + pos} (line ${lineNo + 1})`, `a line longer than ${MAX_LINE_BYTES} bytes (skipped to its end)`, carry.length, null);
          carryAt += pos + carry.length;
          carry = new Uint8Array(0);
          skipping = true;
          continue;
        }
        carryAt += pos;
      }
      // A stream cut short (a truncated gzip member) cuts its last line: the damage is reported, not that line.
      if (carry.length && !stream.damage) {
        lineNo++;
        this.line(Buffer.from(carry.buffer, carry.byteOffset, carry.byteLength), 0, carry.length, path, lineNo, carryAt, bad);
        carryAt += carry.length;
      }
      const damage = stream.damage ?? (stream.changed() ? { fileOffset: stream.size, outputOffset: carryAt, message: stream.changed()! } : null);
      if (damage) bad.lost(`${path}: byte ${damage.fileOffset} (decompressed byte ${damage.outputOffset}, after line ${lineNo})`, damage.message, Math.max(0, stream.size - damage.fileOffset), null);
    } finally {
      stream.close();
    }
  }

  private line(bytes: Buffer, pos: number, end: number, path: string, lineNo: number, at: number, bad: BadRecords): void {
    let lineEnd = end;
    if (lineEnd > pos && bytes[lineEnd - 1] === CR) lineEnd--;
    if (lineEnd === pos) return;
    try {
      parseLine(bytes, pos, lineEnd, this.n, this.labels, this.dense, this.ids, this.slotBase);
    } catch (err) {
      if (!(err instanceof LineError)) throw err;
      bad.record(`${path}:${lineNo} (byte ${at})`, err.message);
      return;
    }
    this.n++;
    this.records++;
    if (this.n === this.capacity) this.flush();
  }

  flush(): void {
    this.writer.chunk(this.n, this.labels, null, this.dense, null, this.ids);
    this.n = 0;
  }
}

/** The longest line read as one: a real Criteo line is a few hundred bytes. */
const MAX_LINE_BYTES = 1 << 20;

function parseLine(
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
