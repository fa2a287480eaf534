"""Held-out metrics computed by sklearn and numpy, as an independent check of
@pangea/model's taskMetrics/groupedAuc.

stdin: JSON {"loss": "bce"|"mse", "p": [...], "y": [...], "groups": [...]|null}
(a group of null = in no group). stdout: JSON of the metrics, NaN as null.
GAUC is the record-weighted mean of sklearn's roc_auc_score over the groups
holding both classes.
"""
import json
import sys

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

req = json.load(sys.stdin)
p = np.asarray(req["p"], dtype=np.float64)
y = np.asarray(req["y"], dtype=np.float64)
out = {"meanPrediction": float(p.mean()), "labelRate": float(y.mean())}
if req["loss"] == "mse":
    out["rmse"] = float(np.sqrt(np.mean((p - y) ** 2)))
else:
    out["auc"] = float(roc_auc_score(y, p))
    out["logloss"] = float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))
    groups = req.get("groups")
    if groups is not None:
        by_group = {}
        for i, g in enumerate(groups):
            if g is not None:
                by_group.setdefault(g, []).append(i)
        total, weight, counted = 0.0, 0, 0
        for idx in by_group.values():
            ys = y[idx]
            if ys.min() == ys.max():
                continue
            total += roc_auc_score(ys, p[idx]) * len(idx)
            weight += len(idx)
            counted += 1
        out["gauc"] = total / weight if weight else None
        out["gaucGroups"] = counted
        out["gaucRecords"] = weight
json.dump(out, sys.stdout)
