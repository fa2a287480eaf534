import type { EvalReport__Output } from "@pangea/schema";
import { printable } from "@pangea/kit";
import { OrchestratorErrors } from "../errors.js";

/**
 * The job's result is the one trainer's report it asked for: a report from
 * any other worker id, or one with figures no evaluation of the `heldOut`
 * records can produce, is refused and the job keeps waiting for the real one.
 */
export function checkEvalReport(report: EvalReport__Output, evaluator: string | null, heldOut: number): void {
  const bad = (msg: string) => OrchestratorErrors.create("ORCH_ERR_BAD_EVAL_REPORT", msg);
  if (report.workerId !== evaluator) {
    throw bad(`evaluation report from "${printable(report.workerId, 64)}" refused: ${evaluator ? `trainer ${evaluator} was asked to evaluate` : "no trainer has been asked to evaluate yet"}`);
  }
  const records = Number(report.records);
  const fraction = (v: number) => Number.isFinite(v) && v >= 0 && v <= 1;
  // A source without a held-out split (a Kafka stream) is evaluated on nothing: no figures to check.
  if (records === 0 && heldOut === 0) return;
  if (!(records > 0) || (heldOut > 0 && records > heldOut)) {
    throw bad(`evaluation report from ${evaluator} refused: it covers ${records} records, the held-out split has ${heldOut}`);
  }
  if (!fraction(report.auc) && !Number.isNaN(report.auc)) throw bad(`evaluation report from ${evaluator} refused: AUC ${report.auc} is outside [0, 1]`);
  if (!(Number.isFinite(report.logloss) && report.logloss >= 0)) throw bad(`evaluation report from ${evaluator} refused: logloss ${report.logloss} is not a finite non-negative number`);
  if (!fraction(report.meanPrediction) || !fraction(report.labelRate)) {
    throw bad(`evaluation report from ${evaluator} refused: mean prediction ${report.meanPrediction} and label rate ${report.labelRate} must lie in [0, 1]`);
  }
}
