import { CachedSource } from "./cached-source.js";
import { ComputeErrors } from "../errors.js";
import { compressionFromName, type Compression } from "../formats/compression.js";
import { ByteStream } from "../formats/byte-stream.js";
import { forEachFrame } from "../formats/streamed-frames.js";
import { cacheSizes, openOrBuild, placeCache, type CacheWriter, type RecordCache } from "./record-cache.js";
import { DEFAULT_MAX_MEMORY_MB } from "@pangea/service-flags";
import type { RecordFraming } from "../formats/framing.js";
import { BadRecords, type BadRecordPolicy } from "./bad-records.js";
import { SampleColumns, SampleError } from "./sample-columns.js";
import type { SourceDescription } from "./source.js";
import { tasksOfList, type FeatureList } from "@pangea/features";
import { decodeExample, decodeExampleBatch, decodeInstance, SampleAssembler, WireError } from "@pangea/monolith";

export type MessageKind = "instance" | "example" | "examplebatch";
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

  private constructor(cache: RecordCache, trainCount: number, info: SourceDescription) {
    super(cache, trainCount, info);
    this.unconfiguredIds = cache.index.extra?.unconfiguredIds ?? 0;
  }

  static async open(opts: MonolithFilesOptions): Promise<MonolithFilesSource> {
    const list = opts.featureList;
    const memoryMb = opts.memoryMb ?? DEFAULT_MAX_MEMORY_MB;
    const layout = { tasks: list.labels.length, dense: list.numDense, slots: list.slotIds.length, fixedCells: false };
    const decodeKey = JSON.stringify({ source: "monolith", message: opts.message, framing: opts.framing.name, framingOptions: opts.framing, compression: opts.compression, onBadRecord: opts.onBadRecord, list: list.config, labels: list.labels });
    const cache = await openOrBuild(placeCache(opts.paths, decodeKey, opts.cacheDir ?? null), layout, memoryMb, async (w) => {
      const bad = new BadRecords(opts.onBadRecord);
      const columns = new SampleColumns(list);
      const asm = new SampleAssembler(list);
      const sizes = cacheSizes(memoryMb);
      // A window of half the read set, and never under 8 MiB: a record longer than the window is taken for damage.
      const pass = new MonolithPass(opts, asm, columns, bad, w, sizes.chunkBytes, Math.max(8 << 20, sizes.residentBytes / 2));
      for (const path of opts.paths) await pass.readFile(path);
      columns.spill(w);
      return { records: columns.total, skippedRecords: bad.skipped, skippedBytes: bad.lostBytes, skippedSummary: bad.summary(), extra: { unconfiguredIds: asm.unconfiguredIds } };
    });
    const { records: samples, skippedRecords, skippedBytes, skippedSummary } = cache.index;
    if (samples === 0) {
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `no usable samples in ${opts.paths.join(", ")}${skippedRecords ? ` (${skippedSummary})` : ""}`);
    }
    const evalCount = Math.min(samples - 1, Math.round(samples * opts.evalFraction));
    return new MonolithFilesSource(cache, samples - evalCount, {
      description: `Monolith ${opts.message} files (${opts.framing.name}) ${opts.paths.join(", ")}: ${samples} samples`,
      storage: cache.note,
      numDense: list.numDense,
      slotIds: list.slotIds,
      slotDims: list.config.slots.map((s) => s.dim ?? 0),
      slotPooling: list.config.slots.map((s) => s.pooling ?? ""),
      tasks: tasksOfList(list),
      groupSlot: list.groupSlot,
      trainRecords: samples - evalCount,
      evalRecords: evalCount,
      skippedRecords,
      skippedBytes,
      skippedSummary,
    });
  }

}

/** One pass over the files: records decoded into chunks, spilled to the cache as they fill. */
class MonolithPass {
  constructor(
    private readonly opts: MonolithFilesOptions,
    private readonly asm: SampleAssembler,
    private readonly columns: SampleColumns,
    private readonly bad: BadRecords,
    private readonly writer: CacheWriter,
    private readonly chunkBytes: number,
    /** The most of a file held at once. */
    private readonly maxWindow: number,
  ) {}

  async readFile(path: string): Promise<void> {
    const bad = this.bad;
    const kind = this.opts.compression === "auto" ? compressionFromName(path) : this.opts.compression;
    const stream = new ByteStream(path, kind);
    try {
      await this.readFrames(path, stream);
      const damage = stream.damage;
      const changed = damage ? null : stream.changed();
      if (damage) bad.lost(`${path}: byte ${damage.fileOffset} (decompressed byte ${damage.outputOffset})`, damage.message, Math.max(0, stream.size - damage.fileOffset), null);
      else if (changed) bad.lost(`${path}: byte ${stream.size}`, changed, 0, null);
    } finally {
      stream.close();
    }
  }

  private async readFrames(path: string, stream: ByteStream): Promise<void> {
    const { asm, columns, bad } = this;
    await forEachFrame(stream, this.opts.framing, this.maxWindow, (ev) => {
      if (columns.bytes >= this.chunkBytes) columns.spill(this.writer);
      // The stream was cut (a truncated gzip member...): its damage is reported, not the record it cut.
      if (ev.kind === "lost" && stream.damage) return;
      if (ev.kind === "lost") {
        bad.lost(`${path}: byte ${ev.failure.offset}`, ev.failure.message, ev.failure.lostBytes, ev.failure.resumeAt);
        return;
      }
      if (ev.kind === "bad-record") {
        bad.record(`${path}: byte ${ev.failure.offset}`, ev.failure.message, "COMPUTE_ERR_BAD_FRAME");
        return;
      }
      const { bytes, offset } = ev.record;
      if (offset === 0 && ev.record.sortId) this.checkSortId(path, ev.record.sortId);
      try {
        if (this.opts.message === "examplebatch") {
          // A batch is taken whole or not at all, so a bad example cannot leave half a batch behind.
          const mark = columns.mark();
          let example = 0;
          try {
            decodeExampleBatch(bytes, 0, bytes.length, asm, () => {
              columns.commit(asm);
              example++;
            });
          } catch (err) {
            columns.rollback(mark);
            // Which of the batch's examples, so the record can be found.
            if (err instanceof SampleError) throw new SampleError(`example ${example} of the batch ${err.message}`);
            throw err;
          }
        } else {
          asm.reset();
          if (this.opts.message === "instance") decodeInstance(bytes, 0, bytes.length, asm);
          else decodeExample(bytes, 0, bytes.length, asm);
          columns.commit(asm);
        }
      } catch (err) {
        if (!(err instanceof WireError || err instanceof SampleError)) throw err;
        const hint = offset === 0 && this.opts.framing.firstRecordHint ? ` (${this.opts.framing.firstRecordHint})` : "";
        bad.record(`${path}: record at byte ${offset}`, `not a valid ${this.opts.message}: ${err.message}${hint}`);
      }
    });
  }

  /**
   * A file without sort ids read as if it had them pairs its records: each
   * record's size is taken for a sort id's and the record for the sort id,
   * so every other record would be silently lost. A real sort id is a short
   * key, not a whole message with features: the first record's is checked.
   */
  private checkSortId(path: string, sortId: Uint8Array): void {
    if (sortId.length === 0) return;
    const scratch = new SampleAssembler(this.opts.featureList);
    try {
      if (this.opts.message === "examplebatch") {
        let examples = 0;
        decodeExampleBatch(sortId, 0, sortId.length, scratch, () => examples++);
        if (examples === 0) return;
      } else {
        scratch.reset();
        if (this.opts.message === "instance") decodeInstance(sortId, 0, sortId.length, scratch);
        else decodeExample(sortId, 0, sortId.length, scratch);
        if (scratch.count + scratch.unconfiguredIds === 0 && scratch.labels.length === 0) return;
      }
    } catch (err) {
      if (err instanceof WireError || err instanceof SampleError) return;
      throw err;
    }
    throw ComputeErrors.create(
      "COMPUTE_ERR_BAD_CONFIG",
      `${path}: the first record's sort id (${sortId.length} bytes) is itself a whole ${this.opts.message}: the file's records carry no sort ids; read it with --sort-id false (reading on would lose every other record)`,
    );
  }
}
