"""Self-check of torch_ctr.py: exit 0 when it holds, 1 otherwise.

For every architecture, on tiny random batches (repeated ids, several values
in a cell, an empty cell, sample weights; one task, or several with bce and
mse losses and unequal weights), torch_ctr's output through its CLI is
compared with a second forward pass written here in plain Python loops
(outputs, per-task and total loss), and its autograd gradients with central finite
differences of that plain forward, in float64. Bad specs must exit 2 naming
the offending param.

usage: torch_ctr_selfcheck.py
"""
import json
import math
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "torch_ctr.py")
STEP = 1e-6

# The cases' params and row widths are the twin's own declarations (the trainer's test checks them against
# Pangea's); what is checked here is its forward pass and gradients, against the math below.
sys.path.insert(0, HERE)
import torch_ctr  # noqa: E402

# ---- a plain-Python forward ------------------------------------------------------


def affine(x, p, w, b):
    """x @ p[w] + p[b] with p[w] [in, out] row-major."""
    fan_out = len(p[b])
    return [p[b][o] + sum(x[i] * p[w][i * fan_out + o] for i in range(len(x))) for o in range(fan_out)]


def relu_mlp(x, p, prefix, widths):
    for i in range(len(widths)):
        x = [max(0.0, y) for y in affine(x, p, f"{prefix}{i}.w", f"{prefix}{i}.b")]
    return x


def towers(p, inputs, widths):
    """Task k's tower over inputs[k]: its ReLU layers, then its one output."""
    return [affine(relu_mlp(x, p, f"tower.{k}.", widths), p, f"tower.{k}.out.w", f"tower.{k}.out.b")[0] for k, x in enumerate(inputs)]


def plain_outputs(arch, p, dense, cells, d, t):
    """One example's T outputs."""
    name = arch["name"]
    if name == "mmoe":
        x = dense + [v for c in cells for v in c]
        experts = [relu_mlp(x, p, f"expert.{i}.", arch["expertMlp"]) for i in range(arch["numExperts"])]
        mixed = []
        for k in range(t):
            z = affine(x, p, f"gate.{k}.w", f"gate.{k}.b")
            top = max(z)
            ex = [math.exp(v - top) for v in z]
            g = [v / sum(ex) for v in ex]
            mixed.append([sum(g[i] * experts[i][j] for i in range(len(experts))) for j in range(len(experts[0]))])
        return towers(p, mixed, arch["towerMlp"])
    if name == "shared-bottom":
        h = relu_mlp(dense + [v for c in cells for v in c], p, "bottom.", arch["bottomMlp"])
        return towers(p, [h] * t, arch["towerMlp"])
    if name == "dlrm":
        z = [relu_mlp(dense, p, "bottom.", arch["bottomMlp"])] + cells
        pairs = [sum(a * b for a, b in zip(z[i], z[j])) for i in range(len(z)) for j in range(i + 1, len(z))]
        h = relu_mlp(z[0] + pairs, p, "top.", arch["topMlp"])
        return affine(h, p, "top.logit.w", "top.logit.b")
    if name == "dcn-v2":
        x0 = dense + [v for c in cells for v in c]
        x = x0
        for l in range(arch["crossLayers"]):
            if arch["lowRank"] == 0:
                t = affine(x, p, f"cross.{l}.w", f"cross.{l}.b")
            else:
                r = arch["lowRank"]
                low = affine(x, {"w": p[f"cross.{l}.u"], "b": [0.0] * r}, "w", "b")
                t = affine(low, {"w": p[f"cross.{l}.v"], "b": p[f"cross.{l}.b"]}, "w", "b")
            x = [a * y + c for a, y, c in zip(x0, t, x)]
        if arch["structure"] == "stacked":
            h = relu_mlp(x, p, "deep.", arch["deepMlp"])
        else:
            h = x + relu_mlp(x0, p, "deep.", arch["deepMlp"])
        return affine(h, p, "logit.w", "logit.b")
    if name not in ("deepfm", "wide-deep"):
        raise ValueError(f"no plain forward for {name}: write one in plain_outputs")
    first = "linear" if name == "deepfm" else "wide"
    logit = affine(dense, p, f"{first}.w", f"{first}.b")[0] + sum(c[0] for c in cells)
    vs = [c[1:] for c in cells]
    if name == "deepfm":
        for k in range(d):
            total = sum(v[k] for v in vs)
            logit += 0.5 * (total * total - sum(v[k] * v[k] for v in vs))
    h = relu_mlp(dense + [x for v in vs for x in v], p, "deep.", arch["deepMlp"])
    return [logit + y for y in affine(h, p, "deep.logit.w", "deep.logit.b")]


def plain(spec):
    """(outputs [B*T], per-task losses, total loss) of spec, from the math alone."""
    nd, s, d, w = spec["numDense"], spec["numSlots"], spec["embeddingDim"], spec["rowWidth"]
    p = {q["name"]: q["values"] for q in spec["params"]}
    bt = spec["batch"]
    b = bt["size"]
    cells = [[0.0] * w for _ in range(b * s)]
    cell_of = bt["cellOfValue"] if bt["cellOfValue"] is not None else list(range(len(bt["inverse"])))
    for v, row in enumerate(bt["inverse"]):
        for k in range(w):
            cells[cell_of[v]][k] += bt["rows"][row * w + k]
    tasks = spec.get("tasks") or [{"loss": "bce", "weight": 1.0}]
    t = len(tasks)
    logits, losses = [], [0.0] * t
    for i in range(b):
        xs = plain_outputs(spec["architecture"], p, bt["dense"][i * nd:(i + 1) * nd], cells[i * s:(i + 1) * s], d, t)
        weight = 1.0 if bt["weights"] is None else bt["weights"][i]
        for k, x in enumerate(xs):
            y = bt["labels"][i * t + k]
            if tasks[k]["loss"] == "bce":
                losses[k] += weight * (max(x, 0.0) - x * y + math.log1p(math.exp(-abs(x))))
            else:
                losses[k] += weight * (x - y) ** 2
        logits += xs
    losses = [l / b for l in losses]
    return logits, losses, sum(task["weight"] * l for task, l in zip(tasks, losses))


# ---- cases -----------------------------------------------------------------------


def case(rng, arch, cell_of_value=True, weights=True, tasks=None, nd=2, s=3, d=2, b=3, u=4):
    t = len(tasks) if tasks else 1
    declared = torch_ctr.layout({"architecture": arch, "numDense": nd, "numSlots": s, "embeddingDim": d, **({"tasks": tasks} if tasks else {})})
    w = declared["rowWidths"][0]
    params = [{"name": q["name"], "shape": q["shape"], "values": [rng.uniform(-0.8, 0.8) for _ in range(math.prod(q["shape"]))]}
              for q in declared["params"]]
    kinds = [task["loss"] for task in tasks] if tasks else ["bce"]
    if cell_of_value:
        # Cell 1 is empty, cell 0 holds three values with a repeated id; the
        # rest get 0..3 values, listed in shuffled order.
        counts = [3, 0] + [rng.randint(0, 3) for _ in range(b * s - 2)]
        cell = [c for c, n in enumerate(counts) for _ in range(n)]
        inverse = [rng.randrange(u) for _ in cell]
        inverse[1] = inverse[0]
        order = list(range(len(cell)))
        rng.shuffle(order)
        cell, inverse = [cell[i] for i in order], [inverse[i] for i in order]
    else:
        cell = None
        inverse = [rng.randrange(u) for _ in range(b * s)]
        inverse[1] = inverse[0]
    assert len(set(inverse)) < len(inverse), "the case must repeat an id"
    return {
        "architecture": arch, "numDense": nd, "numSlots": s, "embeddingDim": d, "rowWidth": w,
        **({"tasks": tasks} if tasks else {}),
        "params": params,
        "batch": {
            "size": b, "dense": [rng.uniform(-1, 1) for _ in range(b * nd)],
            "labels": [float(rng.randint(0, 1)) if kinds[k] == "bce" else rng.uniform(-1, 2) for _ in range(b) for k in range(t)],
            "weights": [rng.uniform(0.5, 2) for _ in range(b)] if weights else None,
            "rows": [rng.uniform(-0.8, 0.8) for _ in range(u * w)], "uniqueRows": u,
            "inverse": inverse, "cellOfValue": cell,
        },
    }


CASES = [
    ("dlrm", {"name": "dlrm", "bottomMlp": [3, 2], "topMlp": [4]}, {}),
    ("dlrm, one value per cell, no weights, no top hidden layer",
     {"name": "dlrm", "bottomMlp": [2], "topMlp": []}, {"cell_of_value": False, "weights": False}),
    ("dcn-v2 full rank parallel", {"name": "dcn-v2", "crossLayers": 2, "lowRank": 0, "structure": "parallel", "deepMlp": [3]}, {}),
    ("dcn-v2 low rank stacked", {"name": "dcn-v2", "crossLayers": 2, "lowRank": 2, "structure": "stacked", "deepMlp": [3, 2]}, {}),
    ("dcn-v2 stacked without deep MLP", {"name": "dcn-v2", "crossLayers": 1, "lowRank": 0, "structure": "stacked", "deepMlp": []}, {}),
    ("deepfm", {"name": "deepfm", "deepMlp": [3, 2]}, {}),
    ("wide-deep", {"name": "wide-deep", "deepMlp": [3]}, {"weights": False}),
    ("mmoe, one task", {"name": "mmoe", "numExperts": 3, "expertMlp": [3, 2], "towerMlp": [2]}, {}),
    ("shared-bottom, one task", {"name": "shared-bottom", "bottomMlp": [3], "towerMlp": [2]}, {}),
]

# Two tasks, a bce and an mse of unequal weights, for every architecture: its first case's config again.
TWO_TASKS = [{"name": "click", "loss": "bce", "weight": 1.0}, {"name": "watch", "loss": "mse", "weight": 0.3}]
FIRST_OF_EACH = list({arch["name"]: (label, arch, opts) for label, arch, opts in reversed(CASES)}.values())[::-1]
CASES += [(f"{arch['name']}, two tasks", arch, dict(opts, tasks=TWO_TASKS)) for label, arch, opts in FIRST_OF_EACH]
CASES.append(("mmoe, three tasks, no tower layers", {"name": "mmoe", "numExperts": 2, "expertMlp": [3], "towerMlp": []},
              {"tasks": TWO_TASKS + [{"name": "like", "loss": "bce", "weight": 2.0}]}))


def call(spec):
    proc = subprocess.run([sys.executable, SCRIPT], input=json.dumps(spec), capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def close(got, want, rel=1e-6, abs_=1e-8):
    return abs(got - want) <= abs_ + rel * abs(want)


def check_case(label, spec):
    failures = []
    rc, out, err = call(spec)
    if rc != 0:
        return [f"{label}: exit {rc}: {err.strip()}"]
    got = json.loads(out)
    logits, task_losses, loss = plain(spec)
    kinds = [task["loss"] for task in spec.get("tasks") or [{"loss": "bce"}]]
    if len(got["logits"]) != len(logits):
        return [f"{label}: {len(got['logits'])} outputs, expected {len(logits)}"]
    for i, (g, want) in enumerate(zip(got["logits"], logits)):
        if not close(g, want, 1e-12, 1e-12):
            failures.append(f"{label}: output {i} {g} != {want}")
        if not close(got["probabilities"][i], 1 / (1 + math.exp(-want)), 1e-12, 1e-12):
            failures.append(f"{label}: probability {i}")
        prediction = 1 / (1 + math.exp(-want)) if kinds[i % len(kinds)] == "bce" else want
        if not close(got["predictions"][i], prediction, 1e-12, 1e-12):
            failures.append(f"{label}: prediction {i}")
    for k, want in enumerate(task_losses):
        if not close(got["taskLosses"][k], want, 1e-12, 1e-12):
            failures.append(f"{label}: task {k}'s loss {got['taskLosses'][k]} != {want}")
    if not close(got["loss"], loss, 1e-12, 1e-12):
        failures.append(f"{label}: loss {got['loss']} != {loss}")

    # Central differences of the plain forward, one scalar at a time.
    targets = [(f"param {q['name']}[{k}]", q["values"], k, got["denseGrads"][q["name"]][k])
               for q in spec["params"] for k in range(len(q["values"]))]
    rows = spec["batch"]["rows"]
    targets += [(f"rows[{k}]", rows, k, got["rowGrads"][k]) for k in range(len(rows))]
    for name, values, k, grad in targets:
        keep = values[k]
        values[k] = keep + STEP
        up = plain(spec)[2]
        values[k] = keep - STEP
        down = plain(spec)[2]
        values[k] = keep
        fd = (up - down) / (2 * STEP)
        if not close(grad, fd):
            failures.append(f"{label}: d loss / d {name}: autograd {grad} vs finite difference {fd}")
    if set(got["denseGrads"]) != {q["name"] for q in spec["params"]}:
        failures.append(f"{label}: denseGrads names differ from params")
    print(f"{'ok  ' if not failures else 'FAIL'} {label}: {len(targets)} gradients, loss {got['loss']:.6f}")
    return failures


def check_errors(rng):
    failures = []
    base = case(rng, {"name": "deepfm", "deepMlp": [3]})

    def expect(label, spec, needle):
        rc, _, err = call(spec)
        ok = rc == 2 and needle in err and len(err.strip().splitlines()) == 1
        print(f"{'ok  ' if ok else 'FAIL'} rejects {label}: {err.strip()}")
        if not ok:
            failures.append(f"{label}: exit {rc}, stderr {err!r}, wanted exit 2 naming {needle}")

    expect("an unknown architecture", dict(base, architecture={"name": "xdeepfm", "deepMlp": []}), "xdeepfm")
    expect("a missing param", dict(base, params=[q for q in base["params"] if q["name"] != "deep.0.b"]), "deep.0.b")
    expect("an extra param", dict(base, params=base["params"] + [{"name": "deep.9.w", "shape": [1], "values": [0.0]}]), "deep.9.w")
    wrong = [dict(q, shape=[q["shape"][1], q["shape"][0]]) if q["name"] == "deep.0.w" else q for q in base["params"]]
    expect("a shape mismatch", dict(base, params=wrong), "deep.0.w")
    return failures


def main():
    rng = random.Random(20261130)
    failures = []
    for label, arch, opts in CASES:
        failures += check_case(label, case(rng, arch, **opts))
    failures += check_errors(rng)
    # An architecture with a twin but no case here would go unchecked without a word.
    failures += [f"{name}: a twin in torch_ctr.py but no case here: add one to CASES (and its plain forward to plain_outputs)"
                 for name in torch_ctr.ARCHITECTURES if name not in {arch["name"] for _, arch, _ in CASES}]
    for f in failures:
        print(f, file=sys.stderr)
    print("torch_ctr self-check: " + ("FAILED" if failures else "passed"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
