"""The uncertainty explorer (test2.py): degradations, metrics, outputs."""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from iefvad.csvlist import read_list
from iefvad.evaluate import load_test_set, predict
from iefvad.explore import (
    COLUMNS,
    Degradation,
    Degrader,
    affected_snippets,
    bernoulli_kl,
    degradation_metrics,
    histogram_kl,
    per_video,
)
from iefvad.model import FusionOutput

from conftest import ROOT


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
    from iefvad.groundtruth import load_gt

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
