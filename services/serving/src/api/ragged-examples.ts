import type { ModelShape } from "@pangea/model";
import type { SampleAssembler } from "@pangea/monolith";
import { ServingErrors } from "../errors.js";
import type { Examples } from "../model/servable.js";

/** Ids one ragged cell may hold (raw values too, one id each): training's limit too. */
export { MAX_IDS_PER_CELL } from "@pangea/features";

/**
 * Examples gathered one assembled sample at a time into the ragged form
 * (cell = example * S + column): a slot may hold any number of ids, whose
 * rows are summed as in training.
 */
export class RaggedExamples {
  private readonly dense: number[] = [];
  private readonly ids: number[] = [];
  private readonly offsets: number[] = [0];

  constructor(private readonly spec: ModelShape, private readonly maxBatch: number, private readonly input: string) {}

  get count(): number {
    return (this.offsets.length - 1) / this.spec.numSlots;
  }

  take(asm: SampleAssembler): void {
    const S = this.spec.numSlots;
    if (this.count >= this.maxBatch) throw ServingErrors.create("SERVING_ERR_TOO_LARGE", `input ${this.input} carries more than ${this.maxBatch} examples (--max-batch)`);
    for (let d = 0; d < this.spec.numDense; d++) this.dense.push(asm.dense[d]!);
    for (let col = 0; col < S; col++) {
      for (let v = 0; v < asm.count; v++) if (asm.columns[v] === col) this.ids.push(asm.words[2 * v]!, asm.words[2 * v + 1]!);
      this.offsets.push(this.ids.length / 2);
    }
  }

  finish(): Examples {
    if (this.count === 0) throw ServingErrors.create("SERVING_ERR_BAD_INPUT", `input ${this.input} holds no examples: a request needs at least one`);
    return { count: this.count, dense: Float32Array.from(this.dense), idWords: Uint32Array.from(this.ids), cellOffsets: Uint32Array.from(this.offsets) };
  }
}
