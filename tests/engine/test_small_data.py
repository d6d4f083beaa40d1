"""Small-dataset training options: adaptive budget, input centring, presets, fast evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iefvad.cli.options import resolve_train, train_parser
from iefvad.datasets.specs import PRESETS
from iefvad.engine.budget import SMALL_TRAIN, plan_budget
from iefvad.engine.evaluate import load_test_set, predict
from iefvad.models.model import IEFVAD, ModelConfig, center_rows


def test_budget_floor_in_steps_and_fractional_milestones():
    # 6 steps per epoch: UCF's 10 epochs would give 60 steps
    epochs, ms = plan_budget(6, 10, (4, 8), min_steps=600, fractions=(0.7, 0.9))
    assert epochs * 6 >= 600 and epochs == 100
    assert ms == (70, 90)
    # a large dataset keeps its epoch count; without fractions milestones are unchanged
    assert plan_budget(250, 10, (4, 8), min_steps=600) == (10, (4, 8))
    with pytest.raises(ValueError):
        plan_budget(6, 10, (), fractions=(1.2,))


@pytest.mark.parametrize("how", ["video_median", "video_mean"])
def test_centring_removes_a_per_video_offset(how):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 40, 8, generator=g)
    offset = torch.tensor([[5.0], [-3.0]])[:, :, None] * torch.ones(1, 1, 8)
    lengths = torch.tensor([40, 25])
    a = center_rows(x, lengths, how)
    b = center_rows(x + offset, lengths, how)
    valid = torch.arange(40)[None, :] < lengths[:, None]
    assert torch.allclose(a[valid], b[valid], atol=1e-5)
    # padding beyond a row's length does not move its reference
    y = x.clone()
    y[1, 25:] = 1e3
    assert torch.allclose(center_rows(y, lengths, how)[1, :25], a[1, :25], atol=1e-5)
    assert torch.equal(center_rows(x, lengths, "none"), x)


def _resolve(*argv: str):
    return resolve_train(train_parser().parse_args(["--train_list", "x.csv", *argv]))[0]


def test_paper_preset_is_the_published_one_and_custom_defaults_to_small():
    for ds in ("ucfcrime", "xd", "shang", "msad"):
        cfg = _resolve("--dataset", ds)  # benchmarks: paper by default
        p = PRESETS[ds]
        assert (cfg.batch_size, cfg.lr, cfg.max_epoch, cfg.milestones, cfg.gamma, cfg.lam) == (
            p.batch_size, p.lr, p.max_epoch, p.milestones, p.gamma, p.lam,
        )  # fmt: skip
        assert cfg.min_steps == 0 and cfg.milestone_fractions is None and cfg.feature_noise == 0
        assert "input_norm" not in cfg.model
    assert _resolve("--dataset", "ucfcrime").lr == 2e-5  # docs/reference.md section 6
    small = _resolve("--dataset", "custom")
    assert small.min_steps == SMALL_TRAIN["min_steps"] and small.lr == SMALL_TRAIN["lr"]
    assert small.model["input_norm"] == "none"  # median centring opens a shortcut (docs)
    assert small.feature_noise == SMALL_TRAIN["feature_noise"] > 0
    assert _resolve("--dataset", "custom", "--feature_noise", "0").feature_noise == 0
    old = _resolve("--dataset", "custom", "--preset", "paper")
    assert (old.lr, old.max_epoch, old.milestones) == (1e-4, 20, (12, 16))
    # explicit values win: an epoch count is honoured as given, milestones as given
    mine = _resolve("--dataset", "custom", "--max_epoch", "3", "--milestones", "2")
    assert mine.min_steps == 0 and mine.milestone_fractions is None and mine.milestones == (2,)
    norm = _resolve("--dataset", "custom", "--input_norm", "video_median")
    assert norm.model["input_norm"] == "video_median"


def test_preset_auto_is_the_default_and_says_why():
    from iefvad.cli.options import preset_choice

    def choice(*argv: str) -> tuple[str, str]:
        return preset_choice(train_parser().parse_args(["--train_list", "x.csv", *argv]))

    name, why = choice("--dataset", "custom")
    assert name == "small" and why.startswith("--preset auto: your own data")
    assert choice("--dataset", "custom", "--preset", "auto") == (name, why)
    for ds in ("ucfcrime", "xd", "shang", "msad"):
        name, why = choice("--dataset", ds)
        assert name == "paper" and "published preset" in why
    assert choice("--dataset", "xd", "--preset", "small")[0] == "small"
    assert choice("--dataset", "custom", "--preset", "paper") == (
        "paper", "--preset on the command line"
    )
    # auto and no flag resolve to the same configuration
    assert _resolve("--dataset", "custom", "--preset", "auto") == _resolve("--dataset", "custom")


def test_min_steps_raises_the_epoch_count(synth_set, tmp_path):
    from iefvad.engine.train import train

    cfg = _resolve(
        "--dataset", "ucfcrime", "--train_list", str(synth_set.train_csv), "--no_test",
        "--ckpt_dir", str(tmp_path), "--exp_name", "m", "--no_progress", "--batch_size", "4",
        "--max_epoch", "1", "--min_steps", "20", "--heads", "2", "--refine_steps", "1",
        "--embed_dim", "32",
    )  # fmt: skip
    r = train(cfg)  # 16 videos x 2 crops / batch 4 = 8 steps per epoch -> 3 epochs
    assert len(r.history) == 3
    assert len((tmp_path / "train_log.csv").read_text().splitlines()) - 1 == 24


def test_train_len_and_topk_div_reach_the_training_step(synth_set, tmp_path, monkeypatch):
    import iefvad.engine.train as train_mod

    seen: dict[str, set] = {"rows": set(), "div": set()}
    real_bank, real_loss = train_mod.build_bank, train_mod.ief_vad_loss

    def bank(*a, **k):
        b = real_bank(*a, **k)
        seen["rows"].add(b.image.shape[1])
        return b

    def loss(*a, **k):
        seen["div"].add(a[7])
        return real_loss(*a, **k)

    monkeypatch.setattr(train_mod, "build_bank", bank)
    monkeypatch.setattr(train_mod, "ief_vad_loss", loss)
    cfg = _resolve(
        "--dataset", "ucfcrime", "--train_list", str(synth_set.train_csv), "--no_test",
        "--ckpt_dir", str(tmp_path), "--exp_name", "k", "--no_progress", "--batch_size", "4",
        "--max_epoch", "1", "--heads", "2", "--refine_steps", "1", "--embed_dim", "32",
        "--train_len", "48", "--topk_div", "4", "--select", "val",
    )  # fmt: skip
    train_mod.train(cfg)
    assert seen == {"rows": {48}, "div": {4}}  # training and validation banks, every step


def test_trimmed_evaluation_equals_the_padded_one(synth_set):
    from iefvad.data.csv_lists import read_list

    rows = read_list(synth_set.test_csv, event_dir="event_thr_10")
    test = load_test_set(rows, progress=False)
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=test.dim, heads=2, refine_steps=2))
    fast = predict(model, test)
    full = predict(model, test, transform=lambda i, e, c: (i, e))  # the fixed 256 path
    for a, b in zip(fast.scores, full.scores):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_split_signal_plants_each_class_in_one_stream(tmp_path):
    from iefvad.data.csv_lists import read_list
    from iefvad.data.groundtruth import load_gt
    from iefvad.synthetic.features import SynthSpec, make_feature_set

    s = make_feature_set(
        tmp_path, SynthSpec(train_normal=2, train_abnormal=2, test_normal=1, test_abnormal=2,
                            signal_modality="split", noise=0.0, scene=0.0, scene_jitter=0.0)
    )  # fmt: skip
    gt = load_gt(s.gt_path)
    rows = read_list(s.test_csv, event_dir="event_thr_10")
    for r, v in zip(rows, gt.videos):
        if not v.segments:
            continue
        img, evt = np.load(r.path), np.load(r.event_path)
        image_has = np.abs(img).sum() > 0
        assert image_has == (v.label == "Abuse") and (np.abs(evt).sum() > 0) == (not image_has)


def test_feature_noise_is_scaled_by_the_feature_std():
    from iefvad.data.bank import TrainBank
    from iefvad.engine.train import feature_noise_scale

    rng = np.random.default_rng(0)
    img = np.zeros((3, 10, 4), np.float32)
    img[:, :6] = 2.0 * rng.standard_normal((3, 6, 4))
    within = float((img[:, :6] - img[:, :6].mean(1, keepdims=True)).std())
    img[:, :6] += np.array([[[-50.0]], [[0.0]], [[50.0]]])  # scene offsets must not count
    img[:, 6:] = 1e3  # nor padding
    bank = TrainBank([None] * 3, img, 0.5 * img, np.full(3, 6), np.zeros(3, np.float32))
    si, se = feature_noise_scale(bank, 1.0)
    assert si == pytest.approx(within, rel=1e-5) and se == pytest.approx(si / 2, rel=1e-5)
    assert feature_noise_scale(bank, 0.0) == (0.0, 0.0)


def test_video_noise_adds_one_offset_per_row_shared_by_its_snippets():
    from iefvad.data.bank import TrainBank
    from iefvad.engine.train import Batches

    rng = np.random.default_rng(0)
    img = rng.standard_normal((4, 8, 3)).astype(np.float32)
    bank = TrainBank([None] * 4, img, 2 * img, np.full(4, 8), np.zeros(4, np.float32))
    torch.manual_seed(0)
    out_img, out_evt, _, _ = Batches(bank, torch.device("cpu"), 0.0, 8, video_noise=3.0)(
        np.arange(4)
    )
    d_img = (out_img - torch.from_numpy(img)).numpy()
    d_evt = (out_evt - torch.from_numpy(2 * img)).numpy()
    # the same offset on every snippet of a row, a different one per row and per stream
    assert np.allclose(d_img, d_img[:, :1]) and np.allclose(d_evt, d_evt[:, :1])
    assert np.abs(d_img[:, 0]).min() > 0 and not np.allclose(d_img[0, 0], d_img[1, 0])
    assert not np.allclose(d_evt / 2, d_img)
    # off by default: the rows come back unchanged
    plain = Batches(bank, torch.device("cpu"), 0.0, 8)(np.arange(4))[0]
    assert torch.equal(plain, torch.from_numpy(img))


def test_video_noise_is_a_flag_checked_like_the_others():
    from iefvad.errors import UserInputError

    assert _resolve("--dataset", "custom").video_noise == 0.0
    assert _resolve("--dataset", "custom", "--video_noise", "1.5").video_noise == 1.5
    with pytest.raises(UserInputError, match="--video_noise"):
        _resolve("--dataset", "custom", "--video_noise", "-1")


def test_sparsity_is_a_flag_checked_like_the_others():
    from iefvad.errors import UserInputError

    assert _resolve("--dataset", "custom").sparsity == 0.0
    assert _resolve("--dataset", "custom", "--sparsity", "0.5").sparsity == 0.5
    with pytest.raises(UserInputError, match="--sparsity"):
        _resolve("--dataset", "custom", "--sparsity", "nan")
