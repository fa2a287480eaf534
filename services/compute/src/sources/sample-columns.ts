import { GrowableF32, GrowableU32 } from "./columns.js";
import type { RecordBlock, SplitName } from "./source.js";
import { labelValue, targetOutOfRange, type FeatureList, type LabelSpec } from "@pangea/features";
import type { SampleAssembler } from "@pangea/monolith";

/** A decoded sample that cannot be trained on (no label, non-finite label). */
export class SampleError extends Error {}

/**
 * Assembled samples held in memory, laid out as TrainingBatch wants them:
 * labels, dense values, and ids grouped by (sample, slot) cell. The last
 * samples after setTrainCount form the eval split.
 */
export class SampleColumns {
  samples = 0;
  private readonly labels = new GrowableF32();
  private readonly weights = new GrowableF32();
  private readonly dense = new GrowableF32();
  private readonly ids = new GrowableU32();
  /** Sample r's cell c starts at id cellStarts[r * S + c]; one extra entry closes the last cell. */
  private readonly cellStarts = new GrowableU32();
  private trainCount = 0;
  private closed = false;

  /** The sample being committed's labels, one per task. */
  private readonly taskLabels: Float64Array;

  constructor(private readonly list: FeatureList) {
    this.taskLabels = new Float64Array(list.labels.length);
  }

  mark() {
    return { samples: this.samples, labels: this.labels.length, weights: this.weights.length, dense: this.dense.length, ids: this.ids.length, cells: this.cellStarts.length };
  }

  rollback(m: ReturnType<SampleColumns["mark"]>): void {
    this.samples = m.samples;
    this.labels.length = m.labels;
    this.weights.length = m.weights;
    this.dense.length = m.dense;
    this.ids.length = m.ids;
    this.cellStarts.length = m.cells;
  }

  /** Appends the assembled sample, its ids grouped by column (a counting sort). */
  commit(asm: SampleAssembler): void {
    const labels = this.list.labels;
    const T = labels.length;
    for (let t = 0; t < T; t++) this.taskLabels[t] = sampleLabel(labels[t]!, asm.labels);
    if (!Number.isFinite(asm.weight) || asm.weight < 0) throw new SampleError(`instance weight is ${asm.weight}`);
    const S = this.list.slotIds.length;
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
    for (let t = 0; t < T; t++) this.labels.push(this.taskLabels[t]!);
    this.weights.push(asm.weight);
    this.dense.grow(this.dense.length + asm.dense.length);
    this.dense.data.set(asm.dense, this.dense.length);
    this.dense.length += asm.dense.length;
    this.samples++;
  }

  /** Ends loading: the last samples - trainCount samples are the eval split. */
  setTrainCount(trainCount: number): void {
    if (!this.closed) this.cellStarts.push(this.ids.length / 2);
    this.closed = true;
    this.trainCount = trainCount;
  }

  read(split: SplitName, start: number, count: number, block: RecordBlock): void {
    const base = split === "train" ? start : this.trainCount + start;
    const S = this.list.slotIds.length;
    const D = this.list.numDense;
    const T = this.list.labels.length;
    block.labels.set(this.labels.data.subarray(base * T, (base + count) * T));
    block.weights.set(this.weights.data.subarray(base, base + count));
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

/** A task's label from a decoded sample's label list (Monolith's), or why the sample cannot be trained on. */
export function sampleLabel(label: LabelSpec, values: readonly number[]): number {
  const raw = values[label.index];
  if (raw === undefined) throw new SampleError(`has ${values.length} label${values.length === 1 ? "" : "s"}, the feature list reads label ${label.index} (${label.name})`);
  const v = labelValue(label, raw);
  if (Number.isNaN(v)) throw new SampleError(`label ${label.index} (${label.name}) ${targetOutOfRange(label, raw) ?? `is ${raw}`}`);
  return v;
}
