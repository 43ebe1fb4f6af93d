"""The export-time rewrite: the last ViT block computes only the tokens the head reads. Same
logits as the model (checked on models whose heads read 2 tokens and 1 token), less work, the
source model untouched, and no rewrite where the head reads every token."""

import pytest
import timm
import torch

from vitc.export.head_tokens import HeadTokensBlock, rewrite
from vitc.models import gflops

SMALL = dict(img_size=32, patch_size=8, depth=3, num_classes=10)


@pytest.mark.parametrize(
    "arch,kept", [("deit_tiny_distilled_patch16_224", 2), ("vit_tiny_patch16_224", 1), ("vit_small_patch16_224", 1)]
)
def test_rewrite_keeps_the_logits_and_skips_work(arch, kept):
    torch.manual_seed(0)
    model = timm.create_model(arch, **SMALL).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    out, info = rewrite(model)
    assert info["head_tokens_only"] and info["tokens_kept"] == kept
    assert (
        isinstance(out.blocks[-1], HeadTokensBlock) and type(model.blocks[-1]).__name__ == "Block"
    )  # source untouched
    with torch.no_grad():
        got = out(x)
        assert torch.allclose(model(x), ref)  # the source still computes what it did
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    full, less = gflops(model, [3, 32, 32]), gflops(out, [3, 32, 32])
    # the last block's queries, proj and MLP now run on `kept` of 17 (+1 distillation) tokens
    assert less < 0.85 * full


def test_dynamic_int8_quantizes_the_rewritten_block():
    from vitc.int8_recipe import dynamic_int8

    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_distilled_patch16_224", **SMALL).eval()
    out, _ = rewrite(model)
    q = dynamic_int8(out)
    assert all(
        "quantized.dynamic" in type(m).__module__ for m in (q.blocks[-1].q, q.blocks[-1].kv, q.blocks[0].attn.qkv)
    )
    # int8 activations are scaled per call, so the q layer on 2 tokens rounds differently from qkv on
    # all of them: not equal to the unrewritten int8 model, but no further from fp32 (random weights)
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        err_rewritten = (q(x) - ref).abs().max()
        err_plain = (dynamic_int8(model)(x) - ref).abs().max()
    assert 0 < err_rewritten <= 1.25 * err_plain


@pytest.mark.parametrize(
    "arch,extra,why",
    [
        ("resnet18", {"num_classes": 10}, "not a timm VisionTransformer"),
        ("vit_tiny_patch16_224", {**SMALL, "global_pool": "avg"}, "pools over all tokens"),
    ],
)
def test_no_rewrite_when_the_head_reads_every_token(arch, extra, why):
    model = timm.create_model(arch, **extra).eval()
    out, info = rewrite(model)
    assert out is model and not info["head_tokens_only"] and why in info["why"]
