"""Independent PyTorch reference for Pangea's CTR models (logits, loss, gradients).

Written from the architectures' math, not from Pangea's TypeScript, so the
trainer's tests can compare against it. Uses Debian's python3-torch, float64
throughout, torch.nn modules loaded with the given weights and torch.autograd.

usage: torch_ctr.py < IN.json > OUT.json
(IN may also be a list of such objects; OUT is then the list of their outputs)

IN (one JSON object):
  architecture  {"name": "dlrm", "bottomMlp": [..], "topMlp": [..]}  (each may add "dropout": p)
              | {"name": "dcn-v2", "crossLayers": L, "lowRank": r (0 = full rank),
                 "structure": "parallel"|"stacked", "deepMlp": [..]}
              | {"name": "deepfm", "deepMlp": [..]} | {"name": "wide-deep", "deepMlp": [..]}
              | {"name": "mmoe", "numExperts": E, "expertMlp": [..], "towerMlp": [..]}
              | {"name": "shared-bottom", "bottomMlp": [..], "towerMlp": [..]}
  numDense Nd, numSlots S, embeddingDim D,
  rowWidth W    D for dlrm/dcn-v2/mmoe/shared-bottom; D + 1 for deepfm/wide-deep (column 0 is the
                slot's first-order weight, columns 1..D its factor vector)
  slotDims      optional: each slot's embedding dim (default D for every slot);
                dlrm and deepfm need one dim
  rowWidths     optional with slotDims: each slot's row width (its dim + the
                architecture's extra columns); rowWidth when absent
  pooling       optional: each slot's combiner of a cell's rows: "sum" (default),
                "mean" (sum / n) or "sqrtn" (sum / sqrt(n))
  tasks         optional: [{"name", "loss": "bce"|"mse", "weight"}], the model's T
                outputs in order (default one task, bce, weight 1). Every
                architecture's output layer has T columns; deepfm/wide-deep's
                first-order logit is shared, added to every column; mmoe and
                shared-bottom have a tower per task.
  params        [{"name", "shape": [in, out] | [n], "values": flat row-major}]
                matrices are [in, out] (y = x @ w + b), exactly the set the
                architecture declares (see the blocks below for the names)
  batch         {"size": B, "dense": [B*Nd], "labels": [B*T] (row-major [B, T]), "weights": [B] | null,
                 "rows": unique embedding rows side by side, "uniqueRows": U,
                 "rowOffsets": [U+1] where each row starts (optional: i*W),
                 "inverse": [V] row of each feature value,
                 "cellOfValue": [V] cell (sample*S + slot) of each value | null
                 (null: value v is cell v and V = B*S)}

  dropoutMasks  optional, with the architecture's "dropout" p > 0: {layer name: [B*width]}, the
                inverted-dropout mask of every hidden ReLU layer of every MLP (dlrm's bottom
                and top, the deep towers, mmoe's experts and towers, shared-bottom's bottom
                and towers), named "{prefix}.{i}" like its weights "{prefix}.{i}.w"; each
                value 0 or 1/(1-p). The training forward multiplies each layer's output
                by its mask after the ReLU; every layer needs one and every mask must be used.

  An empty MLP list is the identity (dlrm with bottomMlp [] needs Nd = D; a
  non-empty bottomMlp must end in D). A cell's embedding is the sum of its
  values' rows (zeros for a cell with no values), so e is [B, S, W].

OUT (one JSON object; [B*T] lists are row-major [B, T]):
  {"logits": [B*T] the outputs, "probabilities": [B*T] sigmoid of every output,
   "predictions": [B*T] a bce task's probability, an mse task's output itself,
   "evalPredictions": [B*T] the same without dropout (evaluation and serving),
   "taskLosses": [T] task t's mean_b weight_b * l(output_bt, label_bt), l being
                 BCEWithLogits (bce) or the squared error (mse), weight 1 if null,
   "loss": sum_t task t's weight * taskLosses[t],
   "denseGrads": {name: d loss / d param, same layout as its input},
   "rowGrads": [U*W] d loss / d rows (repeated ids accumulate)}

A bad spec (unknown architecture, missing/extra param, wrong shape, ...)
exits 2 with one line on stderr naming what is wrong.
"""
import json
import math
import sys
import warnings

import torch
from torch import nn
import torch.nn.functional as F

DT = torch.float64
# nn.Linear with no inputs (numDense 0) warns on construction; its weights are
# loaded from the spec anyway, and stderr is kept for the one-line error.
warnings.filterwarnings("ignore", message="Initializing zero-element tensors")


class SpecError(Exception):
    pass


class Params:
    """The parameters the blocks declare: name -> (shape, tensor, stored transposed); and the batch's dropout masks.

    float64 for the twin tests; the training benchmark (bench/training/ctr_torch.py)
    builds the same classes in float32."""

    def __init__(self, dtype=DT):
        self.slots = {}
        # layer name -> [B, width] mask while a training forward runs; None: evaluation (no dropout).
        self.masks = None
        self.used = set()
        self.rate = 0.0
        self.dtype = dtype

    def _declare(self, name, shape, tensor, transposed):
        if name in self.slots:
            raise SpecError(f"param {name}: declared twice")
        self.slots[name] = (list(shape), tensor, transposed)

    def linear(self, w, b, fan_in, fan_out):
        """nn.Linear whose weight is the [fan_in, fan_out] param `w` (bias `b`, or none)."""
        lin = nn.utils.skip_init(nn.Linear, fan_in, fan_out, bias=b is not None, dtype=self.dtype)
        self._declare(w, [fan_in, fan_out], lin.weight, True)
        if b is not None:
            self._declare(b, [fan_out], lin.bias, False)
        return lin

    def load(self, given):
        seen = set()
        for p in given:
            name = p.get("name") if isinstance(p, dict) else None
            if name not in self.slots:
                raise SpecError(f"param {name}: not part of this architecture")
            if name in seen:
                raise SpecError(f"param {name}: given twice")
            seen.add(name)
            shape, tensor, transposed = self.slots[name]
            if list(p.get("shape", [])) != shape:
                raise SpecError(f"param {name}: shape {p.get('shape')} but the architecture needs {shape}")
            values = p.get("values")
            if not isinstance(values, list) or len(values) != math.prod(shape) or not all(is_number(x) for x in values):
                raise SpecError(f"param {name}: values must be {math.prod(shape)} numbers (shape {shape})")
            t = torch.tensor(values, dtype=self.dtype).reshape(shape)
            with torch.no_grad():
                tensor.copy_(t.t() if transposed else t)
        for name in self.slots:
            if name not in seen:
                raise SpecError(f"param {name}: missing")

    def grads(self, order):
        out = {}
        for name in order:
            _, tensor, transposed = self.slots[name]
            g = tensor.grad if tensor.grad is not None else torch.zeros_like(tensor)
            out[name] = (g.t() if transposed else g).contiguous().reshape(-1).tolist()
        return out


# ---- blocks -----------------------------------------------------------------

class GivenDropout(nn.Module):
    """Inverted dropout with the mask given for layer `name` (0 or 1/(1-p) per value) in a training forward; identity otherwise."""

    def __init__(self, params, name):
        super().__init__()
        self.params, self.name = params, name

    def forward(self, x):
        p = self.params
        if p.masks is None or p.rate == 0:
            return x
        if self.name not in p.masks:
            raise SpecError(f"dropoutMasks: no mask for layer {self.name}")
        m = p.masks[self.name]
        if m.numel() != x.numel():
            raise SpecError(f"dropoutMasks.{self.name}: {m.numel()} values, the layer has {x.numel()}")
        keep = 1.0 / (1.0 - p.rate)
        if not bool(((m == 0) | ((m - keep).abs() <= 1e-6 * keep)).all()):
            raise SpecError(f"dropoutMasks.{self.name}: values must be 0 or 1/(1-{p.rate})")
        p.used.add(self.name)
        return x * m.reshape(x.shape)


def mlp(params, prefix, fan_in, widths, relu_last=True):
    """`{prefix}{i}.w/.b` layers, ReLU then dropout after each; an empty MLP is the identity."""
    layers = []
    for i, width in enumerate(widths):
        layers.append(params.linear(f"{prefix}{i}.w", f"{prefix}{i}.b", fan_in, width))
        layers.append(nn.ReLU())
        layers.append(GivenDropout(params, f"{prefix}{i}"))
        fan_in = width
    return nn.Sequential(*layers), fan_in


def tower(params, prefix, fan_in, widths, outputs, out="logit"):
    """ReLU MLP then the linear `{prefix}{out}.w/.b` layer to `outputs` columns."""
    body, width = mlp(params, prefix, fan_in, widths)
    return nn.Sequential(body, params.linear(f"{prefix}{out}.w", f"{prefix}{out}.b", width, outputs))


def dot_interaction(z):
    """z [B, n, D] -> the n(n-1)/2 dot products z_i . z_j, i < j, row by row."""
    n = z.shape[1]
    gram = torch.bmm(z, z.transpose(1, 2))
    i, j = torch.triu_indices(n, n, offset=1)
    return gram[:, i, j]


class CrossLayer(nn.Module):
    """x_{l+1} = x0 * (x_l @ w + b) + x_l, with w = u @ v when low rank."""

    def __init__(self, params, l, width, rank):
        super().__init__()
        if rank == 0:
            self.proj = params.linear(f"cross.{l}.w", f"cross.{l}.b", width, width)
        else:
            self.proj = nn.Sequential(params.linear(f"cross.{l}.u", None, width, rank),
                                      params.linear(f"cross.{l}.v", f"cross.{l}.b", rank, width))

    def forward(self, x0, x):
        return x0 * self.proj(x) + x


def fm_interaction(v):
    """v [B, S, D] -> 0.5 * sum_k ((sum_s v)^2 - sum_s v^2), [B, 1]."""
    return 0.5 * (v.sum(1).pow(2) - v.pow(2).sum(1)).sum(1, keepdim=True)


# ---- architectures: compositions of the blocks ---------------------------------

class Dlrm(nn.Module):
    row_extra = 0

    def __init__(self, params, arch, nd, s, d, t):
        super().__init__()
        d = one_dim(d, "dlrm")
        bottom = ints(arch, "bottomMlp")
        if (bottom[-1] if bottom else nd) != d:
            raise SpecError(f"architecture.bottomMlp: must end in embeddingDim {d}")
        self.bottom, _ = mlp(params, "bottom.", nd, bottom)
        n = s + 1
        self.top = tower(params, "top.", d + n * (n - 1) // 2, ints(arch, "topMlp"), t)

    def forward(self, dense, slots):
        e = torch.stack(slots, 1)
        z0 = self.bottom(dense)
        pairs = dot_interaction(torch.cat([z0.unsqueeze(1), e], 1))
        return self.top(torch.cat([z0, pairs], 1))


class DcnV2(nn.Module):
    row_extra = 0

    def __init__(self, params, arch, nd, s, d, t):
        super().__init__()
        layers, rank = count(arch, "crossLayers"), count(arch, "lowRank")
        self.structure = arch.get("structure")
        if self.structure not in ("parallel", "stacked"):
            raise SpecError("architecture.structure: must be \"parallel\" or \"stacked\"")
        d0 = nd + sum(d)
        self.cross = nn.ModuleList(CrossLayer(params, l, d0, rank) for l in range(layers))
        self.deep, width = mlp(params, "deep.", d0, ints(arch, "deepMlp"))
        self.logit = params.linear("logit.w", "logit.b", width if self.structure == "stacked" else d0 + width, t)

    def forward(self, dense, slots):
        x0 = torch.cat([dense] + slots, 1)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        h = self.deep(x) if self.structure == "stacked" else torch.cat([x, self.deep(x0)], 1)
        return self.logit(h)


class DeepFm(nn.Module):
    row_extra = 1

    def __init__(self, params, arch, nd, s, d, t):
        super().__init__()
        one_dim(d, "deepfm")
        self.linear = params.linear("linear.w", "linear.b", nd, 1)
        self.deep = tower(params, "deep.", nd + sum(d), ints(arch, "deepMlp"), t)

    def forward(self, dense, slots):
        e = torch.stack(slots, 1)
        w, v = e[:, :, 0], e[:, :, 1:]
        first = self.linear(dense) + w.sum(1, keepdim=True)
        deep = self.deep(torch.cat([dense, v.flatten(1)], 1))
        return first + fm_interaction(v) + deep


class WideDeep(nn.Module):
    row_extra = 1

    def __init__(self, params, arch, nd, s, d, t):
        super().__init__()
        self.wide = params.linear("wide.w", "wide.b", nd, 1)
        self.deep = tower(params, "deep.", nd + sum(d), ints(arch, "deepMlp"), t)

    def forward(self, dense, slots):
        wide = self.wide(dense) + sum(e[:, :1] for e in slots)
        return wide + self.deep(torch.cat([dense] + [e[:, 1:] for e in slots], 1))


class Mmoe(nn.Module):
    """E expert MLPs over x = [dense, slots]; task t's gate softmax(x W_t + b_t) mixes them into its tower."""
    row_extra = 0

    def __init__(self, params, arch, nd, s, d, t):
        super().__init__()
        e = count(arch, "numExperts")
        if e < 1:
            raise SpecError("architecture.numExperts: must be at least 1")
        d0 = nd + sum(d)
        experts = [mlp(params, f"expert.{i}.", d0, ints(arch, "expertMlp")) for i in range(e)]
        self.experts = nn.ModuleList(m for m, _ in experts)
        width = experts[0][1]
        self.gates = nn.ModuleList(params.linear(f"gate.{k}.w", f"gate.{k}.b", d0, e) for k in range(t))
        self.towers = nn.ModuleList(tower(params, f"tower.{k}.", width, ints(arch, "towerMlp"), 1, "out") for k in range(t))

    def forward(self, dense, slots):
        x = torch.cat([dense] + slots, 1)
        experts = torch.stack([f(x) for f in self.experts], 1)  # [B, E, width]
        outs = []
        for gate, head in zip(self.gates, self.towers):
            g = torch.softmax(gate(x), 1)  # [B, E]
            outs.append(head((g.unsqueeze(2) * experts).sum(1)))
        return torch.cat(outs, 1)


class SharedBottom(nn.Module):
    """One MLP over x = [dense, slots] shared by every task's tower."""
    row_extra = 0

    def __init__(self, params, arch, nd, s, d, t):
        super().__init__()
        self.bottom, width = mlp(params, "bottom.", nd + sum(d), ints(arch, "bottomMlp"))
        self.towers = nn.ModuleList(tower(params, f"tower.{k}.", width, ints(arch, "towerMlp"), 1, "out") for k in range(t))

    def forward(self, dense, slots):
        h = self.bottom(torch.cat([dense] + slots, 1))
        return torch.cat([head(h) for head in self.towers], 1)


ARCHITECTURES = {"dlrm": Dlrm, "dcn-v2": DcnV2, "deepfm": DeepFm, "wide-deep": WideDeep, "mmoe": Mmoe, "shared-bottom": SharedBottom}


# ---- spec checks ---------------------------------------------------------------

def one_dim(dims, name):
    if any(x != dims[0] for x in dims):
        raise SpecError(f"spec.slotDims: {name} needs one embedding dim for every slot, got {dims}")
    return dims[0]


def count(obj, key, where="architecture"):
    v = obj.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise SpecError(f"{where}.{key}: must be a non-negative integer, got {v!r}")
    return v


def ints(arch, key):
    v = arch.get(key)
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
        raise SpecError(f"architecture.{key}: must be a list of positive integers, got {v!r}")
    return v


def floats(batch, key, n):
    v = batch.get(key)
    if not isinstance(v, list) or len(v) != n or not all(is_number(x) for x in v):
        raise SpecError(f"batch.{key}: must hold {n} numbers")
    return torch.tensor(v, dtype=DT)


def indices(batch, key, n, bound):
    v = batch.get(key)
    if not isinstance(v, list) or len(v) != n or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise SpecError(f"batch.{key}: must hold {n} integer indices")
    t = torch.tensor(v, dtype=torch.long)
    if n and (int(t.min()) < 0 or int(t.max()) >= bound):
        raise SpecError(f"batch.{key}: index out of range [0, {bound})")
    return t


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def task_list(spec):
    """The spec's tasks as (loss, weight), in output order; one bce task of weight 1 when absent."""
    tasks = spec.get("tasks") or [{"name": "ctr", "loss": "bce", "weight": 1}]
    if not isinstance(tasks, list):
        raise SpecError("spec.tasks: must be a list")
    out = []
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or task.get("loss") not in ("bce", "mse") or not is_number(task.get("weight")):
            raise SpecError(f"spec.tasks[{i}]: must be {{\"name\", \"loss\": \"bce\"|\"mse\", \"weight\": number}}, got {task!r}")
        out.append((task["loss"], float(task["weight"])))
    return out


# ---- one run -------------------------------------------------------------------

def row_extra_of(model_class, arch):
    """Columns a slot's row holds beyond its dim: a class's row_extra, or row_extra(arch) where the config decides."""
    extra = model_class.row_extra
    return extra(arch) if callable(extra) else extra


def row_widths_of(model_class, arch, dims):
    """Each slot's row width: its dim and the architecture's extra columns."""
    extra = row_extra_of(model_class, arch)
    return [x + extra for x in dims]


def declared(spec):
    """(architecture class, the architecture, Nd, S, slot dims, T, Params, model) of spec's shape, with no values loaded."""
    arch = spec.get("architecture") or {}
    model_class = ARCHITECTURES.get(arch.get("name"))
    if model_class is None:
        raise SpecError(f"architecture.name: unknown architecture {arch.get('name')!r}")
    nd, s, d = (count(spec, k, "spec") for k in ("numDense", "numSlots", "embeddingDim"))
    # Per-slot embedding dims (slotDims), or one for every slot.
    dims = spec.get("slotDims") or [d] * s
    if len(dims) != s or not all(isinstance(x, int) and x > 0 for x in dims):
        raise SpecError(f"spec.slotDims: must give {s} positive integers, got {dims!r}")
    t = len(task_list(spec))
    params = Params()
    model = model_class(params, arch, nd, s, dims, t)
    return model_class, arch, nd, s, dims, t, params, model


def layout(spec):
    """What the twin of spec's architecture and shape declares: its params' names and shapes, and each slot's row
    width. The self-check builds its random cases from it."""
    model_class, arch, _, _, dims, _, params, _ = declared(spec)
    return {"params": [{"name": n, "shape": shape} for n, (shape, _, _) in params.slots.items()], "rowWidths": row_widths_of(model_class, arch, dims)}


def run(spec):
    model_class, arch, nd, s, dims, t, params, model = declared(spec)
    # Each slot's row width (rowWidths), or one for every slot.
    widths = spec.get("rowWidths") or [count(spec, "rowWidth", "spec")] * s
    if widths != row_widths_of(model_class, arch, dims):
        raise SpecError(f"spec.rowWidths: {arch['name']} needs {row_widths_of(model_class, arch, dims)}, got {widths}")
    pooling = spec.get("pooling") or ["sum"] * s
    if len(pooling) != s or not all(p in ("sum", "mean", "sqrtn") for p in pooling):
        raise SpecError(f"spec.pooling: must give sum, mean or sqrtn for each of the {s} slots, got {pooling!r}")

    tasks = task_list(spec)
    if not isinstance(spec.get("params"), list):
        raise SpecError("spec.params: must be a list")
    params.load(spec["params"])

    batch = spec.get("batch") or {}
    b, u = count(batch, "size", "batch"), count(batch, "uniqueRows", "batch")
    dense = floats(batch, "dense", b * nd).reshape(b, nd)
    labels = floats(batch, "labels", b * t).reshape(b, t)
    weights = floats(batch, "weights", b) if batch.get("weights") is not None else None
    offsets = batch.get("rowOffsets") or [i * widths[0] for i in range(u + 1)]
    if len(offsets) != u + 1:
        raise SpecError(f"batch.rowOffsets: must hold {u + 1} offsets")
    rows = floats(batch, "rows", offsets[-1]).requires_grad_(True)
    nvalues = len(batch["inverse"]) if isinstance(batch.get("inverse"), list) else -1
    inverse = indices(batch, "inverse", nvalues, u)
    if batch.get("cellOfValue") is None:
        if nvalues != b * s:
            raise SpecError(f"batch.inverse: without cellOfValue it needs one value per cell ({b * s})")
        cell = torch.arange(nvalues)
    else:
        cell = indices(batch, "cellOfValue", nvalues, b * s)

    # Each cell's rows, pooled per its slot's combiner; an empty cell is zeros.
    pieces = [[[] for _ in range(s)] for _ in range(b)]
    for v in range(nvalues):
        ex, slot = divmod(int(cell[v]), s)
        r = int(inverse[v])
        if offsets[r + 1] - offsets[r] != widths[slot]:
            raise SpecError(f"batch.rowOffsets: row {r} has width {offsets[r + 1] - offsets[r]}, its cell's slot {widths[slot]}")
        pieces[ex][slot].append(rows[offsets[r]:offsets[r + 1]])
    slots = []
    for slot in range(s):
        column = []
        for ex in range(b):
            got = pieces[ex][slot]
            if not got:
                column.append(torch.zeros(widths[slot], dtype=DT))
                continue
            total = torch.stack(got).sum(0)
            scale = {"sum": 1.0, "mean": 1.0 / len(got), "sqrtn": 1.0 / math.sqrt(len(got))}[pooling[slot]]
            column.append(total * scale)
        slots.append(torch.stack(column))
    rate = arch.get("dropout", 0)
    if not is_number(rate) or not 0 <= rate < 1:
        raise SpecError(f"architecture.dropout: must be a rate in [0, 1), got {rate!r}")
    given = spec.get("dropoutMasks") or {}
    if rate > 0 and not given:
        raise SpecError("dropoutMasks: the architecture has dropout; give each hidden layer's mask")
    with torch.no_grad():
        eval_logits = model(dense, slots)
    params.rate = float(rate)
    params.masks = {name: torch.tensor(v, dtype=DT) for name, v in given.items()}
    logits = model(dense, slots)
    unused = set(params.masks) - params.used
    if unused:
        raise SpecError(f"dropoutMasks: no hidden layer named {sorted(unused)[0]}")
    if tuple(logits.shape) != (b, t):
        raise SpecError(f"architecture: outputs of shape {tuple(logits.shape)}, expected ({b}, {t})")
    task_losses = []
    for k, (kind, _) in enumerate(tasks):
        if kind == "bce":
            task_losses.append(F.binary_cross_entropy_with_logits(logits[:, k], labels[:, k], weight=weights, reduction="mean"))
        else:
            sq = (logits[:, k] - labels[:, k]).pow(2)
            task_losses.append((sq if weights is None else sq * weights).mean())
    loss = sum(weight * l for (_, weight), l in zip(tasks, task_losses))
    loss.backward()
    out = logits.detach()
    def predictions_of(out):
        return torch.stack([torch.sigmoid(out[:, k]) if kind == "bce" else out[:, k] for k, (kind, _) in enumerate(tasks)], 1)

    predictions = predictions_of(out)

    rows_grad = rows.grad if rows.grad is not None else torch.zeros_like(rows)
    return {
        "logits": out.reshape(-1).tolist(),
        "probabilities": torch.sigmoid(out).reshape(-1).tolist(),
        "predictions": predictions.reshape(-1).tolist(),
        "evalPredictions": predictions_of(eval_logits).reshape(-1).tolist(),
        "taskLosses": [l.item() for l in task_losses],
        "loss": loss.item(),
        "denseGrads": params.grads([p["name"] for p in spec["params"]]),
        "rowGrads": rows_grad.reshape(-1).tolist(),
    }


def main():
    try:
        spec = json.load(sys.stdin)
        # A list of specs runs each (one process: importing torch takes seconds).
        if isinstance(spec, list) and all(isinstance(x, dict) for x in spec):
            out = [run(x) for x in spec]
        elif isinstance(spec, dict):
            out = run(spec)
        else:
            raise SpecError("input: must be one JSON object, or a list of them")
    except (SpecError, json.JSONDecodeError) as err:
        print(f"torch_ctr: {err}", file=sys.stderr)
        sys.exit(2)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
