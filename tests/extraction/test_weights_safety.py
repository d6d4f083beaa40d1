"""Weight files are read without running code from them: an allow-list for what real CLIP and
event-CLIP checkpoints hold, anything else only with --trust_weights_file."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from iefvad.extraction.encoders import (
    EncoderError,
    UnsafeWeightsError,
    load_encoder,
    read_weights_file,
    state_dict_of,
)
from iefvad.extraction.weights import WeightsOptions

from extract_helpers import openai_state_dict, tiny_clip, torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


class _TouchesMarker:
    """Unpickling this creates ``marker``: stands for any code a crafted file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _event_ckpt(seed: int = 3) -> dict:
    sd = openai_state_dict(tiny_clip(seed=seed))
    return {"checkpoint": {f"encoder_k.{k}": v for k, v in sd.items()}}


def test_malicious_pickle_is_rejected_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    for i, payload in enumerate((_TouchesMarker(marker), _RunsShell(marker))):
        for legacy in (False, True):  # zip format and torch's pre-1.6 format
            path = tmp_path / f"evil{i}{'_legacy' * legacy}.pt"
            ckpt = {**_event_ckpt(), "extra": payload}
            torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
            with pytest.raises(UnsafeWeightsError) as e:
                load_encoder(path, kind="event")
            msg = str(e.value)
            assert str(path) in msg and "--trust_weights_file" in msg, msg
            assert "arbitrary code" in msg
            assert ("exec" if i == 0 else "system") in msg  # the offending global
            assert not marker.exists()


def test_trusted_flag_loads_the_file_in_full_with_a_warning(tmp_path, caplog):
    marker = tmp_path / "ran"
    path = tmp_path / "trusted.pt"
    torch.save({**_event_ckpt(), "extra": _TouchesMarker(marker)}, path)
    with caplog.at_level(logging.WARNING, logger="iefvad.extraction.encoders"):
        enc = load_encoder(path, kind="event", weights=WeightsOptions(trust_file=True))
    assert marker.exists()  # it really was unpickled in full
    assert enc.embed_dim == 16
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "--trust_weights_file" in warning and str(path) in warning
    assert "arbitrary code" in warning and "builtins.exec" in warning


def test_namespace_and_numpy_objects_load_without_the_flag(tmp_path, caplog):
    """What the event-CLIP training script saved besides weights: its arguments and numpy
    metrics. Also numpy 1's module names (numpy.core.*), as in files written before numpy 2."""
    ckpt = {
        **_event_ckpt(),
        "args": argparse.Namespace(lr=0.1, arch="ViT-L/14", gpus=[0, 1]),
        "best_acc": np.float64(0.61),
        "epoch": np.int64(12),
        "flags": np.bool_(True),
        "history": np.arange(4, dtype=np.float32),
        "dtype": np.dtype("float16"),
    }
    zip_path, legacy_path = tmp_path / "event.pt", tmp_path / "legacy.pt"
    torch.save(ckpt, zip_path)
    torch.save(ckpt, legacy_path, _use_new_zipfile_serialization=False)
    raw = legacy_path.read_bytes()
    assert b"numpy._core.multiarray" in raw
    numpy1 = tmp_path / "numpy1.pt"
    numpy1.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    with caplog.at_level(logging.WARNING):
        for path in (zip_path, legacy_path, numpy1):
            obj = read_weights_file(path)
            assert obj["args"].arch == "ViT-L/14" and obj["epoch"] == 12
            assert obj["best_acc"] == pytest.approx(0.61) and obj["dtype"] == np.float16
            np.testing.assert_array_equal(obj["history"], np.arange(4, dtype=np.float32))
            assert set(state_dict_of(obj)) == set(openai_state_dict(tiny_clip(seed=3)))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    enc = load_encoder(numpy1, kind="event")
    assert enc.fingerprint == load_encoder(zip_path, kind="event").fingerprint


def test_empty_and_truncated_files_say_why(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(_event_ckpt(), good)
    legacy = tmp_path / "legacy.pt"
    torch.save(_event_ckpt(), legacy, _use_new_zipfile_serialization=False)
    from safetensors.torch import save_file

    st = tmp_path / "good.safetensors"
    save_file({"w": torch.ones(64)}, str(st))
    cases = {
        "empty.pt": (b"", r"is empty \(0 bytes\)"),
        "cut.pt": (good.read_bytes()[: good.stat().st_size // 2], r"is truncated: a zip archive"),
        "cut_legacy.pt": (legacy.read_bytes()[:150], r"ends early or is damaged"),
        "cut.safetensors": (st.read_bytes()[:100], r"not a complete \.safetensors file"),
        "text.pt": (b"hello, not weights\n", r"cannot be read \(.+\): expected a TorchScript"),
    }
    for name, (data, pattern) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(EncoderError, match=pattern) as e:
            load_encoder(path, kind="event")
        assert str(path) in str(e.value), name
        assert not isinstance(e.value, UnsafeWeightsError), name
        assert "Weights only load failed" not in str(e.value)  # torch's advice to unpickle
