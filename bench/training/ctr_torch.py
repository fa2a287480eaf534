#!/usr/bin/python3
"""The reference side of the training benchmark: the same model, data and
optimizers as Pangea's run, in PyTorch (Debian's python3-torch on OpenBLAS).

Reads a Criteo TSV (label, 13 counts, 26 categorical tokens), holds out the
last --eval-fraction as Pangea's Criteo reader does, maps each slot's tokens
to collisionless rows (as Pangea's tables), applies log(1 + x) to counts
(negative or missing: 0), trains one pass (or --steps) in file order in
batches of --batch, and prints one JSON line: samples/s and ms/step of the
training loop (data already in tensors, as Pangea's in-process figure
excludes parsing), held-out AUC and logloss, peak RSS.

The model is --architecture (Pangea's model config: name and
hyper-parameters) built from the classes of the PyTorch twins the trainer's
correctness tests use (test/support/python/torch_ctr.py), in float32, with
one torch.nn.Embedding (sparse gradients) per slot whose rows are as wide as
Pangea's (embedding dim, plus the first-order column of deepfm/wide-deep).
Initialized as Pangea's: Glorot-uniform weights, zero biases, rows uniform
in +-0.05. Mean sigmoid cross-entropy; Adagrad on dense (lr --dense-lr,
accumulator from 0) and on embeddings (lr --sparse-lr, accumulator from 0.1).
"""
import argparse
import json
import math
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "support", "python"))


def blas_threads_from_argv():
    """--blas-threads must be in the environment before torch loads OpenBLAS:
    Debian's torch calls the system BLAS (libopenblas0-pthread), whose own
    thread pool ignores torch.set_num_threads and by default uses every core."""
    for i, a in enumerate(sys.argv):
        if a == "--blas-threads" and i + 1 < len(sys.argv):
            os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[i + 1]
        elif a.startswith("--blas-threads="):
            os.environ["OPENBLAS_NUM_THREADS"] = a.split("=", 1)[1]


blas_threads_from_argv()
import torch  # noqa: E402  (after the BLAS thread count is set)
import torch_ctr  # noqa: E402  (the architectures' PyTorch twins, built here in float32)


def fail(msg):
    """Bad input: one line naming what is wrong, exit 2."""
    print(f"ctr_torch.py: {msg}", file=sys.stderr)
    sys.exit(2)


def parse(path, eval_fraction):
    labels, dense, cats = [], [], []
    vocab = [dict() for _ in range(26)]
    with open(path, "r", encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        if not line:
            continue
        cols = line.split("\t")
        if len(cols) != 40:
            fail(f"{path}: expected 40 tab-separated columns, got {len(cols)}")
        labels.append(float(cols[0]))
        row = []
        for c in cols[1:14]:
            x = float(c) if c else 0.0
            row.append(math.log1p(x) if x > 0 else 0.0)
        dense.append(row)
        ids = []
        for s, tok in enumerate(cols[14:40]):
            v = vocab[s]
            i = v.get(tok)
            if i is None:
                i = v[tok] = len(v)
            ids.append(i)
        cats.append(ids)
    n = len(labels)
    n_eval = min(n - 1, round(n * eval_fraction))
    y = torch.tensor(labels, dtype=torch.float32)
    x = torch.tensor(dense, dtype=torch.float32)
    c = torch.tensor(cats, dtype=torch.int64)
    sizes = [len(v) for v in vocab]
    split = n - n_eval
    return (x[:split], c[:split], y[:split]), (x[split:], c[split:], y[split:]), sizes


def build(arch, num_dense, sizes, dim):
    """The architecture's torch_ctr class in float32 with an embedding table per slot,
    initialized as Pangea's: Glorot-uniform weights, zero biases, rows uniform in +-0.05."""
    cls = torch_ctr.ARCHITECTURES.get(arch.get("name"))
    if cls is None:
        fail(f"--architecture: unknown name {arch.get('name')!r}; expected one of {', '.join(torch_ctr.ARCHITECTURES)}")
    params = torch_ctr.Params(torch.float32)
    try:
        model = cls(params, arch, num_dense, len(sizes), [dim] * len(sizes), 1)
    except torch_ctr.SpecError as err:
        fail(f"--architecture: {err}")
    with torch.no_grad():
        for shape, tensor, _ in params.slots.values():
            if len(shape) == 2:
                limit = math.sqrt(6 / (shape[0] + shape[1]))
                tensor.uniform_(-limit, limit)
            else:
                tensor.zero_()
    width = dim + torch_ctr.row_extra_of(cls, arch)
    emb = torch.nn.ModuleList([torch.nn.Embedding(n, width, sparse=True) for n in sizes])
    for e in emb:
        torch.nn.init.uniform_(e.weight, -0.05, 0.05)
    return model, emb


def forward(model, emb, x, c):
    return model(x, [e(c[:, s]) for s, e in enumerate(emb)]).squeeze(1)


def auc(scores, labels):
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    pos = labels > 0.5
    n_pos = int(pos.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--eval-fraction", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1, help="torch's own (intra-op) threads")
    ap.add_argument("--blas-threads", type=int, default=1, help="OpenBLAS's threads (the matmuls)")
    ap.add_argument("--embedding-dim", type=int, default=16)
    ap.add_argument("--architecture", default='{"name": "dlrm", "bottomMlp": [512, 256, 64, 16], "topMlp": [512, 256]}',
                    help="the architecture and its hyper-parameters as Pangea's model config holds them (JSON)")
    ap.add_argument("--steps", type=int, default=0, help="training steps (0: one pass over the training records)")
    ap.add_argument("--dense-lr", type=float, default=0.01)
    ap.add_argument("--sparse-lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--warmup-steps", type=int, default=10, help="steps left out of samplesPerSecAfterWarmup (the cluster's warmup_steps)")
    a = ap.parse_args()
    try:
        arch = json.loads(a.architecture)
    except json.JSONDecodeError as err:
        fail(f"--architecture: not JSON ({err})")
    build(arch, 13, [1] * 26, a.embedding_dim)  # a bad --architecture fails now, not after parsing the data
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    (x, c, y), (ex, ec, ey), sizes = parse(a.data, a.eval_fraction)
    model, emb = build(arch, x.shape[1], sizes, a.embedding_dim)
    opt_dense = torch.optim.Adagrad(list(model.parameters()), lr=a.dense_lr, initial_accumulator_value=0.0, eps=1e-10)
    opt_sparse = torch.optim.Adagrad(list(emb.parameters()), lr=a.sparse_lr, initial_accumulator_value=0.1, eps=1e-10)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    steps = min(a.steps or len(y) // a.batch, len(y) // a.batch)
    t0 = time.perf_counter()
    # The rate after the first `warmup` steps as well, measured as the cluster's
    # samples_per_second_after_warmup is (its first steps pay one-off costs).
    warmup, t_warm = a.warmup_steps, None
    losses = []
    for s in range(steps):
        if s == warmup:
            t_warm = time.perf_counter()
        sl = slice(s * a.batch, (s + 1) * a.batch)
        opt_dense.zero_grad()
        opt_sparse.zero_grad()
        loss = loss_fn(forward(model, emb, x[sl], c[sl]), y[sl])
        loss.backward()
        opt_dense.step()
        opt_sparse.step()
        losses.append(float(loss))
    t_end = time.perf_counter()
    seconds = t_end - t0
    with torch.no_grad():
        p = torch.sigmoid(forward(model, emb, ex, ec)).clamp(1e-7, 1 - 1e-7)
        logloss = float(-(ey * torch.log(p) + (1 - ey) * torch.log(1 - p)).mean())
        held_out_auc = auc(p, ey)
    print(json.dumps({
        "name": "pytorch",
        "model": arch["name"],
        "framework": f"PyTorch {torch.__version__}, {a.threads} torch thread(s), {a.blas_threads} OpenBLAS thread(s)",
        "samples": steps * a.batch,
        "steps": steps,
        "seconds": round(seconds, 3),
        "samplesPerSec": round(steps * a.batch / seconds),
        "msPerStep": round(1000 * seconds / steps, 2),
        "samplesPerSecAfterWarmup": round((steps - warmup) * a.batch / (t_end - t_warm)) if t_warm is not None else 0,
        "warmupSteps": warmup if t_warm is not None else 0,
        "auc": round(held_out_auc, 4),
        "logloss": round(logloss, 4),
        "firstLoss": round(losses[0], 4),
        "lastLoss": round(losses[-1], 4),
        "peakRssMb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
