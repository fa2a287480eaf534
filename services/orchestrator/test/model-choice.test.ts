import { describe, expect, it } from "vitest";
import { architectureFromFlags } from "../src/job/model-choice.js";

describe("the architecture from the flags", () => {
  it("dlrm's bottom MLP ends in --embedding-dim unless --bottom-mlp is given", () => {
    expect(architectureFromFlags({ model: "dlrm", embeddingDim: 16 })).toMatchObject({ bottomMlp: [64, 16], topMlp: [64, 32] });
    expect(architectureFromFlags({ model: "dlrm", embeddingDim: 8 })).toMatchObject({ bottomMlp: [64, 8], topMlp: [64, 32] });
    expect(architectureFromFlags({ model: "dlrm", embeddingDim: 8, bottomMlp: [32, 8], topMlp: [16] })).toMatchObject({ bottomMlp: [32, 8], topMlp: [16] });
    expect(() => architectureFromFlags({ model: "dlrm", embeddingDim: 8, bottomMlp: [32, 16] })).toThrow(/bottomMlp must end in the embedding dim 8, ends in 16/);
  });

  it("--bottom-mlp/--top-mlp given with another model are refused, whatever their value", () => {
    for (const given of [{ bottomMlp: [64, 16] }, { topMlp: [64, 32] }, { bottomMlp: [8] }]) {
      expect(() => architectureFromFlags({ model: "deepfm", embeddingDim: 16, ...given })).toThrow(/--bottom-mlp and --top-mlp are dlrm's/);
    }
    expect(architectureFromFlags({ model: "deepfm", embeddingDim: 16 })).toMatchObject({ name: "deepfm" });
    // The example is the architecture's own defaults, not another's fields.
    expect(() => architectureFromFlags({ model: "mmoe", embeddingDim: 16, bottomMlp: [8] })).toThrow(`give mmoe's layer widths in --model-config (its defaults: {"expertMlp":[64,32],"towerMlp":[32]})`);
  });
});
