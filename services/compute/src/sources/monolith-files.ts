import { readFileSync } from "node:fs";
import { ComputeErrors } from "../errors.js";
import { compressionFromName, decompress, type Compression } from "../formats/compression.js";
import type { RecordFraming } from "../formats/framing.js";
import { BadRecords, type BadRecordPolicy } from "./bad-records.js";
import { SampleColumns, SampleError } from "./sample-columns.js";
import type { DataSource, RecordBlock, SourceDescription, SplitName } from "./source.js";
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
}

/**
 * Monolith's training files (Instance, Example or ExampleBatch messages in
 * "pb" or TFRecord framing, optionally compressed), decoded into in-memory
 * columns laid out as TrainingBatch wants them. The last evalFraction of
 * the samples form the eval split.
 */
export class MonolithFilesSource implements DataSource {
  readonly info: SourceDescription;
  readonly bad: BadRecords;
  private readonly columns: SampleColumns;
  unconfiguredIds = 0;

  constructor(private readonly opts: MonolithFilesOptions) {
    this.bad = new BadRecords(opts.onBadRecord);
    this.columns = new SampleColumns(opts.featureList);
    const asm = new SampleAssembler(opts.featureList);
    for (const path of opts.paths) this.readFile(path, asm);
    this.unconfiguredIds = asm.unconfiguredIds;
    const samples = this.columns.samples;
    if (samples === 0) {
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `no usable samples in ${opts.paths.join(", ")}${this.bad.skipped ? ` (${this.bad.summary()})` : ""}`);
    }
    const evalCount = Math.min(samples - 1, Math.round(samples * opts.evalFraction));
    this.columns.setTrainCount(samples - evalCount);
    const list = opts.featureList;
    this.info = {
      description: `Monolith ${opts.message} files (${opts.framing.name}) ${opts.paths.join(", ")}: ${samples} samples`,
      numDense: list.numDense,
      slotIds: list.slotIds,
      slotDims: list.config.slots.map((s) => s.dim ?? 0),
      slotPooling: list.config.slots.map((s) => s.pooling ?? ""),
      tasks: tasksOfList(list),
      groupSlot: list.groupSlot,
      trainRecords: samples - evalCount,
      evalRecords: evalCount,
      skippedRecords: this.bad.skipped,
      skippedBytes: this.bad.lostBytes,
      skippedSummary: this.bad.summary(),
    };
  }

  private readFile(path: string, asm: SampleAssembler): void {
    let raw: Uint8Array;
    try {
      raw = readFileSync(path);
    } catch (err) {
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `cannot read data file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const kind = this.opts.compression === "auto" ? compressionFromName(path) : this.opts.compression;
    const data = decompress(raw, kind, path);
    for (const ev of this.opts.framing.frames(data)) {
      if (ev.kind === "lost") {
        this.bad.lost(`${path}: byte ${ev.failure.offset}`, ev.failure.message, ev.failure.lostBytes, ev.failure.resumeAt);
        continue;
      }
      if (ev.kind === "bad-record") {
        this.bad.record(`${path}: byte ${ev.failure.offset}`, ev.failure.message, "COMPUTE_ERR_BAD_FRAME");
        continue;
      }
      const { bytes, offset } = ev.record;
      if (offset === 0 && ev.record.sortId) this.checkSortId(path, ev.record.sortId);
      try {
        if (this.opts.message === "examplebatch") {
          // A batch is taken whole or not at all, so a bad example cannot leave half a batch behind.
          const mark = this.columns.mark();
          let example = 0;
          try {
            decodeExampleBatch(bytes, 0, bytes.length, asm, () => {
              this.columns.commit(asm);
              example++;
            });
          } catch (err) {
            this.columns.rollback(mark);
            // Which of the batch's examples, so the record can be found.
            if (err instanceof SampleError) throw new SampleError(`example ${example} of the batch ${err.message}`);
            throw err;
          }
        } else {
          asm.reset();
          if (this.opts.message === "instance") decodeInstance(bytes, 0, bytes.length, asm);
          else decodeExample(bytes, 0, bytes.length, asm);
          this.columns.commit(asm);
        }
      } catch (err) {
        if (!(err instanceof WireError || err instanceof SampleError)) throw err;
        const hint = offset === 0 && this.opts.framing.firstRecordHint ? ` (${this.opts.framing.firstRecordHint})` : "";
        this.bad.record(`${path}: record at byte ${offset}`, `not a valid ${this.opts.message}: ${err.message}${hint}`);
      }
    }
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

  read(split: SplitName, start: number, count: number, block: RecordBlock): void {
    this.columns.read(split, start, count, block);
  }
}
