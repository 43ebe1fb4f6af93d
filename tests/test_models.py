import time

import pytest
import torch

from vitc.config import ModelArgs
from vitc.errors import ConfigError, ModelError, OfflineError
from vitc.models import create_model, data_config, is_distilled, resolve_name


@pytest.mark.parametrize(
    "alias,arch,tag",
    [
        ("regnety_16gf", "regnety_160", "deit_in1k"),
        ("deit_tiny", "deit_tiny_distilled_patch16_224", None),
        ("deit_small", "deit_small_distilled_patch16_224", None),
        ("resnet18", "resnet18", None),
        ("regnety_160.swag_ft_in1k", "regnety_160", "swag_ft_in1k"),
    ],
)
def test_alias_resolution(alias, arch, tag):
    assert resolve_name(alias) == (arch, tag)


def test_unknown_model_suggests_closest():
    with pytest.raises(ModelError) as e:
        resolve_name("deit_tinny_distilled_patch16_224")
    assert "deit_tiny_distilled_patch16_224" in e.value.hint


def test_overrides_reach_the_constructor():
    m, spec = create_model("deit_tiny", num_classes=7, img_size=32, patch_size=4, depth=2)
    assert is_distilled(m) and m.patch_embed.grid_size == (8, 8) and len(m.blocks) == 2
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    assert spec.overrides == {"num_classes": 7, "img_size": 32, "patch_size": 4, "depth": 2}
    assert data_config(m, 32)["input_size"] == [3, 32, 32]


def test_cnn_ignores_img_size_but_rejects_patch_size():
    m, spec = create_model("resnet18", num_classes=10, img_size=32)
    assert "img_size" not in spec.overrides and m.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ModelError, match="patch"):
        create_model("resnet18", num_classes=10, img_size=32, patch_size=4)


def test_pretrained_offline_is_one_clear_error_and_fast():
    t = time.perf_counter()
    with pytest.raises(OfflineError) as e:
        create_model("resnet18", num_classes=10, pretrained=True)
    assert time.perf_counter() - t < 20
    assert "--teacher-checkpoint" in e.value.hint and "vitc teacher" in e.value.hint


def test_img_size_not_divisible_by_patch():
    with pytest.raises(ConfigError, match="not divisible"):
        ModelArgs("deit_tiny", img_size=30, patch_size=4)


def test_small_stem_keeps_more_of_a_small_image_and_is_rebuilt_from_its_spec():
    from vitc.models import build_from_spec

    seen = {}
    torch.manual_seed(0)
    m, spec = create_model("resnet18", num_classes=10, img_size=28, stem="small")
    m.layer1.register_forward_hook(lambda mod, i, o: seen.update(small=o.shape[-1]))
    default, _ = create_model("resnet18", num_classes=10, img_size=28)
    default.layer1.register_forward_hook(lambda mod, i, o: seen.update(default=o.shape[-1]))
    x = torch.randn(2, 3, 28, 28)
    m.eval()(x), default.eval()(x)
    assert seen == {"small": 14, "default": 7}
    assert spec.to_json()["stem"] == "small" and "stem" not in create_model("resnet18", 10, 28)[1].to_json()
    again = build_from_spec(spec.to_json())
    again.load_state_dict(m.state_dict())  # the same shapes: conv1 is the 3x3 one again
    assert torch.equal(again.eval()(x), m(x))


def test_a_stem_only_for_models_that_have_one():
    with pytest.raises(ModelError, match="no ResNet stem"):
        create_model("deit_tiny", num_classes=10, img_size=28, patch_size=7, stem="small")
    with pytest.raises(ConfigError, match="did you mean 'small'"):
        ModelArgs("resnet18", img_size=28, stem="smal")
