import { describe, expect, it } from "vitest";
import { Rng } from "@pangea/kit";
import { StreamingAuc, aucAndLogloss } from "../src/index.js";

describe("StreamingAuc", () => {
  it("is the AUC of exactly the last `window` samples", () => {
    const rng = new Rng(3);
    const p = Float32Array.from({ length: 5000 }, () => rng.next());
    const y = Float32Array.from(p, (x) => (rng.next() < x ? 1 : 0));
    const s = new StreamingAuc(1000);
    for (let i = 0; i < 5000; i += 137) s.add(p.subarray(i, Math.min(5000, i + 137)), y.subarray(i, Math.min(5000, i + 137)));
    expect(s.size).toBe(1000);
    expect(s.auc()).toBeCloseTo(aucAndLogloss(p.subarray(4000), y.subarray(4000)).auc, 10);
    expect(s.auc()).toBeGreaterThan(0.6);
  });

  it("is NaN until both classes are seen", () => {
    const s = new StreamingAuc(10);
    s.add([0.2, 0.9], [1, 1]);
    expect(s.auc()).toBeNaN();
    s.add([0.1], [0]);
    expect(s.auc()).toBe(1);
  });
});
