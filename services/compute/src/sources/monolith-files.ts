import { readFileSync } from "node:fs";
import { ComputeErrors } from "../errors.js";
import type { FeatureList } from "../features/feature-list.js";
import { compressionFromName, decompress, type Compression } from "../formats/compression.js";
import type { RecordFraming } from "../formats/framing.js";
import { decodeExample, decodeExampleBatch, decodeInstance, SampleAssembler } from "../formats/monolith-decode.js";
import { WireError } from "../formats/protowire.js";
import { BadRecords, type BadRecordPolicy } from "./bad-records.js";
import { GrowableF32, GrowableU32 } from "./columns.js";
import type { DataSource, RecordBlock, SourceDescription, SplitName } from "./source.js";

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
  private readonly labels = new GrowableF32();
  private readonly dense = new GrowableF32();
  private readonly ids = new GrowableU32();
  /** Start of each sample's cells in cellStarts: sample r's cell c begins at cellStarts[r * S + c]. */
  private readonly cellStarts = new GrowableU32();
  private readonly trainCount: number;
  private samples = 0;
  unconfiguredIds = 0;

  constructor(private readonly opts: MonolithFilesOptions) {
    this.bad = new BadRecords(opts.onBadRecord);
    const asm = new SampleAssembler(opts.featureList);
    for (const path of opts.paths) this.readFile(path, asm);
    this.unconfiguredIds = asm.unconfiguredIds;
    this.cellStarts.push(this.ids.length / 2);
    if (this.samples === 0) {
      throw ComputeErrors.create("COMPUTE_ERR_SOURCE", `no usable samples in ${opts.paths.join(", ")}${this.bad.skipped ? ` (${this.bad.summary()})` : ""}`);
    }
    const evalCount = Math.min(this.samples - 1, Math.round(this.samples * opts.evalFraction));
    this.trainCount = this.samples - evalCount;
    const list = opts.featureList;
    this.info = {
      description: `Monolith ${opts.message} files (${opts.framing.name}) ${opts.paths.join(", ")}: ${this.samples} samples`,
      numDense: list.numDense,
      slotIds: list.slotIds,
      slotDims: list.config.slots.map((s) => s.dim),
      trainRecords: this.trainCount,
      evalRecords: evalCount,
      skippedRecords: this.bad.skipped,
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
      if (ev.kind === "fatal") {
        this.bad.tail(`${path}: byte ${ev.failure.offset}`, ev.failure.message, ev.failure.lostBytes);
        return;
      }
      if (ev.kind === "bad-record") {
        this.bad.record(`${path}: byte ${ev.failure.offset}`, ev.failure.message, "COMPUTE_ERR_BAD_FRAME");
        continue;
      }
      const { bytes, offset } = ev.record;
      const where = `${path}: record at byte ${offset}`;
      try {
        if (this.opts.message === "examplebatch") {
          // A batch is taken whole or not at all, so a bad example cannot leave half a batch behind.
          const mark = this.mark();
          try {
            decodeExampleBatch(bytes, 0, bytes.length, asm, () => this.commit(asm));
          } catch (err) {
            this.rollback(mark);
            throw err;
          }
        } else {
          asm.reset();
          if (this.opts.message === "instance") decodeInstance(bytes, 0, bytes.length, asm);
          else decodeExample(bytes, 0, bytes.length, asm);
          this.commit(asm);
        }
      } catch (err) {
        if (!(err instanceof WireError || err instanceof SampleError)) throw err;
        this.bad.record(where, `not a valid ${this.opts.message}: ${err.message}`);
      }
    }
  }

  private mark() {
    return { samples: this.samples, labels: this.labels.length, dense: this.dense.length, ids: this.ids.length, cells: this.cellStarts.length };
  }

  private rollback(m: ReturnType<MonolithFilesSource["mark"]>): void {
    this.samples = m.samples;
    this.labels.length = m.labels;
    this.dense.length = m.dense;
    this.ids.length = m.ids;
    this.cellStarts.length = m.cells;
  }

  /** Appends the assembled sample, its ids grouped by column (a counting sort). */
  private commit(asm: SampleAssembler): void {
    const list = this.opts.featureList;
    const label = asm.labels[list.labelIndex];
    if (label === undefined) throw new SampleError(`has ${asm.labels.length} labels, the feature list reads label ${list.labelIndex}`);
    if (!Number.isFinite(label)) throw new SampleError(`label ${list.labelIndex} is ${label}`);
    const S = list.slotIds.length;
    const counts = new Uint32Array(S + 1);
    for (let i = 0; i < asm.count; i++) counts[asm.columns[i]! + 1]!++;
    for (let c = 0; c < S; c++) counts[c + 1]! += counts[c]!;
    const base = this.ids.length / 2;
    for (let c = 0; c < S; c++) this.cellStarts.push(base + counts[c]!);
    this.ids.grow(this.ids.length + asm.count * 2);
    const out = this.ids.data;
    const fill = counts.slice(0, S);
    for (let i = 0; i < asm.count; i++) {
      const at = 2 * (base + fill[asm.columns[i]!]!++);
      out[at] = asm.words[2 * i]!;
      out[at + 1] = asm.words[2 * i + 1]!;
    }
    this.ids.length += asm.count * 2;
    this.labels.push(label > 0 ? 1 : 0);
    this.dense.grow(this.dense.length + asm.dense.length);
    this.dense.data.set(asm.dense, this.dense.length);
    this.dense.length += asm.dense.length;
    this.samples++;
  }

  read(split: SplitName, start: number, count: number, block: RecordBlock): void {
    const base = split === "train" ? start : this.trainCount + start;
    const S = this.opts.featureList.slotIds.length;
    const D = this.opts.featureList.numDense;
    block.labels.set(this.labels.data.subarray(base, base + count));
    block.dense.set(this.dense.data.subarray(base * D, (base + count) * D));
    const first = this.cellStarts.data[base * S]!;
    const last = this.cellStarts.data[(base + count) * S]!;
    const nnz = last - first;
    if (block.idWords.length < nnz * 2) block.idWords = new Uint32Array(nnz * 2);
    block.idWords.set(this.ids.data.subarray(first * 2, last * 2));
    for (let c = 0; c <= count * S; c++) block.cellOffsets[c] = this.cellStarts.data[base * S + c]! - first;
    block.count = count;
    block.nnz = nnz;
  }
}

/** A decoded sample that cannot be trained on (no label, non-finite label). */
export class SampleError extends Error {}
