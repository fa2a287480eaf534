import { CachedSource } from "./cached-source.js";
import { ComputeErrors } from "../errors.js";
import { CRITEO_NUM_DENSE, CRITEO_NUM_SLOTS, CRITEO_SLOT_BASE, criteoFeatureListConfig, type FeatureList } from "@pangea/features";
import { listDescription } from "./source.js";
import type { Compression } from "../formats/compression.js";
import { ByteStream } from "../formats/byte-stream.js";
import type { FileStamp } from "../formats/data-file.js";
import { cacheSizes, openOrBuild, parseSizes, passThreads, placeCache, type CacheWriter } from "./record-cache.js";
import { emptyFilesWarning } from "./data-paths.js";
import type { CriteoParsed } from "./criteo-lines.js";
import { openParser } from "./parse-pool.js";
import { OrderedSteps } from "./ordered-steps.js";
import { DEFAULT_MAX_MEMORY_MB } from "@pangea/service-flags";
import { BadRecords, type BadRecordPolicy } from "./bad-records.js";

const LF = 10;

/** What a list of Criteo's layout (criteoLayoutMismatch) adds to the source's description: its slots' dims and pooling. */
function slotSettingsOf(list: FeatureList): Pick<ReturnType<typeof listDescription>, "featureList" | "slotDims" | "slotPooling"> {
  const { featureList, slotDims, slotPooling } = listDescription(list);
  return { featureList, slotDims, slotPooling };
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
  /** Threads parsing and hashing the lines when the cache is written (1: the pass's own). */
  parseThreads?: number;
  /** --feature-list: Criteo's layout (criteoLayoutMismatch), giving slots dims or pooling; absent: the layout as it is. */
  featureList?: FeatureList;
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
    const threads = passThreads(opts.paths, opts.parseThreads ?? 1, memoryMb);
    const place = placeCache(opts.paths, JSON.stringify({ source: "criteo", compression, slotBase, onBadRecord }), opts.cacheDir ?? null);
    const cache = await openOrBuild(place, layout, memoryMb, async (w) => {
      const bad = new BadRecords(onBadRecord);
      const { pieceBytes, queued } = parseSizes(memoryMb, threads);
      const parser = openParser({ kind: "criteo", slotBase }, threads);
      try {
        const pass = new CriteoPass(w, new OrderedSteps(parser, queued), cacheSizes(memoryMb).chunkBytes, pieceBytes);
        for (const path of opts.paths) await pass.readFile(path, compression, place.stamps.get(path) ?? null, bad);
        await pass.drain();
        pass.flush();
        return { records: pass.records, skippedRecords: bad.records, skippedStretches: bad.stretches, skippedBytes: bad.lostBytes, skippedSummary: bad.summary(pass.records) };
      } finally {
        await parser.close();
      }
    });
    const { records: n, skippedSummary } = cache.index;
    const files = opts.paths.length === 1 ? opts.paths[0]! : `${opts.paths.length} files (${opts.paths[0]} .. ${opts.paths[opts.paths.length - 1]})`;
    const emptyFiles = emptyFilesWarning(opts.paths, place.stamps);
    if (n === 0) {
      const why = [skippedSummary, emptyFiles ?? ""].filter(Boolean).join("; ");
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `${opts.paths.length === 1 ? `data file ${files}` : files} has no records${why ? ` (${why})` : ""}`);
    }
    const evalCount = Math.min(n - 1, Math.round(n * opts.evalFraction));
    return new CriteoTsvSource(cache, evalCount, {
      description: `Criteo TSV ${files} (${n} records)`,
      ...(opts.featureList ? slotSettingsOf(opts.featureList) : { featureList: criteoFeatureListConfig("bytes", slotBase) }),
      ...(emptyFiles ? { dataWarnings: [emptyFiles] } : {}),
      numDense: CRITEO_NUM_DENSE,
      slotIds: Array.from({ length: CRITEO_NUM_SLOTS }, (_, s) => slotBase + s),
    });
  }

}

/**
 * One pass over the files: the stream cut into pieces of whole lines, each
 * parsed and hashed by a parse thread (criteo-lines.ts), their records
 * gathered in input order into chunks spilled to the cache when full.
 */
class CriteoPass {
  records = 0;
  private n = 0;
  private readonly capacity: number;
  private readonly labels: Float32Array;
  private readonly dense: Float32Array;
  private readonly ids: Uint32Array;

  constructor(
    private readonly writer: CacheWriter,
    private readonly steps: OrderedSteps,
    chunkBytes: number,
    private readonly pieceBytes: number,
  ) {
    this.capacity = Math.max(1, Math.floor(chunkBytes / (4 * (2 + CRITEO_NUM_DENSE + 2 * CRITEO_NUM_SLOTS))));
    this.labels = new Float32Array(this.capacity);
    this.dense = new Float32Array(this.capacity * CRITEO_NUM_DENSE);
    this.ids = new Uint32Array(this.capacity * CRITEO_NUM_SLOTS * 2);
  }

  async readFile(path: string, compression: Compression | "auto", stamp: FileStamp | null, bad: BadRecords): Promise<void> {
    const stream = new ByteStream(path, compression, stamp);
    bad.compressedAs(path, stream.compression);
    const steps = this.steps;
    let before = 0;
    await steps.event(() => (before = this.records));
    /** Lines of the file merged so far (the steps advance it in input order). */
    const file = { lineNo: 0 };
    // The next piece's lines, contiguous from decompressed byte pieceAt.
    let parts: Uint8Array[] = [];
    let partsBytes = 0;
    let pieceAt = 0;
    const send = async () => {
      if (partsBytes === 0) return;
      // One copy, into a buffer of the piece's own (never the shared pool's) that the worker then takes over.
      const bytes = Buffer.allocUnsafeSlow(partsBytes);
      let filled = 0;
      for (const p of parts) filled += Buffer.from(p.buffer, p.byteOffset, p.byteLength).copy(bytes, filled);
      const at = pieceAt;
      parts = [];
      partsBytes = 0;
      await steps.piece(
        { bytes },
        [bytes.buffer as ArrayBuffer],
        `${path}: decompressed bytes ${at}..${at + bytes.length}`,
        (r: CriteoParsed) => this.merge(r, path, file, at, bad),
      );
    };
    /** Bytes for the piece; the caller sends it once it ends with a whole line. */
    const add = (b: Uint8Array, at: number) => {
      if (b.length === 0) return;
      if (partsBytes === 0) pieceAt = at;
      parts.push(b);
      partsBytes += b.length;
    };
    try {
      // A line cut by a piece's end waits here for the rest.
      let carry: Uint8Array = new Uint8Array(0);
      /** Decompressed offset of carry[0] (or of the next piece when carry is empty). */
      let carryAt = 0;
      /** Inside a line too long to be one: its bytes are skipped up to its end. */
      let skipping = false;
      for (;;) {
        const next = await stream.next();
        if (next === null) break;
        const piece = Buffer.from(next.buffer, next.byteOffset, next.byteLength);
        const pieceStart = carryAt + carry.length;
        let pos = 0;
        if (skipping) {
          const end = piece.indexOf(LF);
          if (end < 0) {
            carryAt += piece.length;
            continue;
          }
          // The skipped line ends here: it counts as a line.
          await steps.event(() => file.lineNo++);
          pos = end + 1;
          skipping = false;
          carryAt = pieceStart + pos;
        }
        const last = piece.lastIndexOf(LF);
        if (last >= pos) {
          add(carry, carryAt);
          add(piece.subarray(pos, last + 1), pieceStart + pos);
          carry = piece.subarray(last + 1);
          carryAt = pieceStart + last + 1;
          if (partsBytes >= this.pieceBytes) await send();
        } else if (carry.length) carry = Buffer.concat([carry, piece.subarray(pos)]);
        else {
          carry = piece.subarray(pos);
          carryAt = pieceStart + pos;
        }
        // A line longer than any real one would grow the carry without bound: damage, not a line.
        if (carry.length > MAX_LINE_BYTES) {
          await send();
          const at = carryAt;
          const length = carry.length;
          await steps.event(() => bad.lost(path, `: byte ${at} (line ${file.lineNo + 1})`, `a line longer than ${MAX_LINE_BYTES} bytes (skipped to its end)`, length, null));
          carryAt += carry.length;
          carry = new Uint8Array(0);
          skipping = true;
        }
      }
      // A stream cut short (a truncated gzip member) cuts its last line: the damage is reported, not that line.
      if (carry.length && !stream.damage) {
        add(carry, carryAt);
        carryAt += carry.length;
      }
      await send();
      stream.assertNotRewritten();
      const cut = stream.changed();
      const damage = stream.damage ?? (cut ? { fileOffset: stream.size, outputOffset: carryAt, message: cut.message, afterData: false, wrongOutput: false } : null);
      // A plain file's bytes are its lines' bytes: one offset says where. The line is known once the lines before are merged.
      const decompressed = (d: { outputOffset: number }) => (stream.compression === "none" ? "" : `decompressed byte ${d.outputOffset}, `);
      if (damage) await steps.event(() => bad.streamDamage(path, `byte ${damage.fileOffset} (${decompressed(damage)}after line ${file.lineNo})`, damage, stream.size));
      await steps.event(() => bad.fileRead(path, this.records - before));
    } catch (err) {
      stream.assertNotRewritten();
      throw err;
    } finally {
      stream.close();
    }
  }

  /** Merges every piece still in flight. */
  drain(): Promise<void> {
    return this.steps.drain();
  }

  /** A piece's records appended to the chunk in turn, its bad lines given to the policy with their file line and byte. */
  private merge(r: CriteoParsed, path: string, file: { lineNo: number }, at: number, bad: BadRecords): void {
    for (const e of r.errors) bad.record(path, `:${file.lineNo + e.line} (byte ${at + e.byte})`, e.message);
    file.lineNo += r.lines;
    for (let done = 0; done < r.records; ) {
      const take = Math.min(r.records - done, this.capacity - this.n);
      this.labels.set(r.labels.subarray(done, done + take), this.n);
      this.dense.set(r.dense.subarray(done * CRITEO_NUM_DENSE, (done + take) * CRITEO_NUM_DENSE), this.n * CRITEO_NUM_DENSE);
      this.ids.set(r.ids.subarray(done * CRITEO_NUM_SLOTS * 2, (done + take) * CRITEO_NUM_SLOTS * 2), this.n * CRITEO_NUM_SLOTS * 2);
      this.n += take;
      this.records += take;
      done += take;
      if (this.n === this.capacity) this.flush();
    }
  }

  flush(): void {
    this.writer.chunk(this.n, this.labels, null, this.dense, null, this.ids);
    this.n = 0;
  }
}

/** The longest line read as one: a real Criteo line is a few hundred bytes. */
const MAX_LINE_BYTES = 1 << 20;
