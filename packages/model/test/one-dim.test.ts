import { describe, expect, it } from "vitest";
import { mixedDimsProblem, oneDimReason } from "../src/architectures/architecture.js";
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
