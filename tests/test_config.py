from types import SimpleNamespace

import pytest
import torch

from vitc.config import AugConfig, DistillConfig, ModelArgs, TrainConfig, from_dict
from vitc.errors import ConfigError


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="epoch: unknown key"):
        from_dict(TrainConfig, {"epoch": 3})


@pytest.mark.parametrize(
    "kw,key",
    [({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"), ({"lr": 0.0}, "lr"), ({"amp": "fp8"}, "amp")],
)
def test_out_of_range_values_are_named(kw, key):
    with pytest.raises(ConfigError, match=key):
        TrainConfig(**kw)


def test_presets_and_explicit_values():
    a = AugConfig("deit")
    assert (a.mixup, a.cutmix, a.reprob, a.smoothing, a.hflip) == (0.8, 1.0, 0.25, 0.1, 0.5)
    assert AugConfig("deit", mixup=0.0).mixup == 0.0  # an explicit value wins over the preset
    assert AugConfig("digits").hflip == 0.0  # mirrored digits are other digits


def test_lr_scaling_rule():
    assert TrainConfig(base_lr=5e-4).scaled_lr(1024) == pytest.approx(1e-3)
    assert TrainConfig(lr=3e-4).scaled_lr(1024) == 3e-4


def test_distill_needs_a_teacher_unless_none():
    s = ModelArgs("deit_tiny", 32, 4)
    with pytest.raises(ConfigError, match="teacher"):
        DistillConfig(s, distillation="hard")
    assert DistillConfig(s, distillation="none").teacher is None
    with pytest.raises(ConfigError, match="distillation"):
        DistillConfig(s, distillation="medium", teacher_checkpoint="x")


def test_the_student_trains_under_autocast_by_default_the_teacher_does_not():
    s = ModelArgs("deit_tiny", 32, 4)
    assert DistillConfig(s, distillation="none").train.amp == "auto"
    assert DistillConfig(s, distillation="none", train={"epochs": 30}).train.amp == "auto"  # a pipeline YAML's train:
    assert DistillConfig(s, distillation="none", train={"amp": "off"}).train.amp == "off"
    assert TrainConfig().amp == "off"  # vitc teacher


def test_default_threads_follow_the_cpu_affinity(monkeypatch):
    """taskset / a container's cpuset limits the cores: the default thread count is that share, not os.cpu_count()."""
    from vitc import cores, runtime

    fake = SimpleNamespace(sched_getaffinity=lambda pid: {3}, cpu_count=lambda: 64)
    monkeypatch.setattr(cores, "os", fake)
    assert cores.usable_cores() == 1
    monkeypatch.setattr(cores, "os", SimpleNamespace(cpu_count=lambda: 64))  # no affinity call (macOS, Windows)
    assert cores.usable_cores() == 64

    before = torch.get_num_threads()
    monkeypatch.setattr(runtime, "usable_cores", lambda: 1)
    try:
        runtime.init()
        assert torch.get_num_threads() == 1
        runtime.init(threads=2)  # an explicit count wins
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    "data,preset", [("digits", "digits"), ("fashion-mnist", "fashion"), ("/some/ImageFolder", "deit")]
)
def test_the_augmentation_preset_follows_the_data(data, preset):
    from vitc.config import TeacherConfig

    cfg = TeacherConfig({"name": "resnet18"}, data, {"aug": {"reprob": 0.3}})
    assert cfg.train.aug.preset == preset and cfg.train.aug.reprob == 0.3  # an explicit value is kept
    named = TeacherConfig({"name": "resnet18"}, data, {"aug": {"preset": "none"}})
    assert named.train.aug.preset == "none"  # a preset named is never replaced


def test_an_unresolved_preset_cannot_train():
    aug = AugConfig()
    assert aug.preset is None and aug.for_data("fashion-mnist").preset == "fashion"
    with pytest.raises(ConfigError, match="not resolved"):
        aug.mixing
    with pytest.raises(ConfigError, match="aug.reprob"):
        AugConfig(reprob=2.0)  # explicit values are checked before the data is known


def test_the_recipe_is_resolved_by_one_pure_function():
    """vitc.recipe.resolve: the same inputs give the same recipe, a TrainConfig passed in is never changed, and
    each default has one source (the stage's, the data's preset, the from-scratch lr)."""
    from vitc.recipe import SCRATCH_LR, resolve

    given = TrainConfig(epochs=3)
    a = resolve("distill", given, data="fashion-mnist")
    assert a == resolve("distill", given, data="fashion-mnist") and given.lr is None and given.aug.preset is None
    assert a.lr == SCRATCH_LR["distill"] and a.aug.preset == "fashion" and a.aug.hflip == 0.5
    assert (
        resolve("teacher", {}, data="digits").lr == 2e-3
        and resolve("teacher", {}, data="x", pretrained=True).lr is None
    )
    t = resolve("teacher", {"epochs": 1}, data="digits")
    assert (t.epochs, t.warmup_epochs, t.amp, t.aug.preset) == (1, 0.2, "off", "digits")  # warm-up cut to fit
    assert resolve("prune", {}, data=None).aug.preset is None  # the checkpoint's data decides it later


def test_a_vit_gets_a_patch_that_leaves_it_a_4x4_grid():
    from compress.stage import stage_model
    from vitc.models import default_patch

    assert [default_patch(s, 16) for s in (32, 28, 224, 64, 30)] == [8, 7, 16, 16, 6]
    torch.manual_seed(0)
    model, spec = stage_model(ModelArgs("deit_tiny"), 10, 0.0)
    assert model.patch_embed.patch_size == (8, 8) and spec.overrides["patch_size"] == 8
    after = torch.rand(1)
    torch.manual_seed(0)
    named, _ = stage_model(ModelArgs("deit_tiny", patch_size=8), 10, 0.0)  # the old CLI default, said
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), named.state_dict().values()))
    assert torch.equal(after, torch.rand(1))  # and the random stream goes on as it did
    model, spec = stage_model(ModelArgs("deit_tiny", img_size=28, patch_size=4), 10, 0.0)
    assert model.patch_embed.patch_size == (4, 4)


def test_fashion_mnist_with_no_flags_gets_the_measured_recipe():
    """Issue 34: `vitc teacher|distill --data fashion-mnist` alone run results/fashion-cpu/converged's recipe."""
    from vitc.config import TeacherConfig

    t = from_dict(TeacherConfig, {"data": "fashion-mnist"})
    assert t.model == ModelArgs("resnet18", img_size=28, stem="small")
    assert (t.train.epochs, t.train.batch_size, t.train.lr, t.train.warmup_epochs, t.train.amp) == (
        9,
        256,
        2e-3,
        0.5,
        "auto",
    )
    s = from_dict(DistillConfig, {"data": "fashion-mnist", "teacher_checkpoint": "t"})
    assert s.student == ModelArgs("deit_tiny", img_size=28) and s.train.aug.preset == "fashion"
    # what is named wins; a named teacher keeps its own stem; hub weights keep DeiT's lr rule
    t = from_dict(TeacherConfig, {"data": "fashion-mnist", "model": {"name": "vit_tiny"}, "train": {"epochs": 2}})
    assert t.model.stem == "default" and t.model.img_size == 28 and t.train.epochs == 2 and t.train.batch_size == 256
    assert from_dict(TeacherConfig, {"data": "fashion-mnist", "model": {"pretrained": True}}).train.lr is None
    assert from_dict(TeacherConfig, {"data": "digits"}).model == ModelArgs("resnet18")  # digits as before
