import { beforeAll, describe, expect, it } from "vitest";
import { tf } from "../src/backend/tfjs-core.js";
import { Rng } from "@pangea/kit";
import { denseParams, dlrmSpec, initDenseParams } from "@pangea/model";
import { nativeBlas } from "@pangea/blas";
import { selectBackend } from "../src/backend/select-backend.js";
import { dense } from "../src/model/dense-layer.js";
import { interactionFeatures, pairwiseDots, upperTriangleIndex } from "../src/model/interaction.js";
import { CtrModel, type ModelBatch } from "../src/model/ctr-model.js";

const rng = new Rng(11);
const rand = (n: number, scale = 1) => Float32Array.from({ length: n }, () => rng.normal() * scale);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Runs fn on a backend and returns plain arrays, so results from two backends can be compared. */
async function on<T>(backend: string, fn: () => T): Promise<T> {
  await tf.setBackend(backend);
  return fn();
}

const BACKENDS = ["cpu", "wasm"];
/** The native-addon code paths when the addon is built here, and always the TensorFlow.js-only ones. */
const NATIVE = nativeBlas().blas ? [true, false] : [false];

beforeAll(async () => {
  await selectBackend("wasm");
  await selectBackend("cpu");
});

describe("dense layer's hand-written gradient", () => {
  it.each([
    [1, 1, 1, true],
    [7, 13, 5, true],
    [33, 17, 1, false],
    [64, 367, 64, true],
  ])("equals autodiff of x W + b for [%d x %d] x [%d], relu %s, on cpu and wasm", async (b, n, m, relu) => {
    const x = rand(b * n);
    const w = rand(n * m, 0.3);
    const bias = rand(m, 0.1);
    const dy = rand(b * m);
    const reference = await on("cpu", () =>
      tf.tidy(() => {
        const f = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => {
          const z = tf.add(tf.matMul(xi as tf.Tensor2D, wi as tf.Tensor2D), bi);
          return relu ? tf.relu(z) : z;
        };
        const g = tf.grads(f)([tf.tensor2d(x, [b, n]), tf.tensor2d(w, [n, m]), tf.tensor1d(bias)], tf.tensor2d(dy, [b, m]));
        return { y: f(tf.tensor2d(x, [b, n]), tf.tensor2d(w, [n, m]), tf.tensor1d(bias)).dataSync(), g: g.map((t) => t.dataSync()) };
      }),
    );
    for (const backend of BACKENDS) {
      for (const native of NATIVE) {
        const got = await on(backend, () =>
          tf.tidy(() => {
            const f = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => dense(xi as tf.Tensor2D, wi as tf.Tensor2D, bi as tf.Tensor1D, relu, native);
            const g = tf.grads(f)([tf.tensor2d(x, [b, n]), tf.tensor2d(w, [n, m]), tf.tensor1d(bias)], tf.tensor2d(dy, [b, m]));
            return { y: f(tf.tensor2d(x, [b, n]), tf.tensor2d(w, [n, m]), tf.tensor1d(bias)).dataSync(), g: g.map((t) => t.dataSync()) };
          }),
        );
        expect(maxDiff(got.y, reference.y), `${backend} native ${native}`).toBeLessThan(1e-4);
        got.g.forEach((g, i) => expect(maxDiff(g, reference.g[i]!), `${backend} native ${native} grad ${i}`).toBeLessThan(1e-3));
      }
    }
  });
});

describe("pairwise dot interaction's hand-written gradient", () => {
  it.each([[1, 2, 1], [3, 5, 4], [16, 27, 16]])("equals autodiff for B=%d, n=%d, D=%d on cpu and wasm", async (B, n, D) => {
    const z = rand(B * n * D);
    const P = (n * (n - 1)) / 2;
    const dy = rand(B * P);
    const tri = upperTriangleIndex(n);
    const reference = await on("cpu", () =>
      tf.tidy(() => {
        const f = (zi: tf.Tensor) => tf.gather(tf.reshape(tf.matMul(zi as tf.Tensor3D, zi as tf.Tensor3D, false, true), [B, n * n]), tf.tensor1d(tri, "int32"), 1);
        return { y: f(tf.tensor3d(z, [B, n, D])).dataSync(), g: tf.grad(f)(tf.tensor3d(z, [B, n, D]), tf.tensor2d(dy, [B, P])).dataSync() };
      }),
    );
    for (const backend of BACKENDS) {
      for (const native of NATIVE) {
        const got = await on(backend, () =>
          tf.tidy(() => {
            const idx = tf.tensor1d(tri, "int32");
            // Z = [x; emb] per sample: x is each sample's first vector, emb the other n - 1.
            const xs = Float32Array.from({ length: B * D }, (_, i) => z[Math.floor(i / D) * n * D + (i % D)]!);
            const es = Float32Array.from({ length: B * (n - 1) * D }, (_, i) => z[Math.floor(i / ((n - 1) * D)) * n * D + D + (i % ((n - 1) * D))]!);
            const f = (xi: tf.Tensor, ei: tf.Tensor) => pairwiseDots(xi as tf.Tensor2D, ei as tf.Tensor3D, idx, native);
            const [gx, ge] = tf.grads(f)([tf.tensor2d(xs, [B, D]), tf.tensor3d(es, [B, n - 1, D])], tf.tensor2d(dy, [B, P])).map((t) => t.dataSync());
            // Reassembled in Z's layout to compare with the reference gradient.
            const g = new Float32Array(B * n * D);
            for (let b = 0; b < B; b++) {
              g.set(gx!.subarray(b * D, (b + 1) * D), b * n * D);
              g.set(ge!.subarray(b * (n - 1) * D, (b + 1) * (n - 1) * D), b * n * D + D);
            }
            return { y: f(tf.tensor2d(xs, [B, D]), tf.tensor3d(es, [B, n - 1, D])).dataSync(), g };
          }),
        );
        expect(maxDiff(got.y, reference.y), `${backend} native ${native}`).toBeLessThan(1e-3);
        expect(maxDiff(got.g, reference.g), `${backend} native ${native}`).toBeLessThan(1e-3);
      }
    }
  });
});

describe("interaction features [x, pairs]", () => {
  it.each([[3, 5, 4], [16, 27, 16]])("on wasm (written into h's rows in place) equal concat(x, pairs) and its autodiff on cpu, B=%d, n=%d, D=%d", async (B, n, D) => {
    const S = n - 1;
    const xs = rand(B * D);
    const es = rand(B * S * D);
    const P = (n * (n - 1)) / 2;
    const dy = rand(B * (D + P));
    const tri = upperTriangleIndex(n);
    const run = () =>
      tf.tidy(() => {
        const idx = tf.tensor1d(tri, "int32");
        const f = (xi: tf.Tensor, ei: tf.Tensor) => interactionFeatures(xi as tf.Tensor2D, ei as tf.Tensor3D, idx);
        const g = tf.grads(f)([tf.tensor2d(xs, [B, D]), tf.tensor3d(es, [B, S, D])], tf.tensor2d(dy, [B, D + P])).map((t) => t.dataSync());
        return { y: f(tf.tensor2d(xs, [B, D]), tf.tensor3d(es, [B, S, D])).dataSync(), g };
      });
    const cpu = await on("cpu", run);
    const wasm = await on("wasm", run);
    expect(maxDiff(wasm.y, cpu.y)).toBeLessThan(1e-4);
    wasm.g.forEach((g, i) => expect(maxDiff(g, cpu.g[i]!), `grad ${i}`).toBeLessThan(1e-4));
  });
});

describe("DLRM train step", () => {
  const spec = dlrmSpec(3, 2, 4, [5, 4], [6]);

  it("gives gradients that match central finite differences of its own loss", async () => {
    await tf.setBackend("cpu");
    const model = new CtrModel(spec);
    const values = initDenseParams(spec, 3);
    const rows = rand(3 * 4, 0.3);
    // Sample 1's slot 0 holds two ids (sum pooled); sample 0's slot 1 holds none.
    const batch: ModelBatch = {
      size: 2,
      dense: rand(6),
      labels: Float32Array.from([1, 0]),
      weights: Float32Array.from([0.5, 2]),
      inverse: Int32Array.from([0, 1, 1, 2]),
      cellOfValue: Int32Array.from([0, 2, 2, 3]),
    };
    const out = model.trainStep(values, rows, 3, batch);
    const lossAt = (v: Float32Array[], r: Float32Array) => model.trainStep(v, r, 3, batch).loss;
    const eps = 1e-2;
    const probes: [string, () => number, () => number][] = [];
    for (const [pi, k] of [[0, 0], [1, 2], [2, 5], [denseParams(spec).length - 2, 3]] as const) {
      probes.push([`dense ${pi}[${k}]`, () => out.denseGrads[pi]![k]!, () => {
        const plus = values.map((v) => v.slice());
        const minus = values.map((v) => v.slice());
        plus[pi]![k]! += eps;
        minus[pi]![k]! -= eps;
        return (lossAt(plus, rows) - lossAt(minus, rows)) / (2 * eps);
      }]);
    }
    for (const k of [0, 5, 9, 11]) {
      probes.push([`row value ${k}`, () => out.rowGrads[k]!, () => {
        const plus = rows.slice();
        const minus = rows.slice();
        plus[k]! += eps;
        minus[k]! -= eps;
        return (lossAt(values, plus) - lossAt(values, minus)) / (2 * eps);
      }]);
    }
    for (const [name, analytic, numeric] of probes) expect(analytic(), name).toBeCloseTo(numeric(), 2);
  });

  it.runIf(nativeBlas().blas)("on wasm (pooling into and gradients read from the heap in place) a step equals the same step on cpu", async () => {
    const wide = dlrmSpec(3, 4, 8, [16, 8], [6]);
    const model = new CtrModel(wide);
    const values = initDenseParams(wide, 5);
    const rows = rand(6 * 8, 0.3);
    // 3 samples x 4 slots; cell 1 holds two values, cell 6 none.
    const cellOfValue = Int32Array.from([0, 1, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]);
    const batch: ModelBatch = { size: 3, dense: rand(9), labels: Float32Array.from([1, 0, 1]), inverse: Int32Array.from([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]), cellOfValue };
    const cpu = await on("cpu", () => model.trainStep(values, rows, 6, batch));
    const wasm = await on("wasm", () => model.trainStep(values, rows, 6, batch));
    expect(wasm.loss).toBeCloseTo(cpu.loss, 5);
    expect(maxDiff(wasm.predictions, cpu.predictions)).toBeLessThan(1e-5);
    wasm.denseGrads.forEach((g, i) => expect(maxDiff(g, cpu.denseGrads[i]!), `dense ${i}`).toBeLessThan(1e-5));
    expect(maxDiff(wasm.rowGrads, cpu.rowGrads)).toBeLessThan(1e-5);
    expect(wasm.rowGrads.some((g) => g !== 0)).toBe(true);
    const p = await on("wasm", () => model.predict(values, rows, 6, batch));
    expect(maxDiff(p, cpu.predictions)).toBeLessThan(1e-5);
  });

  it("weights scale each sample's loss: weight 0 removes a sample, 1 for all equals no weights", async () => {
    await tf.setBackend("cpu");
    const model = new CtrModel(spec);
    const values = initDenseParams(spec, 3);
    const rows = rand(4 * 4, 0.3);
    const base = { size: 2, dense: rand(6), labels: Float32Array.from([1, 0]), inverse: Int32Array.from([0, 1, 2, 3]), cellOfValue: null };
    const plain = model.trainStep(values, rows, 4, base);
    const ones = model.trainStep(values, rows, 4, { ...base, weights: Float32Array.from([1, 1]) });
    expect(ones.loss).toBeCloseTo(plain.loss, 6);
    const onlyFirst = model.trainStep(values, rows, 4, { ...base, weights: Float32Array.from([2, 0]) });
    // Sample 1's rows (2, 3) get no gradient when its weight is 0.
    expect(Array.from(onlyFirst.rowGrads.subarray(8, 16)).every((g) => g === 0)).toBe(true);
    expect(Array.from(onlyFirst.rowGrads.subarray(0, 8)).some((g) => g !== 0)).toBe(true);
  });
});
