import { describe, expect, it } from "vitest";
import { ARCHITECTURES, ARCHITECTURE_NAMES, architectureConfig, paramSize, type ModelShape } from "../src/index.js";

/**
 * At start the parameter budget is checked on the narrowest input (one dense feature, one slot of dim 1), on the
 * promise that an architecture's parameters only grow with its input: a model refused there would be over budget on
 * any data. Each architecture keeps that promise, at its defaults and with two tasks.
 */
describe("the narrowest input has the fewest parameters", () => {
  const count = (name: string, shape: ModelShape) => {
    const { name: _, ...config } = architectureConfig(name, {});
    return ARCHITECTURES.get(name)!.params(shape, config as never).reduce((a, p) => a + paramSize(p), 0);
  };
  it.each(ARCHITECTURE_NAMES)("%s", (name) => {
    const narrowest = count(name, { numDense: 1, numSlots: 1, embeddingDim: 1 });
    for (const numDense of [1, 2, 13])
      for (const numSlots of [1, 2, 26])
        for (const embeddingDim of [1, 2, 16])
          for (const tasks of [undefined, [{ name: "a", loss: "bce" as const, weight: 1 }, { name: "b", loss: "mse" as const, weight: 1 }]]) {
            const shape: ModelShape = { numDense, numSlots, embeddingDim, ...(tasks ? { tasks } : {}) };
            expect(count(name, shape), JSON.stringify(shape)).toBeGreaterThanOrEqual(narrowest);
          }
  });
});
