/**
 * AUC (ties get half credit, by rank averaging) and mean log loss of
 * probabilities p against 0/1 labels y.
 */
export function aucAndLogloss(p: ArrayLike<number>, y: ArrayLike<number>): { auc: number; logloss: number } {
  const n = p.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[a]! - p[b]!);
  let pos = 0;
  let rankSumPos = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && p[order[j + 1]!] === p[order[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (y[order[k]!]) {
        pos++;
        rankSumPos += avgRank;
      }
    }
    i = j + 1;
  }
  const neg = n - pos;
  const auc = pos === 0 || neg === 0 ? Number.NaN : (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg);
  let ll = 0;
  for (let k = 0; k < n; k++) {
    const q = Math.min(Math.max(p[k]!, 1e-7), 1 - 1e-7);
    ll -= y[k] ? Math.log(q) : Math.log(1 - q);
  }
  return { auc, logloss: ll / n };
}
