import type { Loss } from "./architectures/architecture.js";

/**
 * AUC (ties get half credit, by rank averaging) and mean log loss of
 * probabilities p against 0/1 labels y.
 */
export function aucAndLogloss(p: ArrayLike<number>, y: ArrayLike<number>): { auc: number; logloss: number } {
  const n = p.length;
  let ll = 0;
  for (let k = 0; k < n; k++) {
    const q = Math.min(Math.max(p[k]!, 1e-7), 1 - 1e-7);
    ll -= y[k] ? Math.log(q) : Math.log(1 - q);
  }
  return { auc: auc(p, y), logloss: ll / n };
}

/**
 * AUC of p against 0/1 labels y (ties get half credit); NaN unless both
 * classes occur. Mann-Whitney's U over the two classes' scores, each sorted
 * as a typed array (a native numeric sort, several times faster than an
 * index sort with a comparator): for every positive, the negatives below it
 * count 1 and those equal to it 1/2. The counts are whole or half numbers,
 * exact in doubles, so it equals the rank-average formula to the bit.
 */
export function auc(p: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = p.length;
  let pos = 0;
  for (let k = 0; k < n; k++) if (y[k]) pos++;
  const neg = n - pos;
  if (pos === 0 || neg === 0) return Number.NaN;
  const P = new Float64Array(pos);
  const N = new Float64Array(neg);
  for (let k = 0, a = 0, b = 0; k < n; k++) {
    if (y[k]) P[a++] = p[k]!;
    else N[b++] = p[k]!;
  }
  P.sort();
  N.sort();
  let u = 0;
  for (let i = 0, j = 0; i < pos; ) {
    const v = P[i]!;
    let i2 = i + 1;
    while (i2 < pos && P[i2] === v) i2++;
    while (j < neg && N[j]! < v) j++;
    let j2 = j;
    while (j2 < neg && N[j2] === v) j2++;
    u += (i2 - i) * (j + (j2 - j) / 2);
    i = i2;
  }
  return u / (pos * neg);
}

export interface GroupedAuc {
  /** NaN when no group holds both classes. */
  gauc: number;
  /** Groups averaged: those holding both classes. */
  groups: number;
  /** Records in those groups (the weights' sum). */
  records: number;
}

/**
 * GAUC: each group's AUC (e.g. per user: how well the model ranks one
 * user's records against each other), averaged with the group's record
 * count (impressions) as its weight. A group whose records are all of one
 * class has no AUC and is left out, as in the usual definition; records
 * whose group is null belong to no group.
 */
export function groupedAuc<K>(p: ArrayLike<number>, y: ArrayLike<number>, groups: ArrayLike<K | null>): GroupedAuc {
  const members = new Map<K, number[]>();
  for (let i = 0; i < p.length; i++) {
    const g = groups[i];
    if (g === null || g === undefined) continue;
    let m = members.get(g);
    if (!m) members.set(g, (m = []));
    m.push(i);
  }
  let sum = 0;
  let records = 0;
  let counted = 0;
  for (const m of members.values()) {
    if (m.length < 2) continue;
    const a = auc(
      m.map((i) => p[i]!),
      m.map((i) => y[i]!),
    );
    if (Number.isNaN(a)) continue;
    sum += a * m.length;
    records += m.length;
    counted++;
  }
  return { gauc: records ? sum / records : Number.NaN, groups: counted, records };
}

/** One task's metrics on held-out records; the figures its loss has no meaning for are NaN. */
export interface TaskMetrics {
  /** Records with a usable (finite) label. */
  records: number;
  auc: number;
  logloss: number;
  rmse: number;
  meanPrediction: number;
  /** bce: the positive rate; mse: the mean label. */
  labelRate: number;
  /** meanPrediction / labelRate: 1 for a calibrated model. */
  calibration: number;
  /** bce with groups given: see groupedAuc; null otherwise. */
  grouped: GroupedAuc | null;
  /** Records with a usable label in no group. */
  ungrouped: number;
}

/**
 * A task's held-out metrics: AUC, log loss and GAUC (when `groups` is given)
 * for a binary task, RMSE for a regression task, and for both the mean
 * prediction against the mean label. A record whose label is NaN (unknown
 * for this task) is left out of the task's figures.
 */
export function taskMetrics<K>(loss: Loss, p: ArrayLike<number>, y: ArrayLike<number>, groups: ArrayLike<K | null> | null): TaskMetrics {
  const keep: number[] = [];
  for (let i = 0; i < p.length; i++) if (Number.isFinite(y[i]!)) keep.push(i);
  const ps = Float64Array.from(keep, (i) => p[i]!);
  const ys = Float64Array.from(keep, (i) => y[i]!);
  const n = keep.length;
  const mean = (xs: Float64Array) => xs.reduce((a, b) => a + b, 0) / n;
  const meanPrediction = n ? mean(ps) : Number.NaN;
  const labelRate = n ? mean(ys) : Number.NaN;
  const out: TaskMetrics = { records: n, auc: Number.NaN, logloss: Number.NaN, rmse: Number.NaN, meanPrediction, labelRate, calibration: meanPrediction / labelRate, grouped: null, ungrouped: 0 };
  if (loss === "mse") {
    let se = 0;
    for (let i = 0; i < n; i++) se += (ps[i]! - ys[i]!) ** 2;
    out.rmse = n ? Math.sqrt(se / n) : Number.NaN;
    return out;
  }
  if (n) Object.assign(out, aucAndLogloss(ps, ys));
  if (groups) {
    const gs = keep.map((i) => groups[i] ?? null);
    out.grouped = groupedAuc(ps, ys, gs);
    out.ungrouped = gs.filter((g) => g === null).length;
  }
  return out;
}
