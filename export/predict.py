"""`vitc predict` on an .onnx/.xml artifact (the runner a bundle ships: no torch) and `vitc predict --selftest`."""

from __future__ import annotations

from pathlib import Path

from vitc.errors import ConfigError, DataError, VitcError
from vitc.manifest import Manifest


def _target(artifact: Path, m: Manifest):
    """The export target that runs `artifact`; one sentence when its runtime is not here."""
    from vitc import export as registry

    target = registry.get(m.target)
    why = target.check()
    if why:
        raise VitcError(f"cannot run {artifact.name}: {why}")
    return target


def bundle_top(artifact: Path, images: list[Path], topk: int, threads: int | None) -> list[dict]:
    """Labels and probabilities per image through the bundle's runner: [{"image", "top": [{"label", "prob"}]}]."""
    from .edge_run import Bundle

    m = Manifest.read(artifact)
    _target(artifact, m)
    if artifact.suffix == ".onnx":
        from .onnx import check_external_data

        check_external_data(artifact)  # refuses data paths outside the model's folder, as the onnx target does
    try:
        b = Bundle(artifact, m.preprocess.to_json(), m.classes, m.in_graph, threads)
    except Exception as e:  # the runtime's own error on a truncated or foreign file
        kind = "ONNX model" if artifact.suffix == ".onnx" else "OpenVINO IR"
        raise VitcError(
            f"{artifact.name} is not a readable {kind} ({type(e).__name__}: {str(e).splitlines()[0][:160]})",
            "re-export it with `vitc export`",
        ) from None
    tops = b.top(list(images), topk, on_error=DataError)
    return [
        {"image": str(p), "top": [{"label": label, "prob": prob} for label, prob in t]} for p, t in zip(images, tops)
    ]


def selftest_artifact(artifact: Path, threads: int | None) -> tuple[str, bool]:
    """Run the artifact's reference images on this machine: (the line to print, whether it computes what vitc
    validated)."""
    from .edge_run import SelftestUnavailable, device_fn, selftest, selftest_line

    if not artifact.is_file():
        raise ConfigError(
            f"{artifact} is not an artifact file", "pass a file written by `vitc export` or `vitc quantize`"
        )
    m = Manifest.read(artifact)
    if m.output == "features":
        raise ConfigError(f"{artifact.name} outputs features, which have no self-test", "pass a logits artifact")
    target = _target(artifact, m)
    # .onnx/.xml/.pte: the bundle's own runner, as on the device (the exporter took its reference logits so)
    fn = device_fn(artifact, target.load, threads)
    try:
        r = selftest(fn, artifact, m.selftest, m.preprocess.to_json(), m.in_graph)
    except SelftestUnavailable as e:
        raise VitcError(str(e)) from None
    return selftest_line(artifact.name, r), bool(r["passed"])
