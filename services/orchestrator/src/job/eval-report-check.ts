import type { EvalReport__Output } from "@pangea/schema";
import type { TaskSpec } from "@pangea/model";
import { printable } from "@pangea/kit";
import { OrchestratorErrors } from "../errors.js";

/**
 * The job's result is the one trainer's report it asked for: a report from
 * any other worker id, or one with figures no evaluation of the `heldOut`
 * records can produce, or whose tasks are not the job's `tasks`, is refused
 * and the job keeps waiting for the real one.
 */
export function checkEvalReport(report: EvalReport__Output, evaluator: string | null, heldOut: number, tasks: readonly TaskSpec[] | null = null): void {
  const bad = (msg: string) => OrchestratorErrors.create("ORCH_ERR_BAD_EVAL_REPORT", msg);
  if (report.workerId !== evaluator) {
    throw bad(`evaluation report from "${printable(report.workerId, 64)}" refused: ${evaluator ? `trainer ${evaluator} was asked to evaluate` : "no trainer has been asked to evaluate yet"}`);
  }
  const records = Number(report.records);
  const fraction = (v: number) => Number.isFinite(v) && v >= 0 && v <= 1;
  // A source without a held-out split (a Kafka stream) is evaluated on nothing: no figures to check.
  if (records === 0 && heldOut === 0) return;
  // The evaluator scores the whole split (compute serves it whole): a report of part of it is not the job's evaluation.
  if (!(records > 0) || (heldOut > 0 && records !== heldOut)) {
    throw bad(`evaluation report from ${evaluator} refused: it covers ${records} records, the held-out split has ${heldOut}`);
  }
  const refused = `evaluation report from ${evaluator} refused`;
  const probability = (what: string, f: { auc: number; logloss: number; meanPrediction: number; labelRate: number }) => {
    if (!fraction(f.auc) && !Number.isNaN(f.auc)) throw bad(`${refused}: ${what}AUC ${f.auc} is outside [0, 1]`);
    if (!(Number.isFinite(f.logloss) && f.logloss >= 0)) throw bad(`${refused}: ${what}logloss ${f.logloss} is not a finite non-negative number`);
    if (!fraction(f.meanPrediction) || !fraction(f.labelRate)) {
      throw bad(`${refused}: ${what}mean prediction ${f.meanPrediction} and label rate ${f.labelRate} must lie in [0, 1]`);
    }
  };
  // The scalars are task 0's: probabilities unless task 0 is a regression.
  if ((tasks?.[0]?.loss ?? "bce") === "bce") probability("", report);
  // A report without tasks comes from a trainer older than multi-task metrics: its scalars are all there is.
  if (!tasks || !report.tasks.length) return;
  const names = (xs: readonly { name: string }[]) => xs.map((t) => t.name).join(", ");
  if (names(report.tasks) !== names(tasks)) throw bad(`${refused}: it reports tasks ${printable(names(report.tasks), 256)}, the job's are ${names(tasks)}`);
  report.tasks.forEach((r, t) => {
    const what = `task ${tasks[t]!.name}: `;
    if (r.loss !== tasks[t]!.loss) throw bad(`${refused}: ${what}loss ${printable(r.loss, 16)}, the job's is ${tasks[t]!.loss}`);
    if (Number(r.records) > records) throw bad(`${refused}: ${what}${r.records} records of ${records}`);
    if (r.loss === "bce") {
      probability(what, r);
      if (r.hasGauc && !fraction(r.gauc) && !Number.isNaN(r.gauc)) throw bad(`${refused}: ${what}GAUC ${r.gauc} is outside [0, 1]`);
    } else if (!(r.rmse >= 0) && !(Number(r.records) === 0 && Number.isNaN(r.rmse))) {
      throw bad(`${refused}: ${what}RMSE ${r.rmse} is not a non-negative number`);
    }
  });
}
