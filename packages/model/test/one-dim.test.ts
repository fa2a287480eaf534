import { describe, expect, it } from "vitest";
import { mixedDimsProblem, oneDimReason, slotName } from "../src/architectures/architecture.js";
import { ARCHITECTURES } from "../src/architectures/registry.js";

describe("an architecture's one-dim rule", () => {
  it("is a fixed reason, none, or a function of the hyper-parameters (an optional FM term): the refusal then names the slots as the fixed one does", () => {
    expect(oneDimReason(ARCHITECTURES.get("dlrm")!, {})).toBe("its dot products pair every slot with every other and with the bottom MLP's output");
    expect(oneDimReason(ARCHITECTURES.get("wide-deep")!, {})).toBeNull();
    const lrFm = { oneDim: (c: { fm: boolean }) => (c.fm ? "its FM term takes the dot product of every pair of slots" : null) };
    expect(oneDimReason(lrFm, { fm: false })).toBeNull();
    const why = oneDimReason(lrFm, { fm: true })!;
    const shape = { numDense: 13, numSlots: 3, embeddingDim: 16, slotDims: [16, 8, 4] };
    expect(mixedDimsProblem(shape, "lr-fm", why, ["dcn-v2", "wide-deep"], [3, 7, 9])).toBe(
      "lr-fm needs one embedding dim for every slot (its FM term takes the dot product of every pair of slots), but slot 7 has 8, slot 9 has 4 where the model's is --embedding-dim 16; dcn-v2 and wide-deep take mixed dims",
    );
  });
});

describe("a refused model's message names where the problem comes from", () => {
  it("a forward pass that does not fit its own params names the definition, not the config file it ran with; a field names the file or dlrm's flag", async () => {
    const { specProblemSource } = await import("../src/model-flags.js");
    const f = { model: "lr-fm", modelConfig: "cfg/b.json" };
    expect(specProblemSource("model lr-fm's forward pass: it reads param \"nope.w\", which params() does not declare", f, {})).toBe(" (in lr-fm's definition, packages/model/src/architectures/; run with the hyper-parameters of cfg/b.json)");
    expect(specProblemSource("model lr-fm's forward pass failed on a shape check: TypeError: x is not a function (at forward)", f, {})).toBe(" (in lr-fm's definition, packages/model/src/architectures/; run with the hyper-parameters of cfg/b.json)");
    expect(specProblemSource("model lr-fm field dropout: expected dropout below 1", f, {})).toBe(" (from cfg/b.json)");
    expect(specProblemSource("dlrm's bottomMlp must end in the embedding dim 16, ends in 8", { model: "dlrm", bottomMlp: [64, 8] }, {})).toBe(" (given by --bottom-mlp)");
  });
});

describe("an architecture's check", () => {
  it("is given the slots' ids where they are known, so a rule of its own can name the slot", async () => {
    const { validateSpec } = await import("../src/spec.js");
    const arch = ARCHITECTURES.get("wide-deep")!;
    const seen: unknown[] = [];
    const original = arch.check;
    (arch as { check: typeof arch.check }).check = (shape, config, slots) => {
      seen.push(slots);
      return shape.slotDims?.[1] === 4 ? `wide-deep cannot take ${slotName(slots, 1)} at dim 4` : null;
    };
    try {
      const spec = { numDense: 13, numSlots: 3, embeddingDim: 8, slotDims: [8, 4, 8], architecture: { name: "wide-deep" } };
      expect(() => validateSpec(spec, [3, 7, 9])).toThrow("wide-deep cannot take slot 7 at dim 4");
      expect(() => validateSpec(spec)).toThrow("wide-deep cannot take slot #1 at dim 4");
      expect(seen).toEqual([[3, 7, 9], undefined]);
    } finally {
      (arch as { check: typeof arch.check }).check = original;
    }
  });
});
