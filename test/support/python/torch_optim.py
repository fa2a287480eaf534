"""Independent PyTorch reference for Pangea's optimizers with L2 (torch.optim, float64).

usage: torch_optim.py < IN.json > OUT.json  (IN a list of cases; OUT the list of their results)

A case:
  {"kind": "dense", "optimizer": "adam"|"adagrad", "lr": lr, "l2": l2,
   "w": [n] start, "grads": [[n] per step]}
      torch.optim.Adam (betas 0.9/0.999, eps 1e-8) or torch.optim.Adagrad
      (accumulator from 0, eps 1e-10), weight_decay l2 (coupled: grad + l2 w).
      OUT: {"w": [n] after the steps}
  {"kind": "sparse", "optimizer": "sgd"|"adagrad"|"momentum", "lr": lr, "l2": l2,
   "rows": [[dim] per row] start, "steps": [[[row, [dim] gradient], ..] per step]}
      One parameter per embedding row; a step sets the gradient of the rows it
      names and leaves the others' None, which torch.optim skips: lazy L2, only
      touched rows decay. Monolith's sparse rules as torch.optim: sgd is
      SGD(weight_decay), momentum SGD(momentum 0.9, weight_decay), adagrad
      Adagrad(initial_accumulator_value 0.1, eps 0, weight_decay).
      OUT: {"rows": [[dim] per row] after the steps}

A bad case exits 2 with one line on stderr.
"""
import json
import sys

import torch

DT = torch.float64


def dense(case):
    w = torch.nn.Parameter(torch.tensor(case["w"], dtype=DT))
    lr, l2 = float(case["lr"]), float(case["l2"])
    if case["optimizer"] == "adam":
        opt = torch.optim.Adam([w], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=l2)
    elif case["optimizer"] == "adagrad":
        opt = torch.optim.Adagrad([w], lr=lr, eps=1e-10, weight_decay=l2, initial_accumulator_value=0)
    else:
        raise ValueError(f"dense optimizer {case['optimizer']!r}: expected adam or adagrad")
    for g in case["grads"]:
        w.grad = torch.tensor(g, dtype=DT)
        opt.step()
    return {"w": w.detach().tolist()}


def sparse(case):
    rows = [torch.nn.Parameter(torch.tensor(r, dtype=DT)) for r in case["rows"]]
    lr, l2 = float(case["lr"]), float(case["l2"])
    name = case["optimizer"]
    if name == "sgd":
        opt = torch.optim.SGD(rows, lr=lr, weight_decay=l2)
    elif name == "momentum":
        opt = torch.optim.SGD(rows, lr=lr, momentum=0.9, weight_decay=l2)
    elif name == "adagrad":
        opt = torch.optim.Adagrad(rows, lr=lr, eps=0, weight_decay=l2, initial_accumulator_value=0.1)
    else:
        raise ValueError(f"sparse optimizer {name!r}: expected sgd, momentum or adagrad")
    for step in case["steps"]:
        for r in rows:
            r.grad = None
        for index, g in step:
            rows[index].grad = torch.tensor(g, dtype=DT)
        opt.step()
    return {"rows": [r.detach().tolist() for r in rows]}


def main():
    try:
        cases = json.load(sys.stdin)
        out = [dense(c) if c["kind"] == "dense" else sparse(c) for c in cases]
    except (ValueError, KeyError, TypeError) as err:
        print(f"torch_optim: {err}", file=sys.stderr)
        sys.exit(2)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
