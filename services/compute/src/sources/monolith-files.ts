import { CachedSource, type CacheDescribed } from "./cached-source.js";
import { ComputeErrors } from "../errors.js";
import type { Compression } from "../formats/compression.js";
import { ByteStream } from "../formats/byte-stream.js";
import type { FileStamp } from "../formats/data-file.js";
import { forEachFrame } from "../formats/streamed-frames.js";
import { sortIdByDefault } from "../formats/pb-framing.js";
import { cacheSizes, openOrBuild, parseSizes, passThreads, placeCache, type CacheWriter, type RecordCache } from "./record-cache.js";
import { otherKindOf, trainsAs, type MessageKind, type MonolithParsed } from "./monolith-records.js";
import { openParser } from "./parse-pool.js";
import { OrderedSteps } from "./ordered-steps.js";
import { DEFAULT_MAX_MEMORY_MB } from "@pangea/service-flags";
import type { RecordFraming } from "../formats/framing.js";
import { BadRecords, type BadRecordPolicy, type FramingLoss } from "./bad-records.js";
import { SampleColumns } from "./sample-columns.js";
import { emptyDenseWarning, emptySlotsWarning, shortDenseWarning } from "./slot-coverage.js";
import { emptyFilesWarning } from "./data-paths.js";
import { listDescription, type SourceDescription } from "./source.js";
import type { FeatureList } from "@pangea/features";

export type { MessageKind };

/**
 * The largest record a pass holds whole (an ExampleBatch of many examples can be tens of MB, whatever
 * --max-memory-mb says); a record said to be longer is taken for damage, as a damaged length field nearly always is.
 */
const MAX_RECORD_BYTES = 256 << 20;
export const MESSAGE_KINDS: readonly MessageKind[] = ["instance", "example", "examplebatch"];

export interface MonolithFilesOptions {
  paths: readonly string[];
  message: MessageKind;
  framing: RecordFraming;
  compression: Compression | "auto";
  featureList: FeatureList;
  evalFraction: number;
  onBadRecord: BadRecordPolicy;
  /** Where the decoded records are cached (see record-cache.ts); absent: beside the first file. */
  cacheDir?: string;
  /** What the source may hold in memory, in MiB. */
  memoryMb?: number;
  /** Threads decoding the records when the cache is written (1: the pass's own). */
  parseThreads?: number;
}

/**
 * Monolith's training files (Instance, Example or ExampleBatch messages in
 * "pb" or TFRecord framing, optionally compressed), read once as a stream,
 * decoded into a record cache on disk laid out as TrainingBatch wants them,
 * and read back from it by index. The last evalFraction of the samples form
 * the eval split.
 */
export class MonolithFilesSource extends CachedSource {
  /** Ids of slots the feature list does not configure, dropped (as Monolith does). */
  readonly unconfiguredIds: number;

  private constructor(cache: RecordCache, evalCount: number, described: Omit<SourceDescription, CacheDescribed>) {
    super(cache, evalCount, described);
    this.unconfiguredIds = cache.index.extra?.unconfiguredIds ?? 0;
  }

  static async open(opts: MonolithFilesOptions): Promise<MonolithFilesSource> {
    const list = opts.featureList;
    const memoryMb = opts.memoryMb ?? DEFAULT_MAX_MEMORY_MB;
    const layout = { tasks: list.labels.length, dense: list.numDense, slots: list.slotIds.length, fixedCells: false };
    const decodeKey = JSON.stringify({ source: "monolith", message: opts.message, framing: opts.framing.name, framingOptions: opts.framing, compression: opts.compression, onBadRecord: opts.onBadRecord, list: list.config, labels: list.labels });
    const threads = passThreads(opts.paths, opts.parseThreads ?? 1, memoryMb);
    const place = placeCache(opts.paths, decodeKey, opts.cacheDir ?? null);
    const cache = await openOrBuild(place, layout, memoryMb, async (w) => {
      const bad = new BadRecords(opts.onBadRecord, "the format and framing given, with the labels the feature list reads");
      const columns = new SampleColumns(list);
      const sizes = cacheSizes(memoryMb);
      const { pieceBytes, queued } = parseSizes(memoryMb, threads);
      const parser = openParser({ kind: "monolith", init: { message: opts.message, list: list.config } }, threads);
      try {
        const pass = new MonolithPass(opts, columns, bad, w, new OrderedSteps(parser, queued), sizes.chunkBytes, MAX_RECORD_BYTES, pieceBytes);
        for (const path of opts.paths) await pass.readFile(path, place.stamps.get(path) ?? null);
        await pass.drain();
        columns.spill(w);
        return { records: columns.total, skippedRecords: bad.records, skippedStretches: bad.stretches, skippedBytes: bad.lostBytes, skippedSummary: bad.summary(columns.total), extra: { unconfiguredIds: pass.unconfiguredIds } };
      } finally {
        await parser.close();
      }
    });
    const { records: samples, skippedSummary, slotIdCounts } = cache.index;
    const dropped = cache.index.extra?.unconfiguredIds ?? 0;
    const empty = emptySlotsWarning(
      slotIdCounts,
      list,
      samples,
      `check the features' names${opts.message === "instance" ? "" : " and types"} and the slot numbers of the fids against the feature list${dropped ? ` (${dropped} ids of slots it does not declare were dropped)` : ""}`,
    );
    const flat = emptyDenseWarning(cache.index.denseNonzeroCounts, list, samples, "check the names against the float features the records carry");
    const emptyFiles = emptyFilesWarning(opts.paths, place.stamps);
    if (samples === 0) {
      const why = [skippedSummary, emptyFiles ?? ""].filter(Boolean).join("; ");
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `no usable samples in ${opts.paths.join(", ")}${why ? ` (${why})` : ""}`);
    }
    const short = shortDenseWarning(cache.index.denseNonzeroCounts, list, samples);
    const warnings = [emptyFiles, empty, flat, short].filter((w): w is string => w !== null);
    const evalCount = Math.min(samples - 1, Math.round(samples * opts.evalFraction));
    return new MonolithFilesSource(cache, evalCount, {
      description: `Monolith ${opts.message} files (${opts.framing.name}) ${opts.paths.join(", ")}: ${samples} samples`,
      ...listDescription(list),
      ...(warnings.length ? { dataWarnings: warnings } : {}),
    });
  }

}

/**
 * One pass over the files: the stream framed here, its records gathered
 * into pieces decoded by parse threads (monolith-records.ts), their samples
 * merged in input order into chunks spilled to the cache as they fill.
 */
class MonolithPass {
  /** Ids of slots the feature list does not configure, in the pieces merged so far. */
  unconfiguredIds = 0;
  /** The piece being gathered: records end to end, where each ends in it and starts in its file. */
  private buf: Uint8Array | null = null;
  private fill = 0;
  /** How the file being read names its offsets: "byte", or "decompressed byte" in a compressed one (framing sees its output). */
  private place = "byte";
  private ends: number[] = [];
  private offsets: number[] = [];

  constructor(
    private readonly opts: MonolithFilesOptions,
    private readonly columns: SampleColumns,
    private readonly bad: BadRecords,
    private readonly writer: CacheWriter,
    private readonly steps: OrderedSteps,
    private readonly chunkBytes: number,
    /** The most of a file held at once. */
    private readonly maxWindow: number,
    private readonly pieceBytes: number,
  ) {}

  async readFile(path: string, stamp: FileStamp | null): Promise<void> {
    const bad = this.bad;
    const stream = new ByteStream(path, this.opts.compression, stamp);
    bad.compressedAs(path, stream.compression);
    this.place = stream.compression === "none" ? "byte" : "decompressed byte";
    let before = 0;
    await this.steps.event(() => (before = this.columns.total));
    try {
      const framingLoss = await this.readFrames(path, stream);
      await this.send(path);
      stream.assertNotRewritten();
      const damage = stream.damage;
      const cut = damage ? null : stream.changed();
      if (damage) await this.steps.event(() => bad.streamDamage(path, `byte ${damage.fileOffset} (decompressed byte ${damage.outputOffset})`, damage, stream.size, framingLoss));
      else if (cut) await this.steps.event(() => bad.lost(path, `: byte ${stream.size}`, cut.message, 0, null));
      await this.steps.event(() => bad.fileRead(path, this.columns.total - before));
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

  /**
   * Frames the file's stream, its records sent to be decoded and its framing failures reported. Returns the
   * framing's loss of its place for good in a stream found damaged, reported with that damage (see readFile).
   */
  private async readFrames(path: string, stream: ByteStream): Promise<FramingLoss | null> {
    const bad = this.bad;
    const place = this.place;
    let framingLoss: FramingLoss | null = null;
    await forEachFrame(stream, this.opts.framing, this.maxWindow, (ev) => {
      if (ev.kind === "lost") {
        const f = ev.failure;
        if (f.wrongOptions) {
          // Framed as the options that fit, the records may be another kind's too (an Example file read as ExampleBatches
          // loses its sort ids first): named at once, rather than after the next start.
          const [first, second] = f.recordsAsFitted ?? [];
          const kind = first ? otherKindOf(this.opts.message, first, second ?? null, this.opts.featureList) : undefined;
          const fix = kind ? `its records carry sort ids and decode as Monolith ${kind} records: read it with --format ${kind}${sortIdByDefault(kind) ? "" : " --sort-id true"}` : f.wrongOptions;
          const wrong = ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${path}: ${fix}`);
          return this.event(path, () => {
            throw wrong;
          });
        }
        // Nothing readable after it in a damaged stream: the record the damage cut, or the wrong bytes a decompressor
        // gave before it noticed (a flipped bit mid-gzip is seen only at the end). One stretch with the damage, not two;
        // the damage, not the framing options, explains it, so no hint to check them.
        if (f.resumeAt === null && stream.damage && !stream.damage.afterData) {
          framingLoss = { place: `${place} ${f.offset}`, reason: f.message, bytes: f.lostBytes };
          return;
        }
        // A file's very first frame failing is as often framing options that do not match the file as damage.
        const hints = new Set([f.hint, f.offset === 0 ? this.opts.framing.firstRecordHint : undefined].filter((h): h is string => !!h));
        const reason = [f.message, ...hints].join("; ");
        return this.event(path, () => bad.lost(path, `: ${place} ${f.offset}`, reason, f.lostBytes, f.resumeAt === null ? null : `${place} ${f.resumeAt}`));
      }
      if (ev.kind === "bad-record") {
        const f = ev.failure;
        return this.event(path, () => bad.record(path, `: ${place} ${f.offset}`, f.message, "COMPUTE_ERR_BAD_FRAME"));
      }
      const { bytes, offset } = ev.record;
      if (offset === 0 && ev.record.sortId) {
        const wrong = this.sortIdError(path, ev.record.sortId);
        if (wrong) {
          return this.event(path, () => {
            throw wrong;
          });
        }
      }
      return this.add(path, bytes, offset);
    });
    return framingLoss;
  }

  /** A record copied into the piece being gathered; a full piece is sent. */
  private async add(path: string, bytes: Uint8Array, offset: number): Promise<void> {
    if (this.buf && this.fill + bytes.length > this.buf.length) await this.send(path);
    if (!this.buf) this.buf = new Uint8Array(Math.max(this.pieceBytes, bytes.length));
    this.buf.set(bytes, this.fill);
    this.fill += bytes.length;
    this.ends.push(this.fill);
    this.offsets.push(offset);
    if (this.fill >= this.pieceBytes) await this.send(path);
  }

  /** Sends the piece gathered so far (its buffer handed over, not copied) to be decoded, and merged in turn. */
  private async send(path: string): Promise<void> {
    if (!this.buf || this.ends.length === 0) return;
    const bytes = this.buf.subarray(0, this.fill);
    const ends = Uint32Array.from(this.ends);
    const offsets = this.offsets;
    this.buf = null;
    this.fill = 0;
    this.ends = [];
    this.offsets = [];
    const place = this.place;
    const where = `${path}: the records at ${place}s ${offsets[0]}..${offsets[offsets.length - 1]}`;
    // A file's first two records, kept before the piece goes to a worker: if the first does not decode, whether the file is of another message kind.
    const first = offsets[0] === 0 ? { first: bytes.slice(0, ends[0]), second: ends.length > 1 ? bytes.slice(ends[0], ends[1]) : null } : null;
    await this.steps.piece({ bytes, ends }, [bytes.buffer as ArrayBuffer, ends.buffer], where, (r: MonolithParsed) => this.merge(r, path, offsets, place, first));
  }

  /** A framing event, after the records before it. */
  private async event(path: string, run: () => void): Promise<void> {
    await this.send(path);
    await this.steps.event(run);
  }

  /**
   * A piece's samples appended record by record, a chunk spilled whenever it
   * has grown to chunkBytes (as decoding them here one by one would), and
   * its bad records given to the policy with their file offsets.
   */
  private merge(r: MonolithParsed, path: string, offsets: number[], place: string, first: { first: Uint8Array; second: Uint8Array | null } | null): void {
    const { columns, opts } = this;
    this.unconfiguredIds += r.unconfiguredIds;
    let sample = 0;
    let e = 0;
    for (let i = 0; i < offsets.length; i++) {
      if (e < r.errors.length && r.errors[e]![0] === i) {
        // A record that decodes with labels, too few for the feature list, says nothing of the framing.
        const wire = r.errors[e]![2];
        const hint = wire && offsets[i] === 0 && opts.framing.firstRecordHint ? ` (${opts.framing.firstRecordHint})` : "";
        const at = `: record at ${place} ${offsets[i]}`;
        const reason = `not a valid ${opts.message}: ${r.errors[e]![1]}${hint}`;
        // A file of another message kind than --format says fails on every record: said as the flag to change, whatever --on-bad-record says.
        const kind = wire && offsets[i] === 0 && first ? otherKindOf(opts.message, first.first, first.second, opts.featureList) : undefined;
        if (kind) {
          // --format is every file's: with others beside it, this one may be the odd one out.
          const fix = opts.paths.length > 1 ? `--format is every --data file's: give files of one kind (--format ${kind} if all are)` : `read the file with --format ${kind}`;
          throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${path}${at}: not a valid ${opts.message}: ${r.errors[e]![1]}; its records decode as Monolith ${kind} records: ${fix}`);
        }
        // A record before any sample was kept decodes but does not fit the feature list (a feature of another kind than
        // declared, too few labels): the list is the likelier culprit than the data (every record would follow), so it
        // is said as the feature list's problem, not as a record to skip.
        if (r.errors[e]![3] && columns.total === 0 && opts.onBadRecord === "fail") {
          throw ComputeErrors.create("COMPUTE_ERR_BAD_CONFIG", `${path}${at}: ${reason}`, {
            hint: "the first record read does not fit --feature-list: check the list against the data (if only some records are like it, --on-bad-record=skip counts and skips them)",
          });
        }
        this.bad.record(path, at, reason);
        e++;
      }
      const k = r.samplesPerRecord[i]!;
      columns.append(r.part, sample, sample + k);
      sample += k;
      if (columns.bytes >= this.chunkBytes) columns.spill(this.writer);
    }
  }

  /**
   * A file without sort ids read as if it had them pairs its records: each
   * record's size is taken for a sort id's and the record for the sort id,
   * so every other record would be silently lost. A real sort id is a short
   * key, not a whole message with features: the first record's is checked.
   */
  private sortIdError(path: string, sortId: Uint8Array): Error | null {
    if (sortId.length === 0 || !trainsAs(this.opts.message, sortId, this.opts.featureList)) return null;
    return ComputeErrors.create(
      "COMPUTE_ERR_BAD_CONFIG",
      `${path}: the first record's sort id (${sortId.length} bytes) is itself a whole ${this.opts.message}: the file's records carry no sort ids; read it with --sort-id false (reading on would lose every other record)`,
    );
  }
}
