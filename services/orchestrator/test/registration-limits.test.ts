import { describe, expect, it } from "vitest";
import type { EvalReport__Output } from "@pangea/schema";
import { TokenBucket } from "@pangea/kit";
import { checkEvalReport } from "../src/job/eval-report-check.js";
import { checkActsFor } from "../src/server/peer-check.js";
import { OrchestratorErrors } from "../src/errors.js";

describe("TokenBucket (new trainer ids)", () => {
  it("gives the burst at once, then refills at the rate, never above the burst", () => {
    let now = 0;
    const b = new TokenBucket(3, 2, () => now);
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
    now = 499;
    expect(b.take()).toBe(false);
    now = 500; // 0.5 s at 2/s: one token
    expect(b.take()).toBe(true);
    expect(b.take()).toBe(false);
    now = 60_000; // a long pause refills to the burst, not beyond
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
  });
});

const report = (over: Partial<EvalReport__Output> = {}): EvalReport__Output =>
  ({ workerId: "trainer-0", step: "100", records: "5000", auc: 0.8, logloss: 0.45, meanPrediction: 0.25, labelRate: 0.26, ...over }) as EvalReport__Output;

describe("checkEvalReport", () => {
  it("takes the asked trainer's plausible report", () => {
    expect(() => checkEvalReport(report(), "trainer-0", 5000)).not.toThrow();
    expect(() => checkEvalReport(report({ auc: Number.NaN }), "trainer-0", 5000)).not.toThrow(); // a one-class held-out split has no AUC
  });

  it.each([
    ["another worker's", report({ workerId: "trainer-1" }), /from "trainer-1" refused: trainer trainer-0 was asked to evaluate/],
    ["no records", report({ records: "0" } as Partial<EvalReport__Output>), /covers 0 records, the held-out split has 5000/],
    ["more records than held out", report({ records: "5001" } as Partial<EvalReport__Output>), /covers 5001 records, the held-out split has 5000/],
    ["AUC above 1", report({ auc: 1.5 }), /AUC 1\.5 is outside \[0, 1\]/],
    ["negative logloss", report({ logloss: -1 }), /logloss -1 is not a finite non-negative number/],
    ["infinite logloss", report({ logloss: Number.POSITIVE_INFINITY }), /logloss Infinity/],
    ["a label rate above 1", report({ labelRate: 2 }), /label rate 2 must lie in \[0, 1\]/],
  ])("refuses %s report with ORCH_ERR_BAD_EVAL_REPORT", (_what, r, message) => {
    let err: unknown;
    try {
      checkEvalReport(r, "trainer-0", 5000);
    } catch (e) {
      err = e;
    }
    expect(OrchestratorErrors.is(err, "ORCH_ERR_BAD_EVAL_REPORT")).toBe(true);
    expect((err as Error).message).toMatch(message);
  });

  it("a source without a held-out split (Kafka) is evaluated on 0 records, with no figures to check", () => {
    expect(() => checkEvalReport(report({ records: "0", auc: Number.NaN, logloss: Number.NaN } as Partial<EvalReport__Output>), "trainer-0", 0)).not.toThrow();
    expect(() => checkEvalReport(report({ workerId: "trainer-9", records: "0" } as Partial<EvalReport__Output>), "trainer-0", 0)).toThrow(/from "trainer-9" refused/);
  });

  it("refuses any report before a trainer was asked", () => {
    expect(() => checkEvalReport(report(), null, 5000)).toThrow(/no trainer has been asked to evaluate yet/);
  });
});

describe("checkActsFor", () => {
  it("without TLS nothing is known about the caller and nothing is refused", () => {
    expect(() => checkActsFor(null, "trainer", "trainer-0", "Heartbeat")).not.toThrow();
  });
  it("a shared role certificate acts for any worker of its role, not for another role", () => {
    expect(() => checkActsFor({ role: "trainer", name: "trainer" }, "trainer", "trainer-7", "GetWork")).not.toThrow();
    expect(() => checkActsFor({ role: "trainer", name: "trainer" }, "compute", "compute-1", "RegisterWorker")).toThrow(/RegisterWorker for compute compute-1 refused: the caller has a trainer certificate/);
  });
  it("a per-worker certificate acts only for its own worker", () => {
    expect(() => checkActsFor({ role: "trainer", name: "trainer-0" }, "trainer", "trainer-0", "Push")).not.toThrow();
    expect(() => checkActsFor({ role: "trainer", name: "trainer-0" }, "trainer", "trainer-1", "Push")).toThrow(/\(a trainer certificate "trainer-0"\) is for worker trainer-0 only/);
  });
});
