"""Property tests: whatever a user's YAML/JSON or image file holds, vitc answers with a valid
config / a decoded image, or a VitcError with a message: never another exception."""

import io
import json

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vitc.config import AugConfig, DistillConfig, ModelArgs, TeacherConfig, TrainConfig, from_dict
from vitc.data import load_image
from vitc.errors import VitcError
from vitc.pipeline_config import load

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)),
    max_leaves=6,
)
KEYS = {
    cls: list(cls.__dataclass_fields__) for cls in (TrainConfig, AugConfig, ModelArgs, TeacherConfig, DistillConfig)
}


def _mapping(cls):
    known = st.dictionaries(st.sampled_from(KEYS[cls]), values, max_size=5)
    return st.one_of(known, st.dictionaries(st.text(max_size=8), values, max_size=3), values)


@pytest.mark.parametrize("cls", list(KEYS), ids=[c.__name__ for c in KEYS])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_config_layer_accepts_or_explains(cls, data):
    raw = data.draw(_mapping(cls))
    try:
        cfg = from_dict(cls, raw, cls.__name__)
    except VitcError as e:
        assert e.message
    else:
        assert isinstance(cfg, cls)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    doc=st.dictionaries(
        st.sampled_from(
            ["name", "data", "runs", "teacher", "teacher_checkpoint", "distill", "quantize", "export", "bench", "extra"]
        ),
        values,
        max_size=6,
    )
)
def test_pipeline_yaml_accepts_or_explains(tmp_path, doc):
    p = tmp_path / "fuzz.yaml"
    p.write_text(
        yaml.safe_dump(json.loads(json.dumps(doc, default=str).replace("NaN", "null").replace("Infinity", "1e9")))
    )
    try:
        load(p)
    except VitcError as e:
        assert e.message


def _png(seed: int) -> bytes:
    from sklearn.datasets import load_digits

    a = (load_digits().images[seed % 100] * 15).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).resize((32, 32)).save(buf, format="PNG")
    return buf.getvalue()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        st.tuples(st.integers(0, 99), st.floats(0, 1)).map(lambda t: _png(t[0])[: int(len(_png(t[0])) * t[1])]),
        st.tuples(st.integers(0, 99), st.integers(0, 2047), st.integers(0, 255)).map(
            lambda t: (lambda b: b[: t[1] % len(b)] + bytes([t[2]]) + b[t[1] % len(b) + 1 :])(_png(t[0]))
        ),
    )
)
def test_image_loader_decodes_or_explains(tmp_path, data):
    p = tmp_path / "x.png"
    p.write_bytes(data)
    try:
        img = load_image(p)
    except VitcError as e:
        assert str(p) in e.message
    else:
        assert img.mode == "RGB" and img.size[0] > 0
