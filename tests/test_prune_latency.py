"""`vitc prune --latency`: depth-pruned checkpoints, the latency table's cache and model, the budget, the choice."""

import json
import zipfile

import pytest
import torch
from test_pipeline import vitc

from vitc import checkpoint as ckpt
from vitc.budget import Budget
from vitc.compress import latency_table as lt
from vitc.config import PruneConfig
from vitc.errors import ConfigError

BASE = lt.Base("deit_tiny_distilled_patch16_224", {"img_size": 32, "patch_size": 8, "num_classes": 10}, 4, 16)


def _deep(depth=4):
    from vitc.models import create_model

    torch.manual_seed(0)
    return create_model("deit_tiny", 10, 32, 8, depth=depth)


def test_depth_pruned_model_saves_and_loads_with_the_same_logits_and_no_pickle(tmp_path, monkeypatch):
    from vitc.compress.widths import cut_widths
    from vitc.models import ModelSpec, load_checkpoint_model
    from vitc.structure import keep_blocks, read

    model, spec = _deep()
    model.eval().set_input_size(img_size=(24, 24))  # fewer tokens: timm resamples the position embeddings
    keep_blocks(model, [0, 2, 3])
    s = cut_widths(model, 0.25, 0.0, "magnitude", 16, torch.zeros(1, 3, 24, 24))
    assert len(s["blocks"]) == 3 and s["format"] == "vitc-vit-widths/2" and model.pos_embed.shape[1] == 9 + 2
    meta = {"stage": "prune", "classes": [str(i) for i in range(10)], "preprocess": {"input_size": [3, 24, 24]}}
    spec = ModelSpec(spec.name, {**spec.overrides, "img_size": 24}, structure=s)
    ckpt.save_checkpoint(tmp_path / "p", model, {**meta, "model": spec.to_json()})
    for f in (tmp_path / "p").iterdir():
        assert not zipfile.is_zipfile(f) and f.read_bytes()[:2] != b"\x80\x02", f
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pruned checkpoint loads without torch.load"))
    loaded, _ = load_checkpoint_model(tmp_path / "p")
    assert read(loaded) == s and len(loaded.blocks) == 3
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_a_v1_structure_must_list_every_block():
    from vitc.errors import ModelError
    from vitc.structure import apply, read

    model, _ = _deep()
    s = read(model)
    apply(_deep()[0], {**s, "format": "vitc-vit-widths/1"})  # all 4 blocks: fine
    with pytest.raises(ModelError, match="3 blocks but the architecture has 4"):
        apply(_deep()[0], {**s, "format": "vitc-vit-widths/1", "blocks": s["blocks"][:3]})


@pytest.mark.parametrize("text", ["fast", "0.3", "-1x", "0x", "1.2 s", ""])
def test_a_malformed_budget_gets_one_clear_sentence(text):
    with pytest.raises(ConfigError, match="latency budget .* is not a positive number with a unit"):
        Budget.parse(text)


def test_budgets_parse_relative_and_absolute():
    assert Budget.parse("0.33x") == Budget(0.33, True)
    assert Budget.parse("1.2ms").ratio(2.4) == pytest.approx(0.5)
    assert Budget.parse("800us") == Budget(0.8, False)


def test_ratio_and_latency_together_are_refused(tiny_ckpt):
    with pytest.raises(ConfigError, match="not both"):
        PruneConfig(str(tiny_ckpt), ratio=0.3, latency="0.5x")
    assert PruneConfig(str(tiny_ckpt)).ratio == 0.5 and PruneConfig(str(tiny_ckpt), latency="0.5x").ratio is None


def _fake_measure(calls):
    def measure(base, runtime_name, threads, todo, rounds, console, Steps):
        calls.append([c.key for c in todo])
        # a made-up but depth-linear latency: what the table's bookkeeping is tested with, not a measurement
        return {
            c.key: {
                "depth": c.depth,
                "width": c.width,
                "img_size": c.img_size,
                "ratio": (0.1 + 0.225 * c.depth) * (1 - c.width) * (c.img_size / 32) ** 2,
                "ratio_rounds": [],
                "p50_ms_rounds": [],
                "ref_ms": 2.0,
            }
            for c in todo
        }

    return measure


def test_the_cache_is_reused_and_a_new_runtime_version_measures_afresh(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setenv("VITC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(lt, "_measure", _fake_measure(calls))
    monkeypatch.setattr(lt, "runtime_version", lambda target: "2026.4.1")
    t1 = lt.build(BASE, "openvino-int8", 2, [0.0, 0.5], [1.0])
    assert len(calls) == 1 and len(calls[0]) == 6  # 2 widths x depths {1, 2, 4}; the reference is d4-w0
    t2 = lt.build(BASE, "openvino-int8", 2, [0.0, 0.5], [1.0])
    assert len(calls) == 1 and t2.entries == t1.entries and t2.path == t1.path  # cached
    monkeypatch.setattr(lt, "runtime_version", lambda target: "2027.0.0")
    t3 = lt.build(BASE, "openvino-int8", 2, [0.0, 0.5], [1.0])
    assert len(calls) == 2 and t3.path != t1.path and t3.key["runtime_version"] == "2027.0.0"
    lt.build(BASE, "openvino-int8", 1, [0.0, 0.5], [1.0])  # other thread count: another key
    assert len(calls) == 3


def test_a_table_file_from_another_key_is_refused_not_overwritten(tmp_path, monkeypatch):
    monkeypatch.setattr(lt, "_measure", _fake_measure([]))
    f = tmp_path / "table.json"
    lt.build(BASE, "openvino-int8", 2, [0.0], [1.0], table=f)
    before = f.read_text()
    with pytest.raises(ConfigError, match="measured under another key .*threads"):
        lt.build(BASE, "openvino-int8", 1, [0.0], [1.0], table=f)
    assert f.read_text() == before


def test_the_depth_line_predicts_unmeasured_depths_and_reports_its_held_out_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lt, "_measure", _fake_measure([]))
    base = lt.Base(BASE.name, BASE.overrides, 12, 16)
    t = lt.build(base, "openvino-int8", 2, [0.0], [1.0], table=tmp_path / "t.json")
    assert sorted(e["depth"] for e in t.entries.values() if e["width"] == 0) == [3, 7, 12]
    assert t.predict(lt.Candidate(5, 0.0, 32)) == pytest.approx(0.1 + 0.225 * 5)
    err = t.model_error()
    assert [p["key"] for p in err["points"]] == ["d7-w0-i32"] and err["mean_abs_pct"] == pytest.approx(0, abs=1e-9)
    t.entries["d7-w0-i32"]["ratio"] *= 1.1  # the held-out point off the line by 10%: the error says so
    assert t.model_error()["mean_abs_pct"] == pytest.approx(100 * (1 - 1 / 1.1))


def test_a_budget_no_candidate_meets_names_the_fastest_measured(tmp_path, monkeypatch):
    from vitc.compress.prune_latency import shortlist

    monkeypatch.setattr(lt, "_measure", _fake_measure([]))
    t = lt.build(BASE, "openvino-int8", 2, [0.0, 0.5], [1.0, 0.75], table=tmp_path / "t.json")
    with pytest.raises(
        ConfigError, match=r"no structure meets the latency budget 0.05x .* fastest measured is d1-w0.5-i24"
    ):
        shortlist(t, BASE, Budget.parse("0.05x"), [0.0, 0.5], [1.0, 0.75])
    target, picks = shortlist(t, BASE, Budget.parse("0.5x"), [0.0, 0.5], [1.0, 0.75])
    assert target == 0.5 and picks and all(0.8 * 0.5 <= p.predicted <= 0.5 for p in picks)
    assert picks == sorted(picks, key=lambda p: 0.5 - p.predicted)
    _, picks = shortlist(t, BASE, Budget.parse("1x"), [0.0, 0.5], [1.0, 0.75])  # the control: nothing cut
    assert [p.candidate for p in picks] == [BASE.reference]


def test_block_importance_drops_the_block_that_does_nothing_first():
    from vitc.compress.prune_latency import drop_order, kept_blocks
    from vitc.compress.trainer import head_logits

    model, _ = _deep()
    model.eval()
    with torch.no_grad():  # block 1 adds nothing to the residual stream: removing it changes no logit
        for lin in (model.blocks[1].attn.proj, model.blocks[1].mlp.fc2):
            lin.weight.zero_()
            lin.bias.zero_()
    X, Y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    with torch.no_grad():
        full = head_logits(model, X)

    def drift(x, out, y):  # how far the heads moved from the whole model's: 0 only if nothing changed
        i = next(i for i in range(0, 64, 1) if torch.equal(X[i : i + len(x)], x))
        return sum(((o - full[k][i : i + len(x)]) ** 2).mean() for o, k in zip(out, ("cls", "dist")))

    order = drop_order(model, X, Y, drift, 2)
    assert order[0]["block"] == 1 and len(order) == 2 and len(model.blocks) == 4  # the model is left whole
    assert kept_blocks(3, order, 4) == [0, 2, 3]


def test_cli_prune_refuses_a_malformed_budget_before_writing(tmp_path, tiny_ckpt):
    p = vitc("prune", tiny_ckpt, "--latency", "fast", "--out", tmp_path / "out", check=False)
    assert p.returncode != 0 and "latency budget 'fast' is not a positive number" in p.stderr + p.stdout
    assert "Traceback" not in p.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_prune_latency_end_to_end_on_openvino(tmp_path, tiny_ckpt):
    """Measured for real (tiny shapes): the table, the choice, the depth-pruned student that loads back."""
    pytest.importorskip("openvino", reason="the openvino-int8 latency table needs openvino")
    from vitc.models import load_checkpoint_model

    table = tmp_path / "table.json"
    p = vitc(
        "prune", tiny_ckpt, "--teacher-checkpoint", tiny_ckpt, "--latency", "0.75x", "--widths", "0,0.5",
        "--token-scales", "1", "--table", table, "--epochs", "1", "--batch-size", "64", "--threads", "1",
        "--out", tmp_path / "pruned",
    )  # fmt: skip
    t = json.loads(table.read_text())
    assert t["key"]["runtime"] == "openvino-int8" and {"d1-w0-i32", "d2-w0-i32", "d1-w0.5-i32"} <= set(t["entries"])
    meta = ckpt.load_meta(tmp_path / "pruned")
    chosen = meta["pruning"]["chosen"]
    assert chosen["predicted"] <= 0.75 and "chose " + chosen["key"] in p.stdout
    model, _ = load_checkpoint_model(tmp_path / "pruned")
    assert len(model.blocks) == chosen["depth"] == len(meta["model"]["structure"]["blocks"])


def test_the_pipeline_prune_stage_takes_a_latency_budget(tmp_path):
    from test_pipeline import _write

    from vitc.pipeline_config import load

    head = "name: t\ndata: digits\nteacher_checkpoint: t\ndistill: {student: {name: deit_tiny}}\n"
    c = load(_write(tmp_path, head + "prune: {latency: 0.33x, widths: [0, 0.5], token_scales: [1]}\n"))
    assert c.prune.latency == "0.33x" and c.prune.widths == (0.0, 0.5) and c.prune.ratio is None
    with pytest.raises(ConfigError, match="prune.latency: give a latency budget or a ratio, not both"):
        load(_write(tmp_path, head + "prune: {latency: 0.33x, ratio: 0.5}\n"))
