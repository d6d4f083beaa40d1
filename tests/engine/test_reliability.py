"""Reliability recipe (corruption + heteroscedastic term), its benchmark, and the null slot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iefvad.engine.corruption import CorruptionSpec, apply_corruption, corrupt_batch
from iefvad.engine.reliability import ReliabilitySpec, TrainingRecipe, reliability_loss
from iefvad.errors import UserInputError
from iefvad.models.attention import sink_attention
from iefvad.models.checkpoint import load_model, save_checkpoint
from iefvad.models.model import FUSIONS, IEFVAD, FusionOutput, ModelConfig
from iefvad.studies.ablate import parse_variant
from iefvad.studies.reliability_bench import span_masks

# ---------------------------------------------------------------- corruption


@pytest.mark.parametrize("kind", ["noise", "attenuate", "drop", "freeze"])
def test_corruption_touches_one_modality_on_real_snippets_only(kind):
    g = torch.Generator().manual_seed(0)
    img, evt = torch.randn(16, 20, 8, generator=g), torch.randn(16, 20, 8, generator=g)
    lengths = torch.randint(1, 21, (16,), generator=g)
    spec = CorruptionSpec(kinds=(kind,), prob=1.0)
    i2, e2, mi, me = corrupt_batch(img, evt, lengths, spec, np.random.default_rng(0), g)
    valid = torch.arange(20)[None, :] < lengths[:, None]
    assert not (mi & ~valid).any() and not (me & ~valid).any()
    assert not (mi.any(1) & me.any(1)).any()  # at most one modality per row
    assert bool((mi.any(1) | me.any(1)).all())  # prob 1: every row
    for x, y, m in ((img, i2, mi), (evt, e2, me)):
        assert torch.equal(x[~m], y[~m])  # untouched outside the mask
        for r in range(16):  # one contiguous span
            idx = m[r].nonzero().flatten()
            if idx.numel():
                assert int(idx[-1] - idx[0]) + 1 == idx.numel()
                if kind == "drop":
                    assert bool((y[r, idx] == 0).all())
                if kind == "freeze":
                    assert torch.equal(y[r, idx], x[r, idx[0]].expand(idx.numel(), 8))


def test_freeze_repeats_the_first_masked_snippet():
    x = torch.arange(6.0).view(1, 6, 1)
    m = torch.tensor([[False, False, True, True, True, False]])
    assert apply_corruption(x, m, "freeze").flatten().tolist() == [0, 1, 2, 2, 2, 5]


def test_bad_recipe_values_are_refused():
    with pytest.raises(UserInputError):
        CorruptionSpec(kinds=("blur",))
    with pytest.raises(UserInputError):
        ReliabilitySpec(loss="laplace")
    with pytest.raises(UserInputError):
        CorruptionSpec(kinds=("noise",), span=(0.5, 0.2))


def test_ablation_variant_carries_the_recipe():
    v = parse_variant("reference:corrupt=noise+drop:reliability_loss=gaussian:nu=4")
    assert v.model == {"fusion": "reference", "nu": 4.0}
    rec = TrainingRecipe.from_record(v.recipe)
    assert rec.corrupt.kinds == ("noise", "drop") and rec.reliability.loss == "gaussian"
    assert parse_variant("reference").recipe == {}


# ---------------------------------------------------------------- the heteroscedastic term


def _out(mu_i, lv_i, mu_e, lv_e):
    z = torch.zeros_like(mu_i)
    return FusionOutput(z, z[..., 0], mu_i, mu_e, lv_i, lv_e, z, z)


@pytest.mark.parametrize("kind", ["gaussian", "student_t"])
def test_nll_gradient_pushes_logvar_up_where_the_error_is_large(kind):
    g = torch.Generator().manual_seed(0)
    mu_e = torch.randn(2, 10, 4, generator=g)
    mu_i = mu_e + 0.1 * torch.randn(2, 10, 4, generator=g)
    mu_i[:, 3:6] += 5.0  # the image stream is far off on snippets 3-5
    lv_i = torch.zeros(2, 10, 4, requires_grad=True)
    lv_e = torch.zeros(2, 10, 4, requires_grad=True)
    loss = reliability_loss(
        _out(mu_i, lv_i, mu_e, lv_e), torch.tensor([10, 10]), ReliabilitySpec(loss=kind)
    )
    loss.backward()
    step = -lv_i.grad  # gradient descent direction
    assert bool((step[:, 3:6] > 0).all())  # large error: variance up
    assert bool((step[:, :3] < 0).all()) and bool((step[:, 6:] < 0).all())  # small: down


def test_nll_skips_snippets_whose_target_is_corrupted_and_never_moves_the_means():
    mu_i = torch.zeros(1, 6, 3, requires_grad=True)
    mu_e = torch.zeros(1, 6, 3, requires_grad=True)
    lv = torch.zeros(1, 6, 3, requires_grad=True)
    with torch.no_grad():
        mu_e[0, 2:4] = 9.0  # event corrupted there
    me = torch.zeros(1, 6, dtype=torch.bool)
    me[0, 2:4] = True
    loss = reliability_loss(
        _out(mu_i, lv, mu_e, torch.zeros(1, 6, 3)),
        torch.tensor([6]),
        ReliabilitySpec(loss="gaussian"),
        mask_event=me,
    )
    loss.backward()
    assert mu_i.grad is None and mu_e.grad is None  # means are detached
    assert bool((lv.grad[0, 2:4] == 0).all())  # image's target was corrupted there: skipped


def _train_on(synth_set, out, recipe_args):
    from iefvad.cli.options import resolve_train, train_parser
    from iefvad.engine.train import train

    from conftest import TINY_MODEL, TINY_OPT

    args = train_parser().parse_args(
        [
            "--train_list", str(synth_set.train_csv), "--test_list", str(synth_set.test_csv),
            "--gt_path", str(synth_set.gt_path), "--ckpt_dir", str(out), "--exp_name", "m",
            "--no_progress", "--no_test", "--dropout", "0", "--seed", "0",
            *TINY_MODEL, *TINY_OPT, *recipe_args,
        ]
    )  # fmt: skip
    cfg, _ = resolve_train(args)
    return train(cfg).checkpoint


def _image_prober(synth_set):
    """``probe(checkpoint) -> (logvars, weights)``: the image stream's mean log-variance and
    fusion weight on the tiny set's test videos, clean / with 4-std noise / dropped."""
    from iefvad.data.csv_lists import read_list
    from iefvad.engine.evaluate import load_test_set

    test = load_test_set(read_list(synth_set.test_csv, None, "event_thr_10"), progress=False)
    rows = test.chunk_lengths > 0
    img, evt, lengths = test.image[rows], test.event[rows], test.chunk_lengths[rows]
    valid = torch.arange(256)[None, :] < lengths[:, None]
    std = float(img[valid].std())
    g = torch.Generator().manual_seed(0)
    noisy = img + 4.0 * std * torch.randn(img.shape, generator=g)

    def probe(path):
        model, _ = load_model(path)
        with torch.no_grad():
            outs = [model(x, evt, lengths) for x in (img, noisy, torch.zeros_like(img))]
        lv = [float(o.logvar_image[valid].mean()) for o in outs]
        w = [float(o.w_image[valid].mean()) for o in outs]
        return lv, w

    return probe


def test_recipe_teaches_the_variance_head_to_flag_a_corrupted_stream(synth_set, trained, tmp_path):
    """Trained on the tiny generated set with ``--recipe reliable``, the image stream's
    predicted log-variance rises on noised and dropped image input and its weight falls;
    trained without the recipe it does not. The recipe is recorded in the checkpoint."""
    from iefvad.models.checkpoint import read_checkpoint

    probe = _image_prober(synth_set)
    rec = _train_on(synth_set, tmp_path / "rec", ["--recipe", "reliable"])
    ckpt = read_checkpoint(rec)
    meta = ckpt.meta["train"]["uncertainty"]
    assert meta["reliability"] == {
        "loss": "gaussian",
        "weight": 1.0,
        "nu": 4.0,
        "target": "clean",
        "floor": 0.1,
        "band": 0.0,
        "source": "weights",
        "mil_input": "corrupted",
        "detach_stats": False,
        "detach_corrupted": False,
        "detach_weights": False,
    }
    assert meta["corrupt"]["whole"] == 0.5 and ckpt.config.weight_power == 3.0
    lv, w = probe(rec)
    assert lv[1] > lv[0] + 0.4 and lv[2] > lv[0] + 0.4  # noised / dropped: variance up
    assert w[1] < w[0] - 0.1 and w[2] < w[0] - 0.1  # and the image weight down
    lv0, w0 = probe(trained[0])  # the same data and options without the recipe
    assert abs(w0[1] - w0[0]) < 0.05 and abs(w0[2] - w0[0]) < 0.05


def test_recipe_detector_teaches_the_weights_to_flag_a_corrupted_stream(synth_set, tmp_path):
    """``--recipe detector`` on the tiny generated set: the checkpoint holds the stats MLP
    (scale 3, hidden 16) and the recipe, and the image weight falls on noised and dropped
    image input."""
    from iefvad.models.checkpoint import read_checkpoint

    path = _train_on(synth_set, tmp_path / "det", ["--recipe", "detector"])
    ckpt = read_checkpoint(path)
    cfg = ckpt.config
    assert cfg.variance_temporal and cfg.temporal_hidden == 16 and cfg.stats_scale == 3.0
    meta = ckpt.meta["train"]["uncertainty"]
    assert meta["reliability"]["loss"] == "detector"
    assert meta["corrupt"]["rows"] == "normal"
    assert set(meta["corrupt"]["kinds"]) == {"noise", "drop", "freeze"}
    _, w = _image_prober(synth_set)(path)
    assert w[1] < w[0] - 0.1 and w[2] < w[0] - 0.1


# ---------------------------------------------------------------- benchmark helpers


def test_span_masks_cover_one_contiguous_real_span(synth_set):
    from iefvad.data.csv_lists import read_list
    from iefvad.engine.evaluate import load_test_set
    from iefvad.studies.explore import per_video

    test = load_test_set(read_list(synth_set.test_csv, None, "event_thr_10"), progress=False)
    for f in (0.3, 1.0):
        m = span_masks(test, f, seed=2)
        valid = (torch.arange(256)[None, :] < test.chunk_lengths[:, None]).numpy()
        assert not (m & ~valid).any()
        for v, t in zip(per_video(m, test), test.lengths):
            idx = np.flatnonzero(v)
            assert idx.size == max(1, round(f * t)) and idx[-1] - idx[0] + 1 == idx.size


# ---------------------------------------------------------------- the null slot


@pytest.mark.parametrize("fusion", FUSIONS)
def test_null_slot_outputs_do_not_depend_on_padding(fusion):
    torch.manual_seed(0)
    cfg = ModelConfig(dim=16, heads=2, refine_steps=2, fusion=fusion, attention_sink=True)
    model = IEFVAD(cfg).eval()
    lengths = torch.tensor([12, 5, 1])
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 12, 16, generator=g), torch.randn(3, 12, 16, generator=g)
    x2, y2 = x.clone(), y.clone()
    x2[1, 5:], y2[2, 1:] = 50.0, -20.0
    with torch.no_grad():
        a, b = model(x, y, lengths), model(x2, y2, lengths)
        c = model(x[1:2, :5], y[1:2, :5], lengths[1:2])  # no padding at all
    valid = torch.arange(12)[None, :] < lengths[:, None]
    for name in ("logits", "fused", "w_image"):
        u, v = getattr(a, name)[valid], getattr(b, name)[valid]
        torch.testing.assert_close(u, v, rtol=0, atol=1e-5, msg=name)
    torch.testing.assert_close(a.logits[1, :5], c.logits[0], rtol=0, atol=1e-5)


def test_one_snippet_clip_does_not_attend_only_to_itself():
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(16, 2, batch_first=True)
    x = torch.randn(1, 4, 16)
    pad = torch.tensor([[False, True, True, True]])  # a one-snippet clip, padded
    _, w = sink_attention(attn, x, pad, torch.full((2,), 5.545), need_weights=True)
    self_w = w[0, :, 0, 0]
    assert bool((self_w < 0.05).all())  # the null slot takes most at init (log 256)
    assert bool((w[0, :, 0, 1:4] == 0).all())  # padded keys get nothing
    _, w = sink_attention(attn, x, pad, torch.full((2,), -30.0), need_weights=True)
    torch.testing.assert_close(w[0, :, 0, 0], torch.ones(2))  # a closed slot: itself only
    # with the slot closed it is plain masked attention
    ref, _ = attn(x, x, x, key_padding_mask=pad)
    out, _ = sink_attention(attn, x, pad, torch.full((2,), -1e4))
    torch.testing.assert_close(out[:, :1], ref[:, :1], rtol=1e-5, atol=1e-6)


def test_checkpoint_written_before_the_null_slot_loads_without_it(tmp_path):
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, attention_sink=False))
    save_checkpoint(tmp_path / "a.pth", model)
    obj = torch.load(tmp_path / "a.pth", weights_only=True)
    obj["model_config"].pop("attention_sink")
    torch.save(obj, tmp_path / "old.pth")
    loaded, ckpt = load_model(tmp_path / "old.pth")
    assert ckpt.config.attention_sink is False
    m2 = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1))  # on for new models
    save_checkpoint(tmp_path / "b.pth", m2)
    loaded, ckpt = load_model(tmp_path / "b.pth")
    assert ckpt.config.attention_sink and "temporal.image_sink" in loaded.state_dict()


@pytest.mark.parametrize("target", ["other", "clean"])
def test_a_dead_stream_never_looks_better_than_its_clean_self_with_the_clean_target(target):
    """Streams that disagree (clean gap large) and a dead image stream whose constant latent
    sits at the mean of the event latent: against the other stream the constant looks
    *better* than the live stream (the NLL wants its variance below the clean optimum);
    with the clean target (shift^2 + gap^2) it always looks worse."""
    g = torch.Generator().manual_seed(0)
    mu_e = torch.randn(2, 8, 4, generator=g)
    clean_i = -mu_e  # the live image latent disagrees strongly
    dead_i = torch.zeros_like(mu_e)  # dead stream: a constant at the event latent's mean
    lv_clean_opt = torch.log((clean_i - mu_e).pow(2))  # optimum on clean data, per value
    lv = lv_clean_opt.clone().requires_grad_(True)
    out = _out(dead_i, lv, mu_e, torch.zeros_like(mu_e))
    clean = _out(clean_i, torch.zeros_like(mu_e), mu_e, torch.zeros_like(mu_e))
    mi = torch.ones(2, 8, dtype=torch.bool)
    spec = ReliabilitySpec(loss="gaussian", target=target)
    loss = reliability_loss(
        out, torch.tensor([8, 8]), spec, mask_image=mi, clean=clean if target == "clean" else None
    )
    loss.backward()
    wants_up = bool((lv.grad < 0).all())  # descent raises the dead stream's variance
    assert wants_up == (target == "clean")
