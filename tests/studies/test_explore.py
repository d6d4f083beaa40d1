"""The uncertainty explorer (test2.py): degradations, metrics, outputs."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from iefvad.cli.explore import explore_config, explore_parser
from iefvad.data.csv_lists import read_list
from iefvad.engine.evaluate import load_test_set, predict
from iefvad.errors import UserInputError
from iefvad.models.checkpoint import save_checkpoint
from iefvad.models.model import IEFVAD, FusionOutput, ModelConfig
from iefvad.studies import explore
from iefvad.studies.explore import (
    COLUMNS,
    Degradation,
    Degrader,
    affected_snippets,
    bernoulli_kl,
    check_levels,
    degradation_metrics,
    histogram_kl,
    per_video,
    run_explore,
)

from conftest import ROOT
from extract_helpers import torch_threads


@pytest.fixture(scope="module")
def test_set(synth_set):
    return load_test_set(read_list(synth_set.test_csv, None, "event_thr_10"), progress=False)


@pytest.mark.parametrize("pert", ["attenuate", "noise", "drop"])
def test_affected_snippets_are_real_seeded_and_shaped_as_asked(test_set, pert):
    d = Degradation("event", pert, 0.3)
    mask = affected_snippets(test_set, d, seed=1)
    assert mask.shape == (test_set.image.shape[0], 256)
    valid = (torch.arange(256)[None, :] < test_set.chunk_lengths[:, None]).numpy()
    assert not (mask & ~valid).any()  # padding is never touched
    assert np.array_equal(mask, affected_snippets(test_set, d, seed=1))
    assert not np.array_equal(mask, affected_snippets(test_set, d, seed=2)) or pert == "noise"
    for m, t in zip(per_video(mask, test_set), test_set.lengths):
        n = int(m.sum())
        if pert == "noise":
            assert n == t
        else:
            assert n == round(0.3 * t)
        if pert == "drop":  # one contiguous span
            idx = np.flatnonzero(m)
            assert idx[-1] - idx[0] + 1 == n
    assert not affected_snippets(test_set, Degradation("event", pert, 0.0), 1).any()


@pytest.mark.parametrize("pert", ["attenuate", "noise", "drop"])
def test_degrader_alters_only_the_chosen_modality_on_chosen_snippets(test_set, pert):
    d = Degradation("image", pert, 0.5)
    mask = affected_snippets(test_set, d, seed=0)
    chunks = torch.arange(test_set.image.shape[0])
    img, evt = Degrader(d, mask, 2.0, 0.01, seed=0)(test_set.image, test_set.event, chunks)
    assert torch.equal(evt, test_set.event)
    m = torch.from_numpy(mask)
    assert torch.equal(img[~m], test_set.image[~m])
    if pert == "attenuate":
        torch.testing.assert_close(img[m], 0.01 * test_set.image[m])
    elif pert == "drop":
        assert bool((img[m] == 0).all())
    else:
        diff = (img[m] - test_set.image[m]).std()
        assert 1.9 < float(diff) < 2.1
        # the same noise whatever the batch split
        half = chunks[: len(chunks) // 2 + 1]
        img2, _ = Degrader(d, mask, 2.0, 0.01, 0)(test_set.image[half], test_set.event[half], half)
        assert torch.equal(img2, img[half])


def test_kl_definitions():
    p = np.array([0.1, 0.5, 0.9])
    assert bernoulli_kl(p, p) == 0.0
    q = np.array([0.2, 0.5, 0.6])
    expect = np.mean(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)))
    assert bernoulli_kl(p, q) == pytest.approx(expect)
    assert histogram_kl(p, p) == 0.0
    a, b = np.full(100, 0.05), np.full(100, 0.95)  # all mass in bin 0 vs bin 19
    pa = np.full(20, 0.5)
    pa[0] += 100
    pa /= pa.sum()
    pb = pa[::-1]
    assert histogram_kl(a, b) == pytest.approx(float(np.sum(pa * np.log(pa / pb))))


class EnergyWeighted(nn.Module):
    """A stand-in fusion whose image weight falls as the image features get noisier than the
    event features (per snippet): checks that the explorer measures the weight of the
    modality it degraded, on the snippets it degraded."""

    def forward(self, image, event, lengths=None):
        ei, ee = image.pow(2).mean(-1, keepdim=True), event.pow(2).mean(-1, keepdim=True)
        wi = torch.sigmoid(ee - ei).expand_as(image)
        fused = wi * image + (1 - wi) * event
        logits = fused.mean(-1)
        return FusionOutput(fused, logits, image, event, image, event, wi, 1 - wi)


def test_metrics_see_the_degraded_modality_lose_weight(test_set, synth_set):
    from iefvad.data.groundtruth import load_gt

    gt = load_gt(synth_set.gt_path).frames
    model = EnergyWeighted()
    clean = predict(model, test_set)
    base = degradation_metrics(clean, clean, gt, None)
    d = Degradation("image", "noise", 3.0)
    mask = affected_snippets(test_set, d, 0)
    pred = predict(model, test_set, transform=Degrader(d, mask, 3.0, 0.01, 0))
    m = degradation_metrics(clean, pred, gt, per_video(mask, test_set))
    assert m["w_image_normal"] < base["w_image_normal"] - 0.2
    assert m["w_image_abnormal"] < base["w_image_abnormal"] - 0.2
    assert m["w_image_affected"] == pytest.approx(m["w_image_normal"], abs=0.05)
    assert m["kl_clean_noisy"] > 0 and m["affected_fraction"] == 1.0
    assert base["kl_clean_noisy"] == 0 and base["w_image_affected"] is None
    frames = pred.frame_scores()
    assert m["brier"] == pytest.approx(float(np.mean((frames - gt) ** 2)))
    assert math.isclose(m["w_image_normal"] + m["w_event_normal"], 1.0, abs_tol=1e-6)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "test2.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


@pytest.mark.slow
def test_test2_on_a_trained_checkpoint_writes_csv_and_plots(trained, synth_set, tmp_path):
    ckpt, _ = trained
    out = tmp_path / "u"
    common = ["--test_list", str(synth_set.test_csv), "--gt_path", str(synth_set.gt_path)]
    p = run(
        "--ckpt_path",
        str(ckpt),
        str(ckpt),
        "--labels",
        "a",
        "b",
        *common,
        "--modality",
        "event",
        "--perturbation",
        "attenuate",
        "drop",
        "--attenuate_levels",
        "0",
        "0.5",
        "--drop_levels",
        "0",
        "1",
        "--seed",
        "3",
        "--out_dir",
        str(out),
        "--no_progress",
    )
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(open(out / "uncertainty.csv")))
    assert list(rows[0]) == COLUMNS
    assert len(rows) == 2 * 4  # 2 checkpoints x (2 attenuate + 2 drop levels)
    assert {r["model"] for r in rows} == {"a", "b"} and {r["modality"] for r in rows} == {"event"}
    a = {(r["perturbation"], r["level"]): r for r in rows if r["model"] == "a"}
    b = {(r["perturbation"], r["level"]): r for r in rows if r["model"] == "b"}
    assert a == {k: {**v, "model": "a"} for k, v in b.items()}  # same inputs, same numbers
    assert float(a[("drop", "1")]["affected_fraction"]) == 1.0
    assert float(a[("attenuate", "0.5")]["kl_clean_noisy"]) > 0
    for name in ("auc_vs_level.png", "ap_vs_level.png", "weight_shift.png"):
        assert (out / name).stat().st_size > 10_000
    bad = run("--ckpt_path", str(ckpt), *common, "--attenuate_levels", "1.5")
    assert bad.returncode == 2 and "error: --attenuate_levels" in bad.stderr


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """An untrained model of the synthetic features' width (test2 needs no training)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.manual_seed(0)
    save_checkpoint(path, IEFVAD(ModelConfig(dim=32, heads=1, refine_steps=1, dropout=0.0)))
    return path


def explore_args(ckpt, synth_set, out, *extra: str):
    return explore_config(explore_parser().parse_args(
        ["--ckpt_path", str(ckpt), "--dataset", "ucfcrime", "--test_list",
         str(synth_set.test_csv), "--gt_path", str(synth_set.gt_path), "--out_dir", str(out),
         "--modality", "event", "--perturbation", "attenuate", "drop", "--attenuate_levels",
         "0.5", "--drop_levels", "1", "--no_plots", "--no_progress", "--workers", "1", *extra]
    ))  # fmt: skip


def test_levels_without_zero_still_get_the_clean_row(tiny_ckpt, synth_set, tmp_path, capsys):
    with torch_threads(1):
        rows = run_explore(explore_args(tiny_ckpt, synth_set, tmp_path))
    got = [(r["perturbation"], r["level"]) for r in rows]
    assert got == [("attenuate", 0.0), ("attenuate", 0.5), ("drop", 0.0), ("drop", 1.0)]
    assert "clean AUC" in capsys.readouterr().out
    on_disk = list(csv.DictReader(open(tmp_path / "uncertainty.csv")))
    assert len(on_disk) == 4 and json.loads((tmp_path / "uncertainty.json").read_text())["complete"]


def test_an_interrupted_run_keeps_the_finished_rows(
    tiny_ckpt, synth_set, tmp_path, monkeypatch, capsys
):
    calls = []

    def predict_then_ctrl_c(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # clean pass, attenuate 0.5, then Ctrl-C during drop 1
            raise KeyboardInterrupt
        return predict(*a, **k)

    monkeypatch.setattr(explore, "predict", predict_then_ctrl_c)
    with torch_threads(1), pytest.raises(KeyboardInterrupt):
        run_explore(explore_args(tiny_ckpt, synth_set, tmp_path))
    rows = list(csv.DictReader(open(tmp_path / "uncertainty.csv")))
    assert [(r["perturbation"], r["level"]) for r in rows] == [
        ("attenuate", "0"),
        ("attenuate", "0.5"),
        ("drop", "0"),
    ]
    assert float(rows[1]["kl_clean_noisy"]) > 0 and rows[0]["auc"]
    js = json.loads((tmp_path / "uncertainty.json").read_text())
    assert js["complete"] is False and len(js["rows"]) == 3
    assert "stopped after 3 of 4 passes" in capsys.readouterr().out


def test_nan_weights_are_refused_naming_the_checkpoint(tiny_ckpt, synth_set, tmp_path):
    payload = torch.load(tiny_ckpt, map_location="cpu", weights_only=False)
    key = next(k for k, v in payload["model_state_dict"].items() if v.is_floating_point())
    payload["model_state_dict"][key][0] = float("inf")
    bad = tmp_path / "diverged.pth"
    torch.save(payload, bad)
    with pytest.raises(UserInputError, match=f"checkpoint {bad} has NaN/Inf weights in 1 tensor"):
        run_explore(explore_args(bad, synth_set, tmp_path / "u"))
    assert not (tmp_path / "u").exists()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--noise_levels", "-1"], "--noise_levels are noise stds, so each must be >= 0"),
        (["--noise_levels", "nan"], "--noise_levels are noise stds"),
        (["--drop_levels", "1.5"], "--drop_levels are fractions of the video: 0..1"),
        (["--attenuation", "2"], "--attenuation 2.0: the factor"),
        (["--attenuation", "-0.1"], "--attenuation -0.1: the factor"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--batch_size", "0"], "--batch_size must be >= 1"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--nu", "0"], "--nu is a Student-t degrees of freedom"),
        (["--labels", "a", "b"], "--labels gives 2 names for 1 checkpoint"),
    ],
)
def test_bad_flags_name_the_flag(flags, needle):
    args = explore_parser().parse_args(["--ckpt_path", "x.pth", *flags])
    with pytest.raises(UserInputError) as e:
        check_levels(explore_config(args))
    assert needle in str(e.value)


def test_repeated_labels_are_refused():
    args = explore_parser().parse_args(["--ckpt_path", "a.pth", "b.pth", "--labels", "m", "m"])
    with pytest.raises(UserInputError, match="--labels m m: names repeat"):
        check_levels(explore_config(args))
