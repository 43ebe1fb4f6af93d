"""A training run's step speed measured alone (issue 34): what turns its images seen into honest minutes.

For each run folder it rebuilds what the run trained (the model from its vitc.json, its TrainConfig from its
config.json, a distillation run's frozen teacher) and times `--steps` real steps after 3 warm-up steps: the real
Fashion-MNIST loader with the run's augmentation, in-line as the trainer runs it, `compress.trainer.train_step`, the
same bf16/channels-last choice. Runs are timed one after another in one process, each in alternating rounds, and
the median round is quoted. Run it with nothing else on the cores.

    python -m benchmarks.studies.step_speed --out results/fashion-cpu/recipe/speed.json NAME=RUN_DIR ...
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def _setup(run: Path):
    import torch

    from compress.losses import DistillationLoss, TeacherAdapter, base_criterion
    from compress.trainer import _loader
    from vitc import runtime
    from vitc.config import TrainConfig, from_dict
    from vitc.data import build_transform, load_source
    from vitc.models import build_from_spec, load_checkpoint_model

    meta = json.loads((run / "vitc.json").read_text())
    conf = json.loads((run / "config.json").read_text())
    # the recipe as resolved (vitc.json `recipe`, issue 35): a batch left to the default is recorded there
    batch = meta.get("recipe", conf["train"])["batch_size"]
    cfg = from_dict(TrainConfig, {**conf["train"], "batch_size": batch}, "train")
    pre = meta["preprocess"]
    src = load_source(conf["data"], pre["input_size"][-1])
    torch.manual_seed(0)
    model = build_from_spec(meta["model"]).train()
    if hasattr(model, "set_distilled_training"):
        model.set_distilled_training(True)
    bf16 = runtime.use_bf16(cfg.amp, torch.device("cpu"))
    memory = torch.channels_last if runtime.channels_last(model, bf16) else torch.contiguous_format
    model.to(memory_format=memory)
    teacher = None
    kind = conf.get("distillation", "none")
    if kind != "none":
        t, tmeta = load_checkpoint_model(meta["inputs"]["teacher"]["path"])
        teacher = TeacherAdapter(
            t, pre, tmeta["preprocess"], runtime.use_bf16(conf.get("teacher_amp", "auto"), torch.device("cpu"))
        )
    crit = DistillationLoss(
        base_criterion(cfg.aug.smoothing, cfg.aug.mixing), teacher, kind, conf.get("alpha", 0.5), conf.get("tau", 1.0)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    class _One:  # one process: the loader's non-distributed path
        enabled, world, rank = False, 1, 0

    loader = _loader(src.train, build_transform(pre, train=True, aug=cfg.aug), cfg, _One(), 0)
    return model, crit, opt, loader, bf16, memory, cfg.batch_size


def _round(state, steps: int) -> float:
    from compress.trainer import train_step

    model, crit, opt, it, bf16, memory, batch = state
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = next(it)
        train_step(model, crit, opt, x.contiguous(memory_format=memory), y, bf16)
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    p.add_argument("--steps", type=int, default=12, help="steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    from vitc import runtime

    states = {}
    for name, d in (s.split("=", 1) for s in a.runs):
        model, crit, opt, loader, bf16, memory, batch = _setup(Path(d))
        it = iter(loader)
        states[name] = (model, crit, opt, it, bf16, memory, batch)
        _round(states[name], 3)  # warm-up: oneDNN's kernels, the allocator
    speeds = {n: [] for n in states}
    for _ in range(a.rounds):  # alternating rounds: a slow spell of the VM hits every configuration alike
        for n, st in states.items():
            speeds[n].append(_round(st, a.steps))
    res = {
        "machine": runtime.machine_info(),
        "steps_per_round": a.steps,
        "runs": {
            n: {"img_per_s": statistics.median(v), "rounds": v, "batch": states[n][-1], "bf16": states[n][4]}
            for n, v in speeds.items()
        },
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    for n, r in res["runs"].items():
        print(f"{n}: {r['img_per_s']:.0f} img/s (rounds {', '.join(f'{v:.0f}' for v in r['rounds'])})")


if __name__ == "__main__":
    main()
