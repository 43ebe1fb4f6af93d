"""`vitc quantize` and a pipeline's `quantize:` stage: int8 through each runtime's own quantizer, with one
accuracy gate for all of them. A model that drops more than `max_drop` top-1 points is kept on disk and marked
failed in its record (the torch checkpoint's metrics, an artifact's manifest); the CLI then exits 3, the
pipeline shows it in its summary and goes on."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from vitc import checkpoint as ckpt
from vitc.config import QUANT_BACKENDS, QUANT_TARGET, QuantizeConfig
from vitc.errors import ConfigError
from vitc.export.stage import SKIPPED_FILE, clear_artifacts, export_checkpoint
from vitc.handoff import Checkpoint
from vitc.stages import Inputs, Result

from .quantize import quantize_checkpoint


def run(cfg: QuantizeConfig, inputs: Inputs, out: Path) -> Result:
    console = inputs.console or Console()
    c = Checkpoint.open(inputs.checkpoint)
    if c.quantization:
        raise ConfigError(f"{c.path} is already quantized ({c.quantization['method']})", "pass the fp32 checkpoint")
    c.data_name(cfg.data)  # no data to validate on: one sentence before anything is written
    if inputs.force and out.is_dir():
        clear_artifacts(out)
    res = Result("")
    done = []
    for b in sorted(cfg.backends, key=QUANT_BACKENDS.index):  # torch first: it starts the folder (prepare_out)
        target = QUANT_TARGET[b]
        with res.guard(inputs, b, {"target": target, "precision": "int8"}) as g:
            if b == "torch":
                m = quantize_checkpoint(c, out, cfg.max_drop, cfg.data, inputs.force)
                console.print(
                    f"dynamic int8 checkpoint {out}: top-1 {m['top1']:.2f}% (fp32 {m['top1_fp32']:.2f}%)",
                    highlight=False,
                )
                if m["status"] != "ok":
                    res.failed.append(
                        f"{out} (dynamic int8): top-1 {m['top1']:.2f}% vs fp32 {m['top1_fp32']:.2f}% "
                        f"(drop {m['top1_drop']:.2f} > max_drop {cfg.max_drop})"
                    )
            opts = {"onnxruntime": {"int8_mode": cfg.ort_mode}, "openvino": {"nncf": cfg.nncf}}.get(b)
            man = export_checkpoint(
                c,
                target,
                "int8",
                out,
                data=cfg.data,
                calib=cfg.calib,
                calib_size=cfg.calib_size,
                threads=cfg.threads,
                max_drop=cfg.max_drop,
                opts=opts,
                int8_isa=cfg.int8_isa,
            )
            res.artifacts.append(man)
            done.append(f"{b} {man['validation']['top1_artifact']:.2f}%")
        if g.outcome == "failed":
            done.append(f"{b} failed gate")
    if res.skipped:
        ckpt.write_json(out / SKIPPED_FILE, res.skipped)
    res.summary = ", ".join(done + [f"{s['target']} skipped" for s in res.skipped])
    return res
