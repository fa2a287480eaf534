import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Rng } from "@pangea/kit";
import { groupedAuc, taskMetrics, type Loss } from "../src/index.js";

/** The same metrics from sklearn and numpy (test/support/python/metrics_reference.py). */
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "../../../test/support/python/metrics_reference.py");
function reference(loss: Loss, p: number[], y: number[], groups: (number | null)[] | null): Record<string, number | null> {
  const r = spawnSync("/usr/bin/python3", [SCRIPT], { input: JSON.stringify({ loss, p, y, groups }), encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`metrics_reference.py failed (python3-sklearn installed?): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, number | null>;
}

/** Records of `users` users, 2 decimals of probability (so ties occur), labels drawn from a per-user rate. */
function clicks(seed: number, n: number, users: number) {
  const rng = new Rng(seed);
  const p: number[] = [];
  const y: number[] = [];
  const groups: (number | null)[] = [];
  for (let i = 0; i < n; i++) {
    const u = Math.floor(rng.next() * users);
    const q = Math.round(rng.next() * 100) / 100;
    p.push(q);
    // Users with a low id click rarely: many of their groups hold one class only.
    y.push(rng.next() < q * (u / users) ? 1 : 0);
    groups.push(rng.next() < 0.05 ? null : u);
  }
  return { p, y, groups };
}

describe("held-out metrics against sklearn", () => {
  it("binary task: AUC, log loss and GAUC (one-class groups and ungrouped records left out)", () => {
    const { p, y, groups } = clicks(11, 4000, 150);
    const ours = taskMetrics("bce", p, y, groups);
    const ref = reference("bce", p, y, groups);
    expect(ours.records).toBe(4000);
    expect(ours.auc).toBeCloseTo(ref.auc!, 10);
    expect(ours.logloss).toBeCloseTo(ref.logloss!, 10);
    expect(ours.grouped!.gauc).toBeCloseTo(ref.gauc!, 10);
    expect(ours.grouped!.groups).toBe(ref.gaucGroups);
    expect(ours.grouped!.records).toBe(ref.gaucRecords);
    // The data must exercise the exclusions, or the comparison proves less than it claims.
    expect(ours.grouped!.groups).toBeLessThan(150);
    expect(ours.ungrouped).toBe(groups.filter((g) => g === null).length);
    expect(ours.ungrouped).toBeGreaterThan(0);
    expect(ours.meanPrediction).toBeCloseTo(ref.meanPrediction!, 10);
    expect(ours.labelRate).toBeCloseTo(ref.labelRate!, 10);
    expect(ours.calibration).toBeCloseTo(ref.meanPrediction! / ref.labelRate!, 10);
    // GAUC differs from the global AUC here: users differ in click rate, which a global AUC rewards.
    expect(Math.abs(ours.grouped!.gauc - ours.auc)).toBeGreaterThan(1e-3);
  });

  it("regression task: RMSE and mean prediction against numpy; records with a NaN label left out", () => {
    const rng = new Rng(5);
    const y = Array.from({ length: 3000 }, () => rng.next() * 30);
    const p = y.map((v) => v + (rng.next() - 0.5) * 8);
    const ref = reference("mse", p, y, null);
    const withUnknown = taskMetrics("mse", [...p, 5, 7], [...y, Number.NaN, Number.NaN], null);
    expect(withUnknown.records).toBe(3000);
    expect(withUnknown.rmse).toBeCloseTo(ref.rmse!, 10);
    expect(withUnknown.meanPrediction).toBeCloseTo(ref.meanPrediction!, 10);
    expect(withUnknown.calibration).toBeCloseTo(ref.meanPrediction! / ref.labelRate!, 10);
    expect(withUnknown.auc).toBeNaN();
    expect(withUnknown.grouped).toBeNull();
  });

  it("GAUC of hand-worked groups", () => {
    // Group a: AUC 1 (3 records); group b: AUC 0.5 with a tie (4 records); group c: one class; null: no group.
    const g = groupedAuc([0.9, 0.1, 0.2, 0.5, 0.5, 0.3, 0.7, 0.4, 0.6], [1, 0, 0, 1, 0, 1, 0, 1, 0], ["a", "a", "a", "b", "b", "b", "b", "c", null]);
    // b: positives 0.5, 0.3; negatives 0.5, 0.7: pairs (0.5,0.5)=0.5, (0.5,0.7)=0, (0.3,0.5)=0, (0.3,0.7)=0 -> 0.125.
    expect(g).toEqual({ gauc: (3 * 1 + 4 * 0.125) / 7, groups: 2, records: 7 });
    expect(groupedAuc([0.1, 0.2], [1, 1], [1, 1]).gauc).toBeNaN();
  });
});
