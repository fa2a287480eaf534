import { GrowableF32, GrowableU32 } from "./columns.js";
import type { CacheWriter } from "./record-cache.js";
import { labelValue, MAX_IDS_PER_CELL, slotNamesOf, targetOutOfRange, type FeatureList, type LabelSpec } from "@pangea/features";
import type { SampleAssembler } from "@pangea/monolith";

/** Samples in the record cache's column layout: cellStarts (n*S+1 entries) index ids (pairs of words) from 0. */
export interface ColumnsPart {
  samples: number;
  labels: Float32Array;
  weights: Float32Array;
  dense: Float32Array;
  cellStarts: Uint32Array;
  ids: Uint32Array;
}

/**
 * A decoded sample that cannot be trained on (no label, non-finite label).
 * `framingSuspect`: what wrongly framed bytes would decode to (a message with
 * no label at all), so the framing is worth naming; a sample with labels,
 * too few for the list, says nothing of the framing. `listMisfit`: what a
 * feature list that does not fit the data gives every record (too few
 * labels), not a bad value of this record's (a weight, a label's value).
 */
export class SampleError extends Error {
  constructor(
    message: string,
    readonly framingSuspect = false,
    readonly listMisfit = false,
  ) {
    super(message);
  }
}

/**
 * A chunk of assembled samples, laid out as TrainingBatch wants them:
 * labels, dense values, and ids grouped by (sample, slot) cell, spilled to
 * a record cache when it has grown to a chunk's size.
 */
export class SampleColumns {
  /** Samples in the chunk not yet spilled. */
  samples = 0;
  /** Samples committed, spilled or not. */
  total = 0;
  private readonly labels = new GrowableF32();
  private readonly weights = new GrowableF32();
  private readonly dense = new GrowableF32();
  private readonly ids = new GrowableU32();
  /** Sample r's cell c starts at id cellStarts[r * S + c]; one extra entry closes the last cell. */
  private readonly cellStarts = new GrowableU32();

  /** The sample being committed's labels, one per task. */
  private readonly taskLabels: Float64Array;

  /** Each column's slot name, for the message of a record over the cell limit. */
  private readonly slotNames: string[];

  /** Each dense value's feature name, for the message of a value batches cannot carry. */
  private readonly denseNames: string[];

  constructor(private readonly list: FeatureList) {
    this.taskLabels = new Float64Array(list.labels.length);
    this.slotNames = slotNamesOf(list);
    this.denseNames = new Array<string>(list.numDense).fill("");
    for (const [name, d] of list.denseByName) this.denseNames.fill(name, d.offset, d.offset + d.size);
  }

  mark() {
    return { samples: this.samples, labels: this.labels.length, weights: this.weights.length, dense: this.dense.length, ids: this.ids.length, cells: this.cellStarts.length };
  }

  rollback(m: ReturnType<SampleColumns["mark"]>): void {
    this.total -= this.samples - m.samples;
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
    assertCellSizes(asm, this.slotNames);
    // A value past float32's range (1e39 in a DOUBLE column) is Infinity in the batch: every trainer's gradients then
    // turn NaN and the job fails far from the row that did it.
    for (let k = 0; k < asm.dense.length; k++) {
      if (!Number.isFinite(asm.dense[k]!)) throw new SampleError(`dense feature '${this.denseNames[k]}' holds a value beyond float32's range (about ±3.4e38), which batches carry`);
    }
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
    this.total++;
  }

  /** Bytes the chunk holds. */
  get bytes(): number {
    return 4 * (this.labels.length + this.weights.length + this.dense.length + this.ids.length + this.cellStarts.length);
  }

  /** The chunk's samples as a part, its own arrays (a worker transfers them); this object is not used after. */
  take(): ColumnsPart {
    this.cellStarts.push(this.ids.length / 2);
    return { samples: this.samples, labels: this.labels.view(), weights: this.weights.view(), dense: this.dense.view(), cellStarts: this.cellStarts.view(), ids: this.ids.view() };
  }

  /** Appends samples [from, to) of a part, as committing them one by one would have. */
  append(p: ColumnsPart, from: number, to: number): void {
    if (to <= from) return;
    const T = this.list.labels.length;
    const D = this.list.numDense;
    const S = this.list.slotIds.length;
    this.labels.pushAll(p.labels.subarray(from * T, to * T));
    this.weights.pushAll(p.weights.subarray(from, to));
    this.dense.pushAll(p.dense.subarray(from * D, to * D));
    const first = p.cellStarts[from * S]!;
    const shift = this.ids.length / 2 - first;
    const cells = p.cellStarts.subarray(from * S, to * S);
    this.cellStarts.grow(this.cellStarts.length + cells.length);
    const out = this.cellStarts.data;
    for (let i = 0, at = this.cellStarts.length; i < cells.length; i++) out[at + i] = cells[i]! + shift;
    this.cellStarts.length += cells.length;
    this.ids.pushAll(p.ids.subarray(2 * first, 2 * p.cellStarts[to * S]!));
    this.samples += to - from;
    this.total += to - from;
  }

  /** Writes the chunk's samples to the cache and starts an empty chunk. */
  spill(writer: CacheWriter): void {
    if (this.samples === 0) return;
    this.cellStarts.push(this.ids.length / 2);
    writer.chunk(this.samples, this.labels.view(), this.weights.view(), this.dense.view(), this.cellStarts.view(), this.ids.view());
    const spilled = this.samples;
    this.rollback({ samples: 0, labels: 0, weights: 0, dense: 0, ids: 0, cells: 0 });
    this.total += spilled;
  }
}

/** A task's label from a decoded sample's label list (Monolith's), or why the sample cannot be trained on. */
export function sampleLabel(label: LabelSpec, values: readonly number[]): number {
  const raw = values[label.index];
  if (raw === undefined) throw new SampleError(`has ${values.length} label${values.length === 1 ? "" : "s"}, the feature list reads label ${label.index} (${label.name})`, values.length === 0, values.length > 0);
  const v = labelValue(label, raw);
  if (Number.isNaN(v)) throw new SampleError(`label ${label.index} (${label.name}) ${targetOutOfRange(label, raw) ?? `is ${raw}`}`);
  return v;
}

/** Throws the SampleError of a record with a slot of more ids than a cell takes (serving refuses such a cell too). */
export function assertCellSizes(asm: SampleAssembler, slotNames: readonly string[]): void {
  if (asm.count <= MAX_IDS_PER_CELL) return;
  const counts = new Uint32Array(slotNames.length);
  for (let i = 0; i < asm.count; i++) counts[asm.columns[i]!]!++;
  const c = counts.findIndex((n) => n > MAX_IDS_PER_CELL);
  if (c >= 0) throw new SampleError(`slot '${slotNames[c]}' holds ${counts[c]} ids in one record; a record's slot holds at most ${MAX_IDS_PER_CELL} (as serving takes)`);
}
