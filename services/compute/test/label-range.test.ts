import { describe, expect, it } from "vitest";
import { MAX_TARGET, type LabelSpec } from "@pangea/features";
import { SampleError, sampleLabel } from "../src/sources/sample-columns.js";

const watch: LabelSpec = { name: "watch", loss: "mse", weight: 1, index: 1, column: "watch" };
const click: LabelSpec = { name: "click", loss: "bce", weight: 1, index: 0, column: "click" };

describe("a regression target too large to train on", () => {
  it("is a bad record naming the label, not a non-finite loss that stops every trainer", () => {
    expect(sampleLabel(watch, [1, MAX_TARGET])).toBe(MAX_TARGET);
    expect(sampleLabel(watch, [1, -MAX_TARGET])).toBe(-MAX_TARGET);
    expect(() => sampleLabel(watch, [1, 1e30])).toThrow(SampleError);
    expect(() => sampleLabel(watch, [1, 1e30])).toThrow("label 1 (watch) is 1e+30, beyond the 1e+12 a regression target may reach (its squared error would overflow)");
    // A binary label of any size is 0 or 1.
    expect(sampleLabel(click, [1e30, 0])).toBe(1);
    expect(() => sampleLabel(watch, [1, Number.NaN])).toThrow("label 1 (watch) is NaN");
  });
});
