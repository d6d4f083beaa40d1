"""Values read from files are bounded before they are used: a checkpoint's stored model
configuration with a wrong type or an absurd value stops with one error naming the file and
the key, before any model is built."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iefvad.models.checkpoint import CheckpointError, load_model, save_checkpoint
from iefvad.models.model import IEFVAD, ModelConfig
from iefvad.stored import Bound, StoredValueError, check_value


def _small() -> IEFVAD:
    return IEFVAD(ModelConfig(dim=16, heads=2, layers=1, refine_steps=1))


def _edited(tmp_path, **config):
    """A checkpoint of a small model whose stored model_config has ``config`` written in."""
    path = tmp_path / "edited.pth"
    save_checkpoint(path, _small())
    obj = torch.load(path, weights_only=True)
    obj["model_config"].update(config)
    torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    "key, value",
    [
        ("heads", -2),
        ("heads", 0),
        ("dim", "32"),
        ("dim", 10**6),
        ("dim", 16.0),
        ("layers", True),
        ("layers", -1),
        ("refine_steps", 10**9),
        ("dropout", float("nan")),
        ("dropout", "0.1"),
        ("nu", 0.0),
        ("nu", float("inf")),
        ("weight_power", -1.0),
        ("fusion", "magic"),
        ("fusion", 3),
        ("mask_padding", "yes"),
        ("input_norm", None),
    ],
)
def test_stored_config_out_of_range_or_wrong_type_names_file_and_key(tmp_path, key, value):
    path = _edited(tmp_path, **{key: value})
    with pytest.raises(StoredValueError) as e:
        load_model(path)
    msg = str(e.value)
    assert str(path) in msg and f"'{key}'" in msg, msg
    assert "\n" not in msg


def test_stored_config_that_does_not_match_its_weights_is_refused_before_building(tmp_path):
    # in range, but 8192 wide over 16-wide weights: refused from the shapes, nothing built
    path = _edited(tmp_path, dim=8192, heads=8)
    with pytest.raises(CheckpointError, match=r"dim 8192 \(the weights hold 16\)"):
        load_model(path)
    path = _edited(tmp_path, layers=40)
    with pytest.raises(CheckpointError, match=r"layers 40 \(the weights hold 1\)"):
        load_model(path)


def test_divisibility_error_of_a_stored_config_names_the_file(tmp_path):
    path = _edited(tmp_path, heads=3)
    with pytest.raises(StoredValueError, match=r"edited\.pth.*not divisible by heads 3"):
        load_model(path)


def test_state_dict_that_is_not_tensors_is_named(tmp_path):
    path = tmp_path / "x.pth"
    save_checkpoint(path, _small())
    obj = torch.load(path, weights_only=True)
    obj["model_state_dict"]["temporal.classifier.weight"] = [1.0, 2.0]
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="temporal.classifier.weight.*list"):
        load_model(path)


def test_intact_checkpoint_still_loads(tmp_path):
    path = tmp_path / "ok.pth"
    save_checkpoint(path, _small())
    model, ckpt = load_model(path)
    assert ckpt.config.dim == 16


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )
)
def test_check_value_accepts_exactly_the_values_in_bounds(value):
    b = Bound("int", 1, 256)
    ok = type(value) is int and 1 <= value <= 256
    if ok:
        assert check_value(value, b, "f", "k") == value
    else:
        with pytest.raises(StoredValueError, match="f: 'k' is"):
            check_value(value, b, "f", "k")
    fb = Bound("float", 0.0, 1.0)
    fok = type(value) in (int, float) and math.isfinite(value) and 0 <= value <= 1
    if fok:
        check_value(value, fb, "f", "k")
    else:
        with pytest.raises(StoredValueError):
            check_value(value, fb, "f", "k")


# --- a checkpoint's feature record (the encoders infer.py rebuilds) -------------------------


def _with_record(tmp_path, edit):
    from iefvad.extraction.encoders import VisionArch, random_encoder
    from iefvad.extraction.provenance import attach_to_checkpoint, encoder_record, feature_record
    from iefvad.extraction.recipe import RecipeOptions

    arch = VisionArch(width=64, layers=1, patch_size=32, embed_dim=16)
    path = tmp_path / "rec.pth"
    save_checkpoint(path, _small())
    enc = random_encoder(arch, 0)
    rec = feature_record(
        encoder_record(enc, arch, 0), encoder_record(enc, arch, 0), RecipeOptions(crops=(5,)), 5
    )
    edit(rec)
    attach_to_checkpoint(path, rec)
    return path


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda r: r["image"]["random_arch"].update(width=10**6), "width"),
        (lambda r: r["image"]["random_arch"].update(layers=-2), "layers"),
        (lambda r: r["event"]["random_arch"].update(embed_dim="32"), "embed_dim"),
        (lambda r: r["event"]["random_arch"].update(head_width=48), "head_width"),
        (lambda r: r["image"].update(embed_dim=10**7), "embed_dim"),
        (lambda r: r["image"].update(seed=-1), "seed"),
        (lambda r: r.update(test_crop=12), "test_crop"),
        (lambda r: r.update(group_snippets=0), "group_snippets"),
        (lambda r: r["recipe"].update(threshold=float("nan")), "threshold"),
        (lambda r: r["recipe"].update(clamp=-1.0), "clamp"),
        (lambda r: r["image"].update(standardize={"mean": [0.0] * 3, "std": [1.0] * 3}), "mean"),
    ],
)
def test_feature_record_values_are_bounded_before_an_encoder_is_built(tmp_path, edit, key):
    from iefvad.inference.session import setup

    path = _with_record(tmp_path, edit)
    with pytest.raises(StoredValueError) as e:
        setup(path, device="cpu")
    msg = str(e.value)
    assert str(path) in msg and key in msg and "\n" not in msg, msg


def test_intact_feature_record_still_sets_up(tmp_path):
    from iefvad.inference.session import setup

    assert setup(_with_record(tmp_path, lambda r: None), device="cpu").crop == 5


# --- an extraction manifest's shape --------------------------------------------------------


@pytest.mark.parametrize("key, value", [("T", 10**12), ("T", -1), ("dim", True), ("dim", "32")])
def test_manifest_shape_out_of_bounds_is_named(tmp_path, key, value):
    import json

    import numpy as np

    from iefvad.extraction.layout import feature_file_status
    from iefvad.extraction.manifest import MANIFEST_FORMAT
    from iefvad.fileio import save_npy

    save_npy(tmp_path / "x__0.npy", np.zeros((2, 8), np.float32))
    m = {"format": MANIFEST_FORMAT, "T": 2, "dim": 8, "crops": [0], key: value}
    (tmp_path / "x.manifest.json").write_text(json.dumps(m))
    status = feature_file_status(tmp_path / "x__0.npy")
    assert status.startswith("manifest unreadable") and f"'{key}'" in status, status


def test_integer_model_weights_are_refused_naming_key_and_dtype(tmp_path):
    # an int64 state dict was cast silently before: a model of 0/1 weights, AUC 50.00
    path = tmp_path / "int64.pth"
    save_checkpoint(path, _small())
    obj = torch.load(path, weights_only=True)
    obj["model_state_dict"] = {k: v.to(torch.int64) for k, v in obj["model_state_dict"].items()}
    torch.save(obj, path)
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    msg = str(e.value)
    assert str(path) in msg and "int64" in msg and "temporal." in msg, msg
