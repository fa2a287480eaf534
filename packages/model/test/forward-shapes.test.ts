import { z } from "zod";
import { describe, expect, it } from "vitest";
import { ARCHITECTURE_NAMES, architectureConfig, validateSpec } from "../src/index.js";
import { forwardShapeProblem } from "../src/architectures/forward-shapes.js";
import { mlp, mlpParams, type Architecture, type DenseParam, type ModelShape } from "../src/architectures/architecture.js";

const shape: ModelShape = { numDense: 13, numSlots: 26, embeddingDim: 16 };
const rows = (s: ModelShape) => new Array<number>(s.numSlots).fill(s.embeddingDim);

/**
 * A user's two-layer MLP over [dense, slot vectors], as the README's recipe has one written, with a mistake
 * chosen by the test: its params and its forward pass as given.
 */
function mlp2(over: { params?: (s: ModelShape) => DenseParam[]; forward?: Architecture["forward"] }): Architecture {
  const params = (s: ModelShape): DenseParam[] => {
    const out: DenseParam[] = [];
    const last = mlpParams(out, "mlp", s.numDense + s.numSlots * s.embeddingDim, [64, 32]);
    out.push({ name: "out.w", shape: [last, 1] }, { name: "out.b", shape: [1] });
    return out;
  };
  return {
    name: "mlp2",
    summary: "two layers",
    config: z.object({}).strict(),
    check: () => null,
    rowWidth: (d) => d,
    params: over.params ?? params,
    forward:
      over.forward ??
      ((ops, param, input) => ops.linear(mlp(ops, param, "mlp", ops.concat([input.dense, input.emb]), 2), param("out.w"), param("out.b"), false)),
  };
}

const problem = (a: Architecture, s: ModelShape = shape) => forwardShapeProblem(a, s, {}, rows(s));

describe("an architecture's forward pass is checked against the params it declares, before any data", () => {
  it("every built-in architecture passes, on a data-sized shape, on the stand-in's 2^20 dense features and 32,768 slots, and with two tasks", () => {
    for (const name of ARCHITECTURE_NAMES) {
      const architecture = architectureConfig(name, name === "dlrm" ? { bottomMlp: [64, 16] } : {});
      expect(() => validateSpec({ ...shape, architecture })).not.toThrow();
      expect(() => validateSpec({ numDense: 1 << 20, numSlots: 32768, embeddingDim: 16, architecture }, undefined, { inputKnown: false })).not.toThrow();
      const tasks = [{ name: "click", loss: "bce" as const, weight: 1 }, { name: "stay", loss: "mse" as const, weight: 0.5 }];
      expect(() => validateSpec({ ...shape, tasks, architecture })).not.toThrow();
    }
  });

  it("a correct user architecture passes", () => {
    expect(problem(mlp2({}))).toBeNull();
  });

  it("a param the forward pass reads but params() does not declare is named, with what is declared", () => {
    const a = mlp2({ forward: (ops, param, input) => ops.linear(mlp(ops, param, "mlp", ops.concat([input.dense, input.emb]), 2), param("logit.w"), param("out.b"), false) });
    expect(problem(a)).toBe(`model mlp2's forward pass: it reads param "logit.w", which params() does not declare (it declares mlp.0.w, mlp.0.b, mlp.1.w, mlp.1.b, out.w, out.b)`);
  });

  it("a layer whose weight's rows are not its input's width names the weight, its declared shape and the input's width", () => {
    // The author forgot the embeddings in the first layer's input width.
    const params = (s: ModelShape): DenseParam[] => {
      const out: DenseParam[] = [];
      const last = mlpParams(out, "mlp", s.numDense, [64, 32]);
      out.push({ name: "out.w", shape: [last, 1] }, { name: "out.b", shape: [1] });
      return out;
    };
    expect(problem(mlp2({ params }))).toBe(`model mlp2's forward pass: linear: mlp.0.w is declared [13, 64], so its input must have 13 columns, but the concat of 2 values has 429`);
  });

  it("a width written in for one data set passes on that data and is refused on the stand-in saying which shape it was checked on", () => {
    const params = (s: ModelShape): DenseParam[] => {
      const out: DenseParam[] = [];
      const last = mlpParams(out, "mlp", s.numDense + 26 * s.embeddingDim, [64, 32]);
      out.push({ name: "out.w", shape: [last, 1] }, { name: "out.b", shape: [1] });
      return out;
    };
    expect(problem(mlp2({ params }))).toBeNull();
    const standIn: ModelShape = { numDense: 1 << 20, numSlots: 32768, embeddingDim: 16 };
    expect(forwardShapeProblem(mlp2({ params }), standIn, {}, rows(standIn), true)).toBe(
      "model mlp2's forward pass: linear: mlp.0.w is declared [1048992, 64], so its input must have 1048992 columns, but the concat of 2 values has 1572864 (on the stand-in input checked at start, 1,048,576 dense features and 32,768 slots, no data's shape: a param's shape must follow the shape params() is given, not a width written in for one data set)",
    );
  });

  it("a bias of another width than its weight's outputs, a param used as a batch value, a second output column and an unread param are each named", () => {
    const withBias = (b: number[]) => (s: ModelShape): DenseParam[] => {
      const out: DenseParam[] = [];
      const last = mlpParams(out, "mlp", s.numDense + s.numSlots * s.embeddingDim, [64, 32]);
      out.push({ name: "out.w", shape: [last, 1] }, { name: "out.b", shape: b as [number] });
      return out;
    };
    expect(problem(mlp2({ params: withBias([2]) }))).toBe(`model mlp2's forward pass: linear: bias out.b is declared [2], but its weight out.w [32, 1] has 1 outputs (the bias must be [1])`);
    expect(problem(mlp2({ forward: (ops, param, input) => ops.add(ops.linear(mlp(ops, param, "mlp", ops.concat([input.dense, input.emb]), 2), param("out.w"), null, false), param("out.b")) }))).toBe(
      `model mlp2's forward pass: add takes the batch's values, but is given param out.b [1] (params enter as a linear layer's weight or bias)`,
    );
    expect(problem(mlp2({ forward: (ops, param, input) => mlp(ops, param, "mlp", ops.concat([input.dense, input.emb]), 2) }))).toBe(
      `model mlp2's forward pass: its output (the output of linear(mlp.1.w)) has 32 columns, but the model has 1 task (one column each)`,
    );
    const extra = (s: ModelShape) => [...withBias([1])(s), { name: "unused.w", shape: [4, 4] } as DenseParam];
    expect(problem(mlp2({ params: extra }))).toBe(`model mlp2's forward pass: it declares param unused.w but its forward pass never reads it (never trained)`);
    // On the stand-in, too, with no word of widths written in for one data set: that is not what went wrong.
    const standIn: ModelShape = { numDense: 1 << 20, numSlots: 32768, embeddingDim: 16 };
    expect(forwardShapeProblem(mlp2({ params: extra }), standIn, {}, rows(standIn), true)).toBe(`model mlp2's forward pass: it declares param unused.w but its forward pass never reads it (never trained)`);
    // Row widths the architecture's rowWidth() gives that its forward pass does not follow: rowWidth() named.
    const wider = (s: ModelShape) => rows(s).map((w) => w + 1);
    expect(forwardShapeProblem(mlp2({ forward: (ops, param, input, sh) => ops.linear(ops.slotColumns(input.emb, rows(sh), 0, rows(sh)), param("out.w"), null, false) }), shape, {}, wider(shape))).toMatch(/^model mlp2's forward pass: slotColumns: the pooled embeddings \[B, \d+\] has \d+ columns, but the slots' row widths add up to \d+ \(the pooled embeddings are as wide as the architecture's rowWidth\(\) makes each slot's row\)$/);
  });

  it("an architecture's own code failing on the check is reported with the error and where it was thrown", () => {
    const a = mlp2({
      forward: () => {
        throw new TypeError("Cannot read properties of undefined (reading 'rank')");
      },
    });
    expect(problem(a)).toMatch(/^model mlp2's forward pass failed on a shape check: TypeError: Cannot read properties of undefined \(reading 'rank'\) \(at Object\.forward \(.*forward-shapes\.test\.ts:\d+:\d+\)\)$/);
  });

  it("a wrong slot-columns request and mismatched experts are named", () => {
    const cols = mlp2({ forward: (ops, param, input, s) => ops.linear(ops.slotColumns(input.emb, rows(s), 10, rows(s).map(() => 8)), param("out.w"), param("out.b"), false) });
    expect(problem(cols)).toBe(`model mlp2's forward pass: slotColumns: slot #0's columns 10..18 are past its row's 16`);
    const mix = mlp2({ forward: (ops, _param, input) => ops.mixture(input.dense, [input.dense, input.emb]) });
    expect(problem(mix)).toBe(`model mlp2's forward pass: mixture: the gates (the dense input [B, 13]) have 13 columns for 2 experts`);
  });
});
