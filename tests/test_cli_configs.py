"""Issue 35: the stage configs are the one source of every stage command's options and defaults. `vitc <stage>` with
no options and a pipeline YAML with an empty section build equal configs; every option maps to a config field."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import typer

from vitc import stages
from vitc.cli import app, main
from vitc.cli_gen import RUN_OPTIONS, options
from vitc.config import DistillConfig, ModelArgs, QuantizeConfig, TrainConfig
from vitc.pipeline_config import load


def _click_params(stage: str) -> dict[str, object]:
    cmd = typer.main.get_command(app).commands[stage]
    return {p.name: p for p in cmd.params}


def _field(cls: type, path: tuple[str, ...]) -> dataclasses.Field:
    for i, name in enumerate(path):
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        if i < len(path) - 1:
            cls = f.metadata["nested"]
    return f


@pytest.mark.parametrize("stage", stages.ORDER)
def test_every_option_of_a_stage_command_is_a_config_field(stage):
    cls = stages.get(stage).config
    opts = {o.name: o for o in options(cls)}
    params = _click_params(stage)
    for name in params:
        assert name in opts or name in RUN_OPTIONS, f"vitc {stage} --{name} maps to no {cls.__name__} field"
    for o in opts.values():
        assert o.name in params, f"{cls.__name__}.{'.'.join(o.path)} has no option in vitc {stage}"
        f = _field(cls, o.path)  # the path names a real field, whose help the option shows
        assert f.metadata.get("help") and o.help, f"{'.'.join(o.path)}: no help"
        assert params[o.name].help == o.help


def test_the_options_carry_the_configs_names_and_defaults():
    """Nested fields are flattened under their old names; what the help shows is what the config would hold."""
    by_path = {o.path: o.flag for o in options(DistillConfig)}
    assert by_path[("student", "name")] == "--student" and by_path[("train", "aug", "preset")] == "--aug"
    assert by_path[("train", "epochs")] == "--epochs" and by_path[("student", "patch_size")] == "--patch-size"
    assert {o.flag for o in options(QuantizeConfig)} >= {"--backend", "--int8-isa", "--calib-size"}
    epochs = _click_params("distill")["epochs"]
    assert epochs.default is None and epochs.show_default == "40"  # not given: the config's 40 (DISTILL_TRAIN)
    assert _click_params("teacher")["epochs"].show_default == "10"
    assert _click_params("prune")["lr"].show_default == "0.0005"


def _capture(monkeypatch, cwd: Path, *args) -> object:
    """The config `vitc ARGS` hands to its stage, without running the stage."""
    seen = {}

    def fake_run(name, cfg, inputs, out):
        seen["cfg"] = cfg
        return stages.Result("", {"rows": []} if name == "bench" else {})

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(stages, "run", fake_run)
    main([*map(str, args)])
    return seen["cfg"]


def test_a_command_without_options_and_an_empty_yaml_section_build_equal_configs(tmp_path, tiny_ckpt, monkeypatch):
    cwd = tmp_path / "cwd"
    (cwd / "runs").mkdir(parents=True)
    shutil.copytree(tiny_ckpt, cwd / "runs" / "student")
    yaml = tmp_path / "empty.yaml"
    yaml.write_text("name: x\n" + "".join(f"{s}: {{}}\n" for s in stages.ORDER))
    pipe = load(yaml)
    teacher = str(tiny_ckpt)
    cli = {
        "teacher": _capture(monkeypatch, cwd, "teacher"),
        # distill needs a teacher; the pipeline names its own teacher stage's folder
        "distill": _capture(monkeypatch, cwd, "distill", "--teacher-checkpoint", teacher),
        "prune": _capture(monkeypatch, cwd, "prune"),
        "quantize": _capture(monkeypatch, cwd, "quantize"),
        "export": _capture(monkeypatch, cwd, "export"),
        "bench": _capture(monkeypatch, cwd, "bench", cwd / "runs" / "student"),
    }
    from_yaml = {
        "teacher": pipe.teacher,
        "distill": dataclasses.replace(pipe.distill, teacher_checkpoint=teacher),
        "prune": dataclasses.replace(pipe.prune, checkpoint=""),  # the pipeline fills in its student's folder
        "quantize": pipe.quantize,
        "export": pipe.export,
        "bench": pipe.bench,
    }
    for stage in stages.ORDER:
        assert cli[stage] == from_yaml[stage], stage
    # and what they are: the stage defaults, one value each (the drift issue 35 found)
    assert cli["distill"].student == ModelArgs("deit_tiny") and cli["distill"].student.patch_size is None
    assert cli["quantize"].backends == QuantizeConfig().backends == ["torch", "onnxruntime", "openvino"]
    assert cli["bench"].threads == 2 and cli["bench"].batch == (1, 16)
    assert isinstance(cli["teacher"].train, TrainConfig) and cli["teacher"].train.batch_size is None


def test_options_given_reach_the_nested_fields(tmp_path, tiny_ckpt, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cfg = _capture(
        monkeypatch,
        cwd,
        "distill",
        "--teacher-checkpoint",
        tiny_ckpt,
        "--student",
        "deit_small",
        "--img-size",
        "28",
        "--aug",
        "none",
        "--hflip",
        "0.5",
        "--epochs",
        "3",
        "--data",
        "fashion-mnist",
    )
    assert cfg.student == ModelArgs("deit_small", img_size=28) and cfg.data == "fashion-mnist"
    assert cfg.train.epochs == 3 and cfg.train.aug.preset == "none" and cfg.train.aug.hflip == 0.5
    q = _capture(monkeypatch, cwd, "quantize", tiny_ckpt, "--backend", "torch,openvino", "--backend", "executorch")
    assert q.backends == ["torch", "openvino", "executorch"]
    p = _capture(monkeypatch, cwd, "prune", tiny_ckpt, "--latency", "0.5x", "--widths", "0,0.5", "--round-to", "0")
    assert p.widths == (0.0, 0.5) and p.round_to is None and p.ratio is None and p.checkpoint == str(tiny_ckpt)


def test_quantize_by_default_skips_a_runtime_this_install_lacks_and_refuses_one_named(
    tmp_path, tiny_ckpt, monkeypatch, capsys
):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError, as if not installed
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    q = _capture(monkeypatch, cwd, "quantize", tiny_ckpt, "--out", tmp_path / "q")
    assert q.backends == ["torch", "onnxruntime"]
    assert "skipping the openvino backend: openvino is not installed" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as e:
        main(["quantize", str(tiny_ckpt), "--backend", "openvino", "--out", str(tmp_path / "q2")])
    assert e.value.code == 2 and "--backend openvino: its runtime is unavailable here" in capsys.readouterr().err
    assert not (tmp_path / "q2").exists()
