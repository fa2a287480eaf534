import type { Architecture, DenseParam, ModelShape } from "./architecture.js";
import { taskCount } from "./architecture.js";
import type { LinearLayer, Ops } from "./ops.js";

/**
 * A value of the forward pass by its shape alone: a batch's matrix [B, cols]
 * (an input or what an op made of one), or a declared parameter.
 */
interface Shape {
  cols: number;
  /** A parameter's declaration; absent: a [B, cols] batch value. */
  param?: DenseParam;
  /** How a message names it. */
  what: string;
}

class ForwardShapeError extends Error {
  /** Whether a width written in for one data set could be the cause (the stand-in input is then worth naming). */
  constructor(message: string, readonly ofWidths = true) {
    super(message);
  }
}

const fail = (msg: string, ofWidths = true): never => {
  throw new ForwardShapeError(msg, ofWidths);
};

const dims = (p: DenseParam) => `[${p.shape.join(", ")}]`;

/** A batch value an op can take: a declared parameter is not one (parameters enter as a linear layer's weight and bias). */
function batch(op: string, x: Shape): Shape {
  if (x.param) fail(`${op} takes the batch's values, but is given param ${x.param.name} ${dims(x.param)} (params enter as a linear layer's weight or bias)`);
  return x;
}

/**
 * Ops over shapes: each checks its operands as the trainer's and serving's
 * ops need them and gives its result's shape, without computing anything, so
 * a forward pass is checked on any input width (the stand-in's 2^20 dense
 * features included) in microseconds.
 */
class ShapeOps implements Ops<Shape> {
  linear(x: Shape, w: Shape, b: Shape | null, _relu: boolean): Shape {
    batch("linear", x);
    const wp = w.param ?? fail(`linear's weight must be a declared param, but is ${w.what}`);
    if (wp.shape.length !== 2) fail(`linear's weight ${wp.name} is declared ${dims(wp)}; a weight is [in, out]`);
    const [rows, cols] = wp.shape as [number, number];
    if (rows !== x.cols) fail(`linear: ${wp.name} is declared ${dims(wp)}, so its input must have ${rows} columns, but ${x.what} has ${x.cols}`);
    if (b) {
      const bp = b.param ?? fail(`linear's bias must be a declared param, but is ${b.what}`);
      const width = bp.shape.length === 1 ? bp.shape[0] : bp.shape[0] === 1 ? bp.shape[1] : -1;
      if (width !== cols) fail(`linear: bias ${bp.name} is declared ${dims(bp)}, but its weight ${wp.name} ${dims(wp)} has ${cols} outputs (the bias must be [${cols}])`);
    }
    return { cols, what: `the output of linear(${wp.name})` };
  }

  linears(x: Shape, layers: readonly LinearLayer<Shape>[]): Shape[] {
    return layers.map((l) => this.linear(x, l.w, l.b, l.relu));
  }

  concat(xs: readonly Shape[]): Shape {
    if (xs.length === 0) fail("concat of no values");
    xs.forEach((x) => batch("concat", x));
    return { cols: xs.reduce((a, x) => a + x.cols, 0), what: `the concat of ${xs.length} values` };
  }

  add(a: Shape, b: Shape): Shape {
    batch("add", a);
    batch("add", b);
    if (a.cols !== b.cols && a.cols !== 1 && b.cols !== 1) fail(`add: ${a.what} has ${a.cols} columns and ${b.what} ${b.cols} (they must match, or one be a single column)`);
    return { cols: Math.max(a.cols, b.cols), what: "a sum" };
  }

  mul(a: Shape, b: Shape): Shape {
    batch("mul", a);
    batch("mul", b);
    if (a.cols !== b.cols) fail(`mul: ${a.what} has ${a.cols} columns and ${b.what} ${b.cols} (they must match)`);
    return { cols: a.cols, what: "a product" };
  }

  dotInteraction(x: Shape, emb: Shape, slots: number, dim: number): Shape {
    batch("dotInteraction", x);
    batch("dotInteraction", emb);
    if (x.cols !== dim) fail(`dotInteraction: x (${x.what}) has ${x.cols} columns, but dim is ${dim}`);
    if (emb.cols !== slots * dim) fail(`dotInteraction: ${emb.what} has ${emb.cols} columns, but ${slots} slots of dim ${dim} are ${slots * dim}`);
    const n = slots + 1;
    return { cols: dim + (n * (n - 1)) / 2, what: "the dot interaction" };
  }

  slotColumns(emb: Shape, rowWidths: readonly number[], from: number, take: readonly number[]): Shape {
    batch("slotColumns", emb);
    const width = rowWidths.reduce((a, w) => a + w, 0);
    if (emb.cols !== width) fail(`slotColumns: ${emb.what} has ${emb.cols} columns, but the slots' row widths add up to ${width} (the pooled embeddings are as wide as the architecture's rowWidth() makes each slot's row)`, false);
    if (take.length !== rowWidths.length) fail(`slotColumns: ${take.length} column counts for ${rowWidths.length} slots`);
    const over = take.findIndex((t, s) => from < 0 || t < 0 || from + t > rowWidths[s]!);
    if (over >= 0) fail(`slotColumns: slot #${over}'s columns ${from}..${from + take[over]!} are past its row's ${rowWidths[over]}`);
    return { cols: take.reduce((a, t) => a + t, 0), what: "the slots' columns" };
  }

  sumSlots(x: Shape, slots: number, width: number): Shape {
    batch("sumSlots", x);
    if (x.cols !== slots * width) fail(`sumSlots: ${x.what} has ${x.cols} columns, but ${slots} slots of width ${width} are ${slots * width}`);
    return { cols: width, what: "the slots' sum" };
  }

  fmInteraction(v: Shape, slots: number, dim: number): Shape {
    batch("fmInteraction", v);
    if (v.cols !== slots * dim) fail(`fmInteraction: ${v.what} has ${v.cols} columns, but ${slots} slots of dim ${dim} are ${slots * dim}`);
    return { cols: 1, what: "the FM interaction" };
  }

  softmax(x: Shape): Shape {
    batch("softmax", x);
    return { cols: x.cols, what: "a softmax" };
  }

  dropout(x: Shape, rate: number, name: string): Shape {
    batch("dropout", x);
    if (!(rate >= 0 && rate < 1)) fail(`dropout after ${name}: rate must be at least 0 and below 1, got ${rate}`);
    return x;
  }

  mixture(g: Shape, xs: readonly Shape[]): Shape {
    batch("mixture", g);
    xs.forEach((x) => batch("mixture", x));
    if (g.cols !== xs.length) fail(`mixture: the gates (${g.what}) have ${g.cols} columns for ${xs.length} experts`);
    const cols = xs[0]?.cols ?? fail("mixture of no experts");
    const other = xs.find((x) => x.cols !== cols);
    if (other) fail(`mixture: the experts differ in width (${cols} and ${other.cols})`);
    return { cols, what: "a mixture" };
  }
}

/**
 * Why an architecture's forward pass cannot run on this shape with the params
 * it declares (one line naming the op and the param), or null: it reads a
 * param it does not declare, declares one it never reads (it would never be
 * trained), gives a layer an input of another width than its weight's rows,
 * or outputs other than a column per task. Run on shapes, before any data:
 * otherwise a mistake in a new architecture shows first as an error deep in
 * TensorFlow.js at the first step. standIn: the shape is the orchestrator's
 * stand-in at start (the message says so).
 */
export function forwardShapeProblem(arch: Architecture<any>, shape: ModelShape, config: Record<string, unknown>, rowWidths: readonly number[], standIn = false): string | null {
  const declared = new Map(arch.params(shape, config).map((p) => [p.name, p] as const));
  const read = new Set<string>();
  const param = (name: string): Shape => {
    const p = declared.get(name);
    if (!p) {
      const names = [...declared.keys()];
      // A name, not a width: the stand-in's note would point away from the typo.
      fail(`it reads param ${JSON.stringify(name)}, which params() does not declare (it declares ${names.slice(0, 8).join(", ")}${names.length > 8 ? `, ... (${names.length})` : names.length ? "" : "none"})`, false);
    }
    read.add(name);
    return { cols: p!.shape.at(-1)!, param: p!, what: `param ${name}` };
  };
  const input = {
    dense: { cols: shape.numDense, what: `the dense input [B, ${shape.numDense}]` },
    emb: { cols: rowWidths.reduce((a, w) => a + w, 0), what: `the pooled embeddings [B, ${rowWidths.reduce((a, w) => a + w, 0)}]` },
  };
  try {
    const out = batch("the output", arch.forward(new ShapeOps(), param, input, shape, config));
    const T = taskCount(shape);
    if (out.cols !== T) fail(`its output (${out.what}) has ${out.cols} columns, but the model has ${T} task${T === 1 ? "" : "s"} (one column each)`);
    const unread = [...declared.keys()].filter((n) => !read.has(n));
    if (unread.length) fail(`it declares param${unread.length === 1 ? "" : "s"} ${unread.slice(0, 4).join(", ")}${unread.length > 4 ? ", ..." : ""} but its forward pass never reads ${unread.length === 1 ? "it" : "them"} (never trained)`, false);
    return null;
  } catch (err) {
    // The stand-in's widths are no data's: said so, or a width written in for the user's data reads as a mystery.
    const where = standIn
      ? ` (on the stand-in input checked at start, ${shape.numDense.toLocaleString("en-US")} dense features and ${shape.numSlots.toLocaleString("en-US")} slot${shape.numSlots === 1 ? "" : "s"}, no data's shape: a param's shape must follow the shape params() is given, not a width written in for one data set)`
      : "";
    if (err instanceof ForwardShapeError) return `model ${arch.name}'s forward pass: ${err.message}${err.ofWidths ? where : ""}`;
    // The architecture's own code failed on values it did not expect (shapes instead of tensors): where, for its author.
    const e = err as Error;
    const frame = e?.stack?.split("\n").find((l) => /^\s+at /.test(l))?.trim();
    return `model ${arch.name}'s forward pass failed on a shape check: ${e?.name ?? "Error"}: ${e?.message ?? String(err)}${frame ? ` (${frame})` : ""}${where}`;
  }
}
