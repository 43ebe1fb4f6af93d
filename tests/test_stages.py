"""The stage table and the typed hand-offs: the CLI and the pipeline run a stage the same way (folders, file
stems, gates, defaults), the data travels with the model, and the package keeps no import cycles."""

import ast
import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vitc import checkpoint as ckpt
from vitc import stages
from vitc.cli import main
from vitc.pipeline import Pipeline
from vitc.pipeline_config import load

ROOT = Path(__file__).resolve().parents[1]

PIPE = """\
name: p
data: {data}
runs: {runs}
teacher_checkpoint: {teacher}
distill:
  student: {{name: deit_tiny, img_size: 32, patch_size: 8}}
quantize: {{backends: [torch], max_drop: {max_drop}}}
"""


def _cli(monkeypatch, cwd: Path, *args) -> int:
    monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as e:
        main([*map(str, args)])
        raise SystemExit(0)
    return e.value.code


def _pipeline(tmp_path, tiny_ckpt, max_drop=1.0) -> Pipeline:
    """A pipeline whose distill stage is already done: its student folder holds the tiny checkpoint."""
    p = tmp_path / "cfg.yaml"
    p.write_text(PIPE.format(data="digits", runs=tmp_path / "pruns", teacher=tiny_ckpt, max_drop=max_drop))
    pipe = Pipeline(load(p))
    shutil.copytree(tiny_ckpt, pipe.cfg.stage_dir("distill"))
    return pipe


def _run_stage(pipe: Pipeline, stage: str) -> stages.Result:
    """What Pipeline.run does for one stage (the fingerprinting around it aside)."""
    d = pipe.cfg.stage_dir(stage)
    d.mkdir(parents=True, exist_ok=True)
    return stages.run(stage, pipe.config(stage), pipe.inputs(stage, False), d)


def _files(d: Path) -> set[str]:
    return {p.name for p in d.iterdir() if p.name != "stage.json"}


def test_cli_and_pipeline_name_a_stage_folder_and_files_alike(tmp_path, tiny_ckpt, monkeypatch):
    cwd = tmp_path / "cwd"
    (cwd / "runs").mkdir(parents=True)
    shutil.copytree(tiny_ckpt, cwd / "runs" / "student")
    assert _cli(monkeypatch, cwd, "quantize", "--backend", "torch") == 0
    assert _cli(monkeypatch, cwd, "export", "--target", "onnx") == 0
    pipe = _pipeline(tmp_path, tiny_ckpt)
    _run_stage(pipe, "quantize")
    pipe.cfg.export.targets, pipe.cfg.export.precisions = ["onnx"], ["fp32"]
    _run_stage(pipe, "export")
    for stage in ("distill", "quantize", "export"):
        cli_dir = cwd / "runs" / stages.get(stage).folder
        assert pipe.cfg.stage_dir(stage).name == cli_dir.name, stage
        assert _files(pipe.cfg.stage_dir(stage)) == _files(cli_dir), stage
    assert {"student-torchscript-lite-int8.ptl", ckpt.META, ckpt.WEIGHTS} <= _files(cwd / "runs" / "int8")
    assert "student-onnx-fp32.onnx" in _files(cwd / "runs" / "exports")


def _broken_int8(monkeypatch):
    """A dynamic-int8 recipe that loses the model's accuracy (its head zeroed): the gate must catch it."""
    from vitc import int8_recipe

    real = int8_recipe.dynamic_int8

    def broken(model):
        m = copy.deepcopy(model)
        with torch.no_grad():
            for h in (m.head, getattr(m, "head_dist", None)):
                if h is not None:  # every image -> the last class
                    h.weight.zero_()
                    h.bias.copy_(torch.arange(h.bias.shape[0], dtype=torch.float))
        return real(m)

    monkeypatch.setattr(int8_recipe, "dynamic_int8", broken)
    import vitc.compress.quantize as q

    monkeypatch.setattr(q, "dynamic_int8", broken)


def test_the_int8_gate_fails_alike_in_the_cli_and_the_pipeline(tmp_path, tiny_ckpt, monkeypatch):
    _broken_int8(monkeypatch)
    cwd = tmp_path / "cwd"
    (cwd / "runs").mkdir(parents=True)
    shutil.copytree(tiny_ckpt, cwd / "runs" / "student")
    assert _cli(monkeypatch, cwd, "quantize", "--backend", "torch", "--max-drop", "1.0") == 3
    pipe = _pipeline(tmp_path, tiny_ckpt, max_drop=1.0)
    res = _run_stage(pipe, "quantize")
    assert res.failed and all("max_drop" in f or "--max-drop" in f for f in res.failed)
    for d in (cwd / "runs" / "int8", pipe.cfg.stage_dir("quantize")):
        assert ckpt.load_meta(d)["metrics"]["status"] == "failed: accuracy gate", d
        man = json.loads((d / "student-torchscript-lite-int8.ptl.json").read_text())
        assert man["status"] == "failed: accuracy gate", d


def test_a_yaml_teacher_without_lr_trains_at_the_cli_default(tmp_path, monkeypatch):
    seen = {}

    def capture(name, cfg, inputs, out):
        seen[name] = cfg
        return stages.Result("")

    monkeypatch.setattr(stages, "run", capture)
    assert _cli(monkeypatch, tmp_path, "teacher", "--epochs", "3") == 0
    p = tmp_path / "cfg.yaml"
    p.write_text(
        "name: x\nteacher:\n  model: {name: resnet18, img_size: 32}\n  train: {epochs: 3}\n"
        "distill:\n  student: {name: deit_tiny, img_size: 32, patch_size: 8}\n"
    )
    yaml_cfg = load(p).teacher
    assert yaml_cfg.train.lr == seen["teacher"].train.lr == 2e-3  # the measured from-scratch recipe, not DeiT's 6.25e-5
    assert yaml_cfg.train.warmup_epochs == seen["teacher"].train.warmup_epochs
    assert yaml_cfg.train.drop_path == seen["teacher"].train.drop_path


def _folder_ckpt(image_folder: Path, data: Path, out: Path) -> Path:
    """A tiny CNN checkpoint that records `data` (an ImageFolder) as what it was trained on."""
    from vitc.data import load_source
    from vitc.models import create_model, data_config

    torch.manual_seed(0)
    src = load_source(str(image_folder), 32)
    m, spec = create_model("resnet18", len(src.classes), 32)
    ckpt.save_checkpoint(
        out,
        m.eval(),
        {
            "stage": "teacher",
            "model": spec.to_json(),
            "classes": src.classes,
            "preprocess": data_config(m, 32, 1.0),
            "data": str(data),
            "config": {"data": str(data)},
            "metrics": {},
        },
    )
    return out


def test_an_imagefolder_model_is_validated_on_its_own_data(tmp_path, image_folder, monkeypatch):
    c = _folder_ckpt(image_folder, image_folder, tmp_path / "cnn")
    assert _cli(monkeypatch, tmp_path, "export", c, "--target", "onnx", "--out", tmp_path / "out") == 0
    man = json.loads((tmp_path / "out" / "cnn-onnx-fp32.onnx.json").read_text())
    n_val = sum(1 for _ in (image_folder / "val").rglob("*.png"))
    assert man["data"] == {"name": str(image_folder), "split": "val", "images": n_val}
    assert man["validation"]["n"] == n_val != 360  # not digits' val split


def test_a_checkpoint_whose_data_is_gone_gets_one_sentence(tmp_path, image_folder, capsys, monkeypatch):
    gone = tmp_path / "moved"
    shutil.copytree(image_folder, gone)
    c = _folder_ckpt(image_folder, gone, tmp_path / "cnn")
    shutil.rmtree(gone)
    assert _cli(monkeypatch, tmp_path, "export", c, "--target", "onnx", "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"was trained on {gone}, which no longer exists" in err and "--data" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # the data given explicitly: validated there
    assert (
        _cli(monkeypatch, tmp_path, "export", c, "--target", "onnx", "--out", tmp_path / "out", "--data", image_folder)
        == 0
    )


def _imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports, at the top or inside functions, from the source."""
    pkgs = {"vitc": "vitc", "compress": "vitc.compress", "export": "vitc.export", "benchmarks": "vitc.benchmarks"}
    files = {}
    for top, pkg in pkgs.items():
        for f in (ROOT / top).rglob("*.py"):
            if "studies" in f.parts:
                continue
            parts = [p for p in f.relative_to(ROOT / top).with_suffix("").parts if p != "__init__"]
            files[".".join([pkg, *parts])] = f
    graph = {}
    for name, f in files.items():
        base = name.split(".") if f.name == "__init__.py" else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = (
                    ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                    if node.level
                    else node.module
                )
                cands = [mod] + [f"{mod}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                cands = [a.name for a in node.names]
            else:
                continue
            deps |= {c for c in cands if c in files and c != name}
        graph[name] = deps
    return graph


def test_no_two_modules_import_each_other():
    g = _imports()
    assert len(g) > 40  # the scan found the package
    pairs = sorted({tuple(sorted((a, b))) for a in g for b in g[a] if a in g.get(b, set())})
    assert pairs == []


def test_validating_a_pipeline_yaml_imports_no_torch():
    code = (
        "import sys\nfrom vitc.pipeline_config import load\nc = load('configs/digits.yaml')\n"
        "assert c.stage_dir('distill').name == 'student'\nprint(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'timm')))"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr


def test_the_table_is_the_cli_and_pipeline_order():
    from vitc import runs
    from vitc.pipeline_config import STAGES

    assert STAGES == stages.ORDER == ("teacher", "distill", "prune", "quantize", "export", "bench")
    assert {s.folder for s in stages.TABLE.values()} == set(runs.FOLDERS)
    with pytest.raises(TypeError):
        stages.run("quantize", stages.TABLE["export"].config(), stages.Inputs(), Path("x"))


def test_docs_architecture_shows_the_stage_table_as_the_code_has_it():
    """docs/architecture.md says only what the code does: its stage table is stages.TABLE, row by row."""
    import dataclasses as dc

    from vitc.pipeline_config import PipelineConfig

    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## The stage table")[1].split("```")[1]
    rows = [line.split() for line in block.splitlines() if line.split()[:1] and line.split()[0] in stages.TABLE]
    assert [r[0] for r in rows] == list(stages.ORDER)
    for r in rows:
        s = stages.get(r[0])
        kind = [k for k, on in (("trains", s.trains), ("optional", s.optional), ("artifacts", s.makes_artifacts)) if on]
        reads = {"teacher": "teacher", "student": "student"}.get(s.reads or "", "*" if r[0] == "bench" else "-")
        assert r[1:6] == [s.folder, reads, s.config.__name__, s.runner, s.hooks.split(":")[1]], r
        assert " ".join(r[6:]).replace(",", " ").split() == (kind or ["-"]), r
    # the pipeline has one section per row, in the table's order
    fields = [f.name for f in dc.fields(PipelineConfig) if f.name in stages.TABLE]
    assert fields == list(stages.ORDER)


def test_one_export_stage_loads_the_checkpoint_and_its_val_split_once(tmp_path, tiny_ckpt, monkeypatch):
    """Four artifacts from one stage run: the val tensors and the fp32 reference are computed once, not per artifact."""
    from vitc import handoff
    from vitc.config import ExportConfig

    calls = {"val": 0, "ref": 0}
    real_val, real_ref = handoff.eval_tensors, handoff.reference_logits

    def val(*a, **k):
        calls["val"] += 1
        return real_val(*a, **k)

    def ref(*a, **k):
        calls["ref"] += 1
        return real_ref(*a, **k)

    monkeypatch.setattr(handoff, "eval_tensors", val)
    monkeypatch.setattr(handoff, "reference_logits", ref)
    res = stages.run(
        "export",
        ExportConfig(["onnx", "openvino"], ["fp32", "fp16"], threads=1),
        stages.Inputs(checkpoint=tiny_ckpt),
        tmp_path,
    )
    assert len(res.artifacts) == 4 and all(m["status"] == "ok" for m in res.artifacts), res.summary
    assert calls == {"val": 1, "ref": 1}


def test_quantize_force_leaves_no_stale_artifact_for_the_bench(tmp_path, tiny_ckpt, monkeypatch):
    """Artifacts are named for their source folder, so --force must clear what an earlier run left (any stem)."""
    cwd = tmp_path / "cwd"
    (cwd / "runs" / "int8").mkdir(parents=True)
    shutil.copytree(tiny_ckpt, cwd / "runs" / "student")
    stale = cwd / "runs" / "int8" / "model-onnx-int8.onnx"
    stale.write_bytes(b"old")
    Path(str(stale) + ".json").write_text("{}")
    assert (
        _cli(monkeypatch, cwd, "quantize", "--backend", "torch") == 2
    )  # a folder that holds files: refused without --force
    assert stale.exists()
    assert _cli(monkeypatch, cwd, "quantize", "--backend", "torch", "--force") == 0
    assert not stale.exists() and not Path(str(stale) + ".json").exists()
    assert (cwd / "runs" / "int8" / "student-torchscript-lite-int8.ptl").is_file()
