"""`vitc prune --latency BUDGET`: choose depth, width and input size from latency measured on the runtime
the model deploys to (compress/latency_table.py), then cut the trained student to that structure.

The choice: among the candidates the table puts under the budget, the ones within WINDOW of it (faster ones
give away accuracy for latency nobody asked for) are cut from the trained student and scored by the stage's
own distillation loss on held-out training images, right after the cut and before any re-training; the
lowest loss wins. Blocks go by measured importance: greedily, the block whose removal raises that loss
least (never "every other block"). Widths go by torch-pruning's group magnitude; the position embeddings are
resampled by timm when the input size, and with it the token count, changes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from rich.console import Console
from torch import nn

from vitc.data import Split, eval_tensors
from vitc.errors import ConfigError
from vitc.structure import keep_blocks, read, summary

from .distill import load_teacher
from .latency_table import Base, Budget, Candidate, Table, build, every_candidate
from .losses import DistillationLoss, TeacherAdapter
from .trainer import head_logits
from .widths import cut_widths

WINDOW = 0.8  # candidates predicted at >= WINDOW x the budget are scored; faster ones are not
SHORTLIST = 8  # at most this many, the closest to the budget first
CRITERION_IMAGES = 1024  # held-out training images the candidates' loss is measured on
ORDER_IMAGES = 256  # the first of them, for the greedy block order (~D^3/36 full-model passes)


@dataclass
class Scored:
    candidate: Candidate
    predicted: float  # latency ratio to the unpruned model, from the table
    loss: float | None = None
    kept: list[int] | None = None
    structure: dict | None = None


def criterion_split(src) -> tuple[Split, str]:
    """The held-out part of train where the data has one (Fashion-MNIST), else a fixed slice of train: never val."""
    if src.holdout is not None:
        s, what = src.holdout, "the held-out part of train"
    else:
        s, what = src.train, "train"
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(s.targets), generator=g)[:CRITERION_IMAGES].tolist()
    return Split([s.items[i] for i in idx], [s.targets[i] for i in idx]), f"{len(idx)} images of {what}"


@torch.no_grad()
def loss_of(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, crit, batch: int = 256) -> float:
    """The stage's distillation loss (both heads of a distilled student) in eval mode, mean over images."""
    model.eval()
    total = 0.0
    for i in range(0, len(X), batch):
        x, y = X[i : i + batch], Y[i : i + batch]
        h = head_logits(model, x)
        out = (h["cls"], h["dist"]) if "cls" in h else h["out"]
        total += float(crit(x, out, y)) * len(y)
    return total / len(X)


def drop_order(model: nn.Module, X, Y, crit, min_depth: int) -> list[dict]:
    """Greedy block removal: each step drops the block whose absence raises the loss least. -> the drops in
    order, each with the loss of the model left."""
    blocks = list(model.blocks)
    kept, order = list(range(len(blocks))), []
    try:
        while len(kept) > min_depth:
            scores = {}
            for i in kept:
                model.blocks = nn.Sequential(*(blocks[j] for j in kept if j != i))
                scores[i] = loss_of(model, X, Y, crit)
            i = min(scores, key=scores.get)
            kept.remove(i)
            order.append({"block": i, "loss": scores[i]})
    finally:
        model.blocks = nn.Sequential(*blocks)
    return order


def kept_blocks(depth: int, order: list[dict], full: int) -> list[int]:
    gone = {o["block"] for o in order[: full - depth]}
    return [i for i in range(full) if i not in gone]


def cut(model: nn.Module, base: Base, c: Candidate, order: list[dict], round_to: int | None) -> tuple[nn.Module, list]:
    """A copy of the trained student at candidate c: input size (position embeddings resampled), kept blocks,
    torch-pruning's widths."""
    m = copy.deepcopy(model).eval()
    if c.img_size != base.img_size:
        m.set_input_size(img_size=(c.img_size, c.img_size))
    keep = kept_blocks(c.depth, order, base.depth)
    keep_blocks(m, keep)
    if c.width > 0:
        cut_widths(m, c.width, 0.0, "magnitude", round_to, torch.zeros(1, 3, c.img_size, c.img_size))
    return m, keep


def shortlist(table: Table, base: Base, budget: Budget, widths, token_scales) -> tuple[float, list[Scored]]:
    """-> (budget as a ratio, the candidates to score). None under the budget: one sentence naming the fastest."""
    target = budget.ratio(table.ref_ms)
    if target >= 1.0:  # the unpruned model meets it: nothing to cut (`--latency 1x`: the control's re-distillation)
        return target, [Scored(base.reference, 1.0)]
    cands = [Scored(c, table.predict(c)) for c in every_candidate(base, widths, token_scales)]
    under = [s for s in cands if s.predicted <= target]
    if not under:
        measured = [(e["ratio"], k) for k, e in table.entries.items()]
        r, k = min(measured)
        raise ConfigError(
            f"no structure meets the latency budget {budget} ({target:.2f}x of the unpruned "
            f"{table.ref_ms:.3f} ms on {table.key['runtime']}): the fastest measured is {k} at {r:.2f}x "
            f"({r * table.ref_ms:.3f} ms)",
            "raise the budget, or widen the search (--widths 0.75, --token-scales 0.5)",
        )
    near = [s for s in under if s.predicted >= WINDOW * target] or [max(under, key=lambda s: s.predicted)]
    near.sort(key=lambda s: target - s.predicted)
    return target, near[:SHORTLIST]


def score(
    model: nn.Module, base: Base, picks: list[Scored], tensors: dict, crits: dict, round_to, console: Console
) -> list[dict]:
    """Cut and score each shortlisted candidate (in place); -> the greedy drop order. It is measured once, at the
    student's own input size, and used at every size: which blocks matter is a property of the trained weights,
    and measuring it again per size would double the cost (measured here: ~3.6 s per pass over 512 images at
    28-32 px with a training job on the other core)."""
    lo = min(p.candidate.depth for p in picks)
    X, Y = tensors[base.img_size]
    order = drop_order(copy.deepcopy(model).eval(), X[:ORDER_IMAGES], Y[:ORDER_IMAGES], crits[base.img_size], lo)
    losses = " -> ".join(f"{o['loss']:.3f}" for o in order)
    console.print(f"block importance: drop order {[o['block'] for o in order]} (loss {losses})", highlight=False)
    for p in picks:
        m, p.kept = cut(model, base, p.candidate, order, round_to)
        p.loss = loss_of(m, *tensors[p.candidate.img_size], crits[p.candidate.img_size])
        p.structure = read(m)
        console.print(
            f"  {p.candidate.key}: predicted {p.predicted:.3f}x, loss {p.loss:.4f} ({summary(p.structure)})",
            highlight=False,
        )
    return order


def criterion_tensors(src, pre: dict, sizes: list[int]) -> tuple[dict, str]:
    split, what = criterion_split(src)
    return {s: eval_tensors(split, {**pre, "input_size": [3, s, s]}) for s in sizes}, what


class Remembered(nn.Module):
    """The teacher's logits per batch, computed once: every candidate and every block-drop trial is scored on
    the same batches (slices of one tensor, so (address, shape) names a batch)."""

    def __init__(self, teacher: nn.Module):
        super().__init__()
        self.teacher, self.seen = teacher, {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = (x.data_ptr(), tuple(x.shape))
        if k not in self.seen:
            self.seen[k] = self.teacher(x)
        return self.seen[k]


def criterion(dcfg, classes: list[str], pre: dict, teacher_cache: dict) -> DistillationLoss:
    """The stage's loss at one input size: plain cross-entropy on the labels plus the teacher's term (fp32)."""
    adapter = None
    if dcfg.distillation != "none":
        if "t" not in teacher_cache:
            teacher_cache["t"] = load_teacher(dcfg, classes, int(pre["input_size"][-1]))[:2]
        teacher, tpre = teacher_cache["t"]
        adapter = Remembered(TeacherAdapter(teacher, pre, tpre, bf16=False))
    return DistillationLoss(nn.CrossEntropyLoss(), adapter, dcfg.distillation, dcfg.alpha, dcfg.tau)


def choose(model: nn.Module, spec: dict, pre: dict, src, cfg, dcfg, console: Console) -> tuple[nn.Module, dict, int]:
    """Cut the trained, unpruned student to the structure that meets cfg.latency with the lowest loss.
    -> (the cut student, the record for vitc.json, its input size)."""
    if spec.get("structure"):
        raise ConfigError(
            "this student is already pruned; latency pruning starts from the unpruned student",
            "pass the distilled student (e.g. runs/student), not a pruned one",
        )
    overrides = {k: v for k, v in spec.get("overrides", {}).items() if k != "drop_path_rate"}
    base = Base(spec["name"], {**overrides, "img_size": int(pre["input_size"][-1])}, len(model.blocks), cfg.round_to)
    budget = Budget.parse(cfg.latency)
    args = (base, cfg.runtime, cfg.latency_threads, list(cfg.widths), list(cfg.token_scales), cfg.latency_rounds)
    table = build(*args, table=cfg.table, console=console)
    target, picks = shortlist(table, base, budget, cfg.widths, cfg.token_scales)
    console.print(
        f"budget {budget}: {target:.3f}x of the unpruned {table.ref_ms:.3f} ms on {cfg.runtime}; depth-line error on "
        f"held-out measured points {_pct(table.model_error()['mean_abs_pct'])} (mean); scoring {len(picks)} candidates",
        highlight=False,
    )
    sizes = sorted({base.img_size} | {p.candidate.img_size for p in picks})
    tensors, what = criterion_tensors(src, pre, sizes)
    cache: dict = {}
    crits = {s: criterion(dcfg, src.classes, {**pre, "input_size": [3, s, s]}, cache) for s in sizes}
    order = score(model, base, picks, tensors, crits, cfg.round_to, console)
    best = min(picks, key=lambda p: p.loss)
    pruned, keep = cut(model, base, best.candidate, order, cfg.round_to)
    table = build(*args, table=cfg.table, console=console, extra=[best.candidate])  # measure the choice itself
    measured = table.entries[best.candidate.key]["ratio"]
    console.print(
        f"chose {best.candidate.key}: predicted {best.predicted:.3f}x, measured {measured:.3f}x "
        f"(budget {target:.3f}x); blocks kept {keep}",
        highlight=False,
    )
    record = {
        "latency_budget": str(budget),
        "budget_ratio": target,
        "runtime": cfg.runtime,
        "table": {"path": str(table.path), "key": table.key, "ref_ms": table.ref_ms, "error": table.model_error()},
        "criterion": f"{dcfg.distillation} distillation loss on {what}, right after the cut",
        "candidates": [
            {"key": p.candidate.key, "predicted": p.predicted, "loss": p.loss, "widths": summary(p.structure)}
            for p in picks
        ],
        "chosen": {
            "key": best.candidate.key,
            "depth": best.candidate.depth,
            "width": best.candidate.width,
            "img_size": best.candidate.img_size,
            "kept_blocks": keep,
            "predicted": best.predicted,
            "measured": measured,
        },
        "drop_order": order,
    }
    return pruned, record, best.candidate.img_size


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}%"
