import { Rng, defineErrors } from "@pangea/kit";

export const ModelErrors = defineErrors({
  MODEL_ERR_BAD_SPEC: { status: "INVALID_ARGUMENT", exit: 2, description: "the model configuration is inconsistent" },
});

/** The DLRM-style CTR model every trainer, the parameter server and serving agree on. */
export interface DlrmSpec {
  numDense: number;
  numSlots: number;
  embeddingDim: number;
  /** Hidden widths of the bottom MLP; the last must equal embeddingDim so it can meet the embeddings. */
  bottomMlp: readonly number[];
  /** Hidden widths of the top MLP; a width-1 logit layer follows. */
  topMlp: readonly number[];
}

export interface DenseParam {
  name: string;
  shape: [number] | [number, number];
}

export function validateSpec(spec: DlrmSpec): void {
  const bad = (msg: string) => ModelErrors.create("MODEL_ERR_BAD_SPEC", msg);
  if (spec.numDense < 1) throw bad(`model needs at least one dense feature, got ${spec.numDense}`);
  if (spec.numSlots < 1) throw bad(`model needs at least one categorical slot, got ${spec.numSlots}`);
  if (spec.embeddingDim < 1) throw bad(`embedding dim must be positive, got ${spec.embeddingDim}`);
  if (spec.bottomMlp.length === 0) throw bad("bottom MLP needs at least one layer");
  const last = spec.bottomMlp[spec.bottomMlp.length - 1];
  if (last !== spec.embeddingDim) throw bad(`bottom MLP must end in the embedding dim ${spec.embeddingDim}, ends in ${last}`);
  for (const w of [...spec.bottomMlp, ...spec.topMlp]) if (!Number.isInteger(w) || w < 1) throw bad(`layer width must be a positive integer, got ${w}`);
}

/** Width of the interaction output: bottom output plus one dot product per pair of the S+1 vectors. */
export function interactionWidth(spec: DlrmSpec): number {
  const n = spec.numSlots + 1;
  return spec.embeddingDim + (n * (n - 1)) / 2;
}

/** Dense parameters in the order every party uses: per layer weight [in, out] then bias [out]. */
export function denseParams(spec: DlrmSpec): DenseParam[] {
  const params: DenseParam[] = [];
  let width = spec.numDense;
  spec.bottomMlp.forEach((out, i) => {
    params.push({ name: `bottom.${i}.w`, shape: [width, out] }, { name: `bottom.${i}.b`, shape: [out] });
    width = out;
  });
  width = interactionWidth(spec);
  [...spec.topMlp, 1].forEach((out, i) => {
    const name = i === spec.topMlp.length ? "top.logit" : `top.${i}`;
    params.push({ name: `${name}.w`, shape: [width, out] }, { name: `${name}.b`, shape: [out] });
    width = out;
  });
  return params;
}

export function paramSize(p: DenseParam): number {
  return p.shape.reduce((a, b) => a * b, 1);
}

/** Glorot-uniform weights and zero biases, deterministic in the seed. */
export function initDenseParams(spec: DlrmSpec, seed: number): Float32Array[] {
  const rng = new Rng(seed ^ 0x5eed);
  return denseParams(spec).map((p) => {
    const values = new Float32Array(paramSize(p));
    if (p.shape.length === 2) {
      const limit = Math.sqrt(6 / (p.shape[0] + p.shape[1]));
      for (let i = 0; i < values.length; i++) values[i] = rng.uniform(-limit, limit);
    }
    return values;
  });
}
