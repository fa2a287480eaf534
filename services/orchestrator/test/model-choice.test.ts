import { describe, expect, it } from "vitest";
import type { ArchitectureConfig } from "@pangea/model";
import { architectureFromFlags } from "@pangea/model";
import { checkpointModelMismatch } from "../src/job/model-choice.js";

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

describe("a checkpoint's model against the job's", () => {
  const spec = (architecture: Record<string, unknown>, embeddingDim = 16) => ({ numDense: 13, numSlots: 26, embeddingDim, architecture: architecture as ArchitectureConfig });
  it("names the flags that give the checkpoint's model: --model and the hyper-parameters off their defaults (dropout is not compared)", () => {
    const saved = spec(architectureFromFlags({ model: "dcn-v2", embeddingDim: 16 }));
    const lowRank = { ...saved.architecture, lowRank: 8, dropout: 0.1 };
    expect(checkpointModelMismatch(spec(lowRank), architectureFromFlags({ model: "dlrm", embeddingDim: 16 }), { embeddingDim: 16 })).toBe('holds model dcn-v2, but --model is dlrm: it was trained with --model dcn-v2 and a --model-config of {"lowRank":8}');
    expect(checkpointModelMismatch(spec(lowRank), saved.architecture, { embeddingDim: 16, modelConfig: "b.json" })).toBe(`has dcn-v2 lowRank 8, but this job's (--model-config) is ${JSON.stringify(saved.architecture.lowRank)}: it was trained with --model dcn-v2 and a --model-config of {"lowRank":8}`);
    expect(checkpointModelMismatch(spec(lowRank), { ...lowRank, dropout: 0 }, { embeddingDim: 16 })).toBeNull();
    // dlrm's bottom MLP ends in the checkpoint's embedding dim by default: that is no departure from its defaults.
    const dlrm8 = spec(architectureFromFlags({ model: "dlrm", embeddingDim: 8 }), 8);
    expect(checkpointModelMismatch(dlrm8, architectureFromFlags({ model: "wide-deep", embeddingDim: 8 }), { embeddingDim: 8 })).toBe("holds model dlrm, but --model is wide-deep: it was trained with --model dlrm at its default hyper-parameters");
    // The job's --embedding-dim is another: the flags to give name the checkpoint's.
    expect(checkpointModelMismatch(dlrm8, architectureFromFlags({ model: "wide-deep", embeddingDim: 16 }), { embeddingDim: 16 })).toBe("holds model dlrm, but --model is wide-deep: it was trained with --model dlrm --embedding-dim 8 at its default hyper-parameters");
  });

  it("says the job's value is the default when no flag gave it, and names only the flags given otherwise", () => {
    const trained = spec(architectureFromFlags({ model: "wide-deep", embeddingDim: 16 }));
    trained.architecture.deepMlp = [32, 16];
    const job = architectureFromFlags({ model: "wide-deep", embeddingDim: 16 });
    const wasTrained = 'it was trained with --model wide-deep and a --model-config of {"deepMlp":[32,16]}';
    expect(checkpointModelMismatch(trained, job, { embeddingDim: 16 })).toBe(`has wide-deep deepMlp [32,16], but this job's (the default, no --model-config) is [64,32]: ${wasTrained}`);
    expect(checkpointModelMismatch(trained, job, { embeddingDim: 16, modelConfig: "b.json" })).toBe(`has wide-deep deepMlp [32,16], but this job's (--model-config) is [64,32]: ${wasTrained}`);
    // dlrm's widths have flags of their own.
    const dlrm = spec(architectureFromFlags({ model: "dlrm", embeddingDim: 16 }));
    const top = (given: { topMlp?: number[]; modelConfig?: string }) => checkpointModelMismatch(dlrm, { ...dlrm.architecture, topMlp: [32] }, { embeddingDim: 16, ...given });
    expect(top({})).toMatch(/^has dlrm topMlp \[64,32\], but this job's \(the default, no --top-mlp or --model-config\) is \[32\]/);
    expect(top({ topMlp: [32] })).toMatch(/this job's \(--top-mlp\) is \[32\]/);
    expect(top({ topMlp: [32], modelConfig: "b.json" })).toMatch(/this job's \(--top-mlp or --model-config\) is \[32\]/);
  });

  it("names every hyper-parameter that differs, so one restart mends them all", () => {
    const trained = spec(architectureFromFlags({ model: "dcn-v2", embeddingDim: 16 }));
    Object.assign(trained.architecture, { lowRank: 8, crossLayers: 2 });
    const job = architectureFromFlags({ model: "dcn-v2", embeddingDim: 16 });
    expect(checkpointModelMismatch(trained, job, { embeddingDim: 16 })).toBe(
      `has dcn-v2 crossLayers 2, lowRank 8, but this job's (the default, no --model-config) are crossLayers ${JSON.stringify(job.crossLayers)}, lowRank ${JSON.stringify(job.lowRank)}: it was trained with --model dcn-v2 and a --model-config of {"crossLayers":2,"lowRank":8}`,
    );
    // dlrm's two widths, one given by its flag: each source named once.
    const dlrm = spec(architectureFromFlags({ model: "dlrm", embeddingDim: 16 }));
    expect(checkpointModelMismatch(dlrm, { ...dlrm.architecture, bottomMlp: [32, 16], topMlp: [32] }, { embeddingDim: 16, topMlp: [32] })).toMatch(
      /^has dlrm bottomMlp \[64,16\], topMlp \[64,32\], but this job's \(the default, no --bottom-mlp or --model-config; --top-mlp\) are bottomMlp \[32,16\], topMlp \[32\]: /,
    );
  });
});
