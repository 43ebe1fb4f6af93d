"""`vitc distill --teacher NAME` with no --teacher-checkpoint: get that teacher, saying how, in one line.

1. runs/teacher holds NAME trained on this data -> reuse it.
2. Hub weights to be had (online) -> fine-tune them on the data (the `vitc teacher --pretrained`
   stage; DeiT's recipe: its regnety_16gf teacher is `regnety_160.deit_in1k`), unless the data is
   the 1000 ImageNet classes, when the hub model is the teacher as it is.
3. Offline, or no hub weights -> train NAME on the data (the `vitc teacher` stage with its defaults,
   and the augmentation the student is given: chosen for the data, not fixed to digits').
`--no-auto-teacher` keeps the strict error instead.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from vitc import checkpoint as ckpt
from vitc.config import TEACHER_TRAIN, AugConfig, ModelArgs, TeacherConfig, to_dict
from vitc.data import load_source
from vitc.errors import OfflineError, OutputError
from vitc.models import create_model, resolve_name
from vitc.runs import FOLDERS, describe
from vitc.stages import Inputs

from .stage import check_out


def _matches(d: Path, arch: str, provenance: dict) -> bool:
    if not ckpt.is_checkpoint_dir(d):
        return False
    meta = ckpt.load_meta(d)
    return meta.get("model", {}).get("name") == arch and (meta.get("inputs") or {}).get("data") == provenance


def _train(
    name: str,
    data: str,
    img_size: int,
    pretrained: bool,
    epochs: int,
    threads: int | None,
    seed: int,
    aug: AugConfig,
    out: Path,
    console: Console,
) -> None:
    from vitc.outlock import hold

    from .teacher import run_teacher

    # the teacher stage's own defaults (TEACHER_TRAIN, lr by TeacherConfig), with the augmentation the student uses
    train = {"epochs": epochs, "threads": threads, "seed": seed, "aug": to_dict(aug)}
    with hold(out, f"vitc distill, training its teacher into {out}"):  # one run per folder (vitc/outlock.py)
        run_teacher(
            TeacherConfig(ModelArgs(name, img_size, None, pretrained), data, train), out, Inputs(console=console)
        )


def resolve(
    name: str,
    data: str,
    img_size: int,
    *,
    epochs: int = TEACHER_TRAIN["epochs"],
    threads: int | None = None,
    seed: int = 0,
    aug: AugConfig | None = None,
    student_out: Path,
    resume: bool = False,
    force: bool = False,
    console: Console | None = None,
) -> tuple[str, bool]:
    """-> (teacher checkpoint dir, or the name for the hub model as it is; whether it is the hub model)."""
    console = console or Console()
    check_out(student_out, resume, force)  # fail before minutes of teacher training, not after
    arch, tag = resolve_name(name)
    src = load_source(data, img_size)
    d = FOLDERS["teacher"]
    if _matches(d, arch, src.provenance):
        console.print(f"teacher: reusing {describe(d)}: {arch} trained on {data}", highlight=False)
        return str(d), False
    if ckpt.is_checkpoint_dir(d) or (d.is_dir() and any(d.iterdir())):
        raise OutputError(
            f"{d} holds another teacher than {arch} trained on {data}, and vitc will not overwrite it",
            f"pass --teacher-checkpoint {d} to use it, or move it away to let vitc train {name} there",
        )
    hub = f"{arch}.{tag}" if tag else arch
    if len(src.classes) == 1000:
        return name, True  # the hub model is the teacher as it is (loaded, or the offline error, in load_teacher)
    try:  # offline this fails at once (no download); online it fetches the weights the fine-tune then reads from the cache
        create_model(name, len(src.classes), img_size, pretrained=True)
        online = True
    except OfflineError:
        online = False
    if online:
        console.print(
            f"teacher: fine-tuning the hub's {hub} on {data} ({len(src.classes)} classes, the hub head has 1000) "
            f"into {d} first, as `vitc teacher --model {name} --pretrained` (skip with --teacher-checkpoint PATH)",
            highlight=False,
        )
    else:
        console.print(
            f"teacher: no hub weights for {hub} to be had here (offline, or none published); training {name} on "
            f"{data} from scratch into {d} "
            f"first, as `vitc teacher --model {name} --epochs {epochs}` (skip with --teacher-checkpoint PATH)",
            highlight=False,
        )
    _train(name, data, img_size, online, epochs, threads, seed, aug or AugConfig(), d, console)
    return str(d), False
