"""The reliability variants of issue 21: the corruption target, the detector loss, the
variance heads' temporal stats, and the benchmark's held-out kinds (shuffle, swap)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from iefvad.engine.corruption import CorruptionSpec, apply_corruption
from iefvad.engine.reliability import (
    RecipeStep,
    ReliabilitySpec,
    TrainingRecipe,
    clean_latents,
    corruption_sq,
    detector_loss,
    latent_spread,
    make_step,
    reliability_loss,
)
from iefvad.errors import UserInputError
from iefvad.models.model import IEFVAD, FusionOutput, ModelConfig, temporal_stats
from iefvad.studies.ablate import parse_variant
from iefvad.studies.reliability_bench import donor_rows


def _out(mu_i, lv_i, mu_e, lv_e) -> FusionOutput:
    z = torch.zeros_like(mu_i)
    return FusionOutput(z, z[..., 0], mu_i, mu_e, lv_i, lv_e, z, z)


def test_corruption_target_is_the_floor_on_clean_snippets_whatever_the_other_stream_sees():
    """Two clean streams that disagree strongly and differ in spread: the corruption target
    gives both the same constant (one floor), so the NLL's optimum is the same variance for
    both, never raised for disagreeing. (A per-stream floor, the first version, gave the
    streams unequal clean weights: docs/fusion.md.)"""
    g = torch.Generator().manual_seed(0)
    mu_i = torch.randn(2, 8, 4, generator=g)
    mu_e = 3.0 + torch.randn(2, 8, 4, generator=g)  # far from the image latent
    valid = torch.ones(2, 8, dtype=torch.bool)
    spread = latent_spread(mu_i, valid)
    assert torch.allclose(spread, mu_i.reshape(-1, 4).var(0).mean())
    sq_i = corruption_sq(mu_i, mu_i, 0.1)
    sq_e = corruption_sq(mu_e, mu_e, 0.1)
    assert torch.equal(sq_i, torch.full_like(sq_i, 0.1))  # the floor, the same for both
    assert torch.equal(sq_e, sq_i)
    # a corrupted snippet's error is its shift on top of the floor
    shifted = mu_i.clone()
    shifted[0, 3] += 2.0
    sq = corruption_sq(shifted, mu_i, 0.1)
    assert torch.allclose(sq[0, 3], sq_i[0, 3] + 4.0)
    # the loss's gradient pushes each clean stream's lv to log(floor), not by the gap
    lv = torch.zeros(2, 8, 4, requires_grad=True)
    spec = ReliabilitySpec(loss="gaussian", target="corruption")
    loss = reliability_loss(
        _out(mu_i, lv, mu_e, torch.zeros_like(mu_e)),
        torch.tensor([8, 8]),
        spec,
        clean=_out(mu_i, lv, mu_e, lv),
    )
    loss.backward()
    assert bool((lv.grad > 0).all())  # lv = 0 is above log(floor): descent lowers it
    # the optimum is the same for both streams although their spreads differ by 9x
    lvs = [torch.zeros(2, 8, 4, requires_grad=True) for _ in range(2)]
    wide_e = 3.0 * mu_e
    loss = reliability_loss(
        _out(mu_i, lvs[0], wide_e, lvs[1]), torch.tensor([8, 8]), spec,
        clean=_out(mu_i, lvs[0], wide_e, lvs[1]),
    )  # fmt: skip
    loss.backward()
    assert torch.allclose(lvs[0].grad, lvs[1].grad)


def test_clean_pass_runs_on_corrupted_rows_and_streams_only():
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, dropout=0.0)).train()
    img, evt = torch.randn(3, 6, 16), torch.randn(3, 6, 16)
    lengths = torch.tensor([6, 4, 5])
    mi = torch.zeros(3, 6, dtype=torch.bool)
    me = torch.zeros(3, 6, dtype=torch.bool)
    mi[1, :2] = True  # row 1: image corrupted; rows 0 and 2 clean
    bad = img.clone()
    bad[1, :2] = 0.0
    out = model(bad, evt, lengths)
    lat = clean_latents(model, out, (img, evt), lengths, mi, me)
    full = model(img, evt, lengths)
    assert torch.allclose(lat.mu_image, full.mu_image, atol=1e-5)  # the clean latents
    assert torch.allclose(lat.mu_event, full.mu_event, atol=1e-5)
    assert torch.equal(lat.mu_image[0], out.mu_image[0].detach())  # untouched rows: own


def test_detector_wants_equal_weights_on_clean_snippets_and_a_low_weight_where_corrupted():
    lv_i = torch.zeros(1, 4, 3, requires_grad=True)
    lv_e = torch.zeros(1, 4, 3)
    mi = torch.tensor([[False, False, True, True]])
    me = torch.zeros(1, 4, dtype=torch.bool)
    loss = detector_loss(_out(lv_e, lv_i, lv_e, lv_e), torch.tensor([4]), 3.0, mi, me)
    loss.backward()
    assert torch.allclose(lv_i.grad[0, :2], torch.zeros(2, 3))  # clean: lv_i = lv_e optimal
    assert bool((lv_i.grad[0, 2:] < 0).all())  # corrupted: raise the image variance


def test_temporal_stats_see_a_frozen_and_a_dropped_stream():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 10, 8, generator=g)
    frozen = apply_corruption(x, torch.ones(1, 10, dtype=torch.bool), "freeze")
    dropped = torch.zeros_like(x)
    s, f, d = temporal_stats(x), temporal_stats(frozen), temporal_stats(dropped)
    assert bool((f[..., 1:] < s[..., 1:] - 1.0).all())  # no change between snippets
    assert bool((d[..., 0] < s[..., 0] - 1.0).all())  # no energy
    # the last real snippet's next change ignores the padding after it
    padded = torch.cat([x, torch.zeros(1, 3, 8)], 1)
    sp = temporal_stats(padded, torch.tensor([10]))
    assert torch.allclose(sp[:, :10], s, atol=1e-6)


def test_stats_scale_multiplies_the_stats_and_reaches_the_model():
    """``stats_scale`` sets how far a noisy stream moves the stats (the first version's 0.1 by
    default, so models trained with it keep their meaning); it reaches the heads through
    ModelConfig and the ablation's variant keys."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 16, generator=g)
    noisy = x + 4.0 * torch.randn(1, 8, 16, generator=g)
    s1, s3 = temporal_stats(x), temporal_stats(x, scale=3.0)
    assert torch.allclose(s3, 30.0 * s1, atol=1e-5)
    jump = (temporal_stats(noisy, scale=3.0) - s3)[..., 0]
    assert bool((jump > 3.0 * 0.1 * math.log(10)).all())  # 4-std noise: energy up ~17x
    assert ModelConfig(dim=16, heads=2).stats_scale == 0.1
    with pytest.raises(UserInputError, match="stats_scale"):
        ModelConfig(dim=16, heads=2, stats_scale=0.0)
    cfg = dict(dim=16, heads=2, refine_steps=1, dropout=0.0, variance_temporal=True)
    torch.manual_seed(0)
    a = IEFVAD(ModelConfig(**cfg))
    b = IEFVAD(ModelConfig(**cfg, stats_scale=3.0))
    b.load_state_dict(a.state_dict())
    head = a.temporal.image_logvar_temporal
    torch.nn.init.normal_(head.weight, std=0.5)
    b.temporal.image_logvar_temporal.load_state_dict(head.state_dict())
    y = torch.randn(1, 8, 16)
    assert not torch.allclose(a(x, y).logvar_image, b(x, y).logvar_image)
    assert parse_variant("reference:variance_temporal=true:stats_scale=3").model["stats_scale"] == 3


def test_variance_temporal_is_a_new_zero_initialised_module_and_off_by_default():
    off = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1))
    assert not any("logvar_temporal" in k for k in off.state_dict())
    torch.manual_seed(0)
    a = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, dropout=0.0)).eval()
    torch.manual_seed(0)
    b = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, dropout=0.0, variance_temporal=True))
    b.eval()
    b.load_state_dict({**b.state_dict(), **a.state_dict()})
    x, y = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    assert torch.allclose(a(x, y).logits, b(x, y).logits)  # zero init: same output
    assert "temporal.image_logvar_temporal.weight" in b.state_dict()


def test_variants_reach_the_new_keys():
    v = parse_variant(
        "reference:recipe=reliable:reliability_loss=detector:corrupt=noise+drop"
        ":variance_temporal=true:reliability_floor=0.2"
    )
    assert v.model["variance_temporal"] is True
    assert v.recipe["reliability"]["loss"] == "detector"
    assert v.recipe["reliability"]["floor"] == 0.2
    assert v.recipe["corrupt"]["kinds"] == ["noise", "drop"]


def test_a_recipe_step_with_the_detector_trains_and_needs_no_clean_pass():
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, dropout=0.0))
    recipe = TrainingRecipe(
        CorruptionSpec(kinds=("drop",), prob=1.0, whole=1.0), ReliabilitySpec(loss="detector")
    )
    step = RecipeStep(recipe, ("image", "event"), seed=0, weight_power=3.0)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    _, extra = step(model, torch.randn(4, 6, 16), torch.randn(4, 6, 16), torch.full((4,), 6))
    assert len(calls) == 1 and float(extra.detach()) > 0
    extra.backward()
    assert model.temporal.image_logvar.weight.grad is not None


def test_detach_weights_keeps_the_output_and_cuts_the_anomaly_loss_from_the_variance_heads():
    """``detach_weights``: the same forward values, but a loss on the scores no longer reaches
    the log-variance heads (only the reliability term does); the means still learn."""
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, dropout=0.0, weight_power=3.0))
    x, y = torch.randn(2, 6, 16), torch.randn(2, 6, 16)
    a, b = model(x, y), model(x, y, detach_weights=True)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.w_image, b.w_image)
    grads = []
    for out in (a, b):
        model.zero_grad()
        out.logits.sum().backward()
        head = model.temporal.image_logvar.weight.grad
        grads.append(0.0 if head is None else float(head.abs().sum()))
        assert float(model.temporal.image_mu.weight.grad.abs().sum()) > 0
    assert grads[0] > 0 and grads[1] == 0.0
    v = parse_variant("reference:reliability_loss=detector:detach_weights=true")
    assert v.recipe["reliability"]["detach_weights"] is True
    with pytest.raises(UserInputError, match="detach_weights"):
        parse_variant("reference:reliability_loss=detector:detach_weights=maybe")


def test_a_detached_detector_step_trains_the_heads_through_the_detector_only():
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, dropout=0.0))
    spec = ReliabilitySpec(loss="detector", detach_weights=True)
    step = RecipeStep(
        TrainingRecipe(CorruptionSpec(kinds=("drop",), prob=1.0), spec), ("image", "event"), 0, 3.0
    )
    out, extra = step(model, torch.randn(4, 6, 16), torch.randn(4, 6, 16), torch.full((4,), 6))
    out.logits.sum().backward(retain_graph=True)
    assert model.temporal.image_logvar.weight.grad is None
    extra.backward()
    assert float(model.temporal.image_logvar.weight.grad.abs().sum()) > 0


def test_detector_on_the_stats_trains_the_stats_head_and_leaves_the_latent_heads_alone():
    """``source="stats"``: the detector's logits are the stats head's part of the
    log-variances; the heads on the encoder's latent get no gradient from it (the anomaly
    objective alone shapes them); without ``variance_temporal`` it is a clear error."""
    torch.manual_seed(0)
    cfg = dict(dim=16, heads=2, refine_steps=1, dropout=0.0, variance_temporal=True)
    model = IEFVAD(ModelConfig(**cfg, temporal_hidden=8))
    x, y, n = torch.randn(4, 6, 16), torch.randn(4, 6, 16), torch.full((4,), 6)
    out = model(x, y, n)
    t = out.stats_image
    assert t is not None and t.shape == out.logvar_image.shape
    torch.nn.init.normal_(model.temporal.image_logvar_temporal[-1].weight, std=0.3)
    out = model(x, y, n)  # the stats head's part is what it adds to the latent head's
    lat = model.temporal.image_logvar(
        model.temporal.whiten_image(
            model.temporal._encode(
                x,
                model.temporal.image_attn_layers,
                model.temporal.image_norms,
                None,
                model.temporal._sink("image"),
            )
        )
    )
    assert torch.allclose(out.logvar_image, lat + out.stats_image, atol=1e-5)
    spec = ReliabilitySpec(loss="detector", source="stats")
    step = RecipeStep(
        TrainingRecipe(CorruptionSpec(kinds=("noise",), prob=1.0), spec), ("image", "event"), 0
    )
    _, extra = step(model, x, y, n)
    extra.backward()
    assert model.temporal.image_logvar.weight.grad is None
    assert model.temporal.event_logvar.weight.grad is None
    assert float(model.temporal.image_logvar_temporal[-1].weight.grad.abs().sum()) > 0
    v = parse_variant(
        "reference:variance_temporal=true:reliability_loss=detector:detector_source=stats"
    )
    assert v.recipe["reliability"]["source"] == "stats"
    plain = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, dropout=0.0))
    assert plain(x, y, n).stats_image is None
    with pytest.raises(UserInputError, match="variance_temporal"):
        step(plain, x, y, n)
    with pytest.raises(UserInputError, match="detector source"):
        ReliabilitySpec(loss="detector", source="latent")
    record = TrainingRecipe(CorruptionSpec(kinds=("noise",)), spec).to_record()
    with pytest.raises(UserInputError, match="variance_temporal"):  # before any training
        make_step(record, ("image", "event"), 0, variance_temporal=False)
    assert make_step(record, ("image", "event"), 0, variance_temporal=True) is not None


def test_detach_stats_leaves_the_stats_head_to_the_detector():
    """``detach_stats``: the same forward values; a loss on the scores no longer reaches the
    stats head (the latent heads still learn from it), the detector on the stats does; it is
    refused where nothing would train the stats head."""
    torch.manual_seed(0)
    cfg = dict(dim=16, heads=2, refine_steps=1, dropout=0.0, variance_temporal=True)
    model = IEFVAD(ModelConfig(**cfg, temporal_hidden=8))
    torch.nn.init.normal_(model.temporal.image_logvar_temporal[-1].weight, std=0.3)
    x, y, n = torch.randn(2, 6, 16), torch.randn(2, 6, 16), torch.full((2,), 6)
    a, b = model(x, y, n), model(x, y, n, detach_stats=True)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.w_image, b.w_image)
    b.logits.sum().backward()
    assert model.temporal.image_logvar_temporal[-1].weight.grad is None
    assert float(model.temporal.image_logvar.weight.grad.abs().sum()) > 0
    model.zero_grad()
    spec = ReliabilitySpec(loss="detector", source="stats", detach_stats=True)
    step = RecipeStep(
        TrainingRecipe(CorruptionSpec(kinds=("noise",), prob=1.0), spec), ("image", "event"), 0
    )
    out, extra = step(model, x, y, n)
    out.logits.sum().backward(retain_graph=True)
    assert model.temporal.image_logvar_temporal[-1].weight.grad is None
    extra.backward()
    assert float(model.temporal.image_logvar_temporal[-1].weight.grad.abs().sum()) > 0
    with pytest.raises(UserInputError, match="detach_stats"):
        ReliabilitySpec(loss="detector", detach_stats=True)
    v = "reference:variance_temporal=true:reliability_loss=detector:detector_source=stats"
    assert parse_variant(v + ":detach_stats=yes").recipe["reliability"]["detach_stats"] is True


def test_detach_corrupted_cuts_the_anomaly_loss_from_the_weights_of_corrupted_rows_only():
    """``detach_corrupted``: the rows the augmentation corrupted reach the log-variance heads
    through the reliability term only; the clean rows as before; the forward values are the
    same as without it."""
    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, dropout=0.0))
    x, y, n = torch.randn(2, 6, 16), torch.randn(2, 6, 16), torch.full((2,), 6)
    rows = torch.tensor([True, False])
    a, b = model(x, y, n), model(x, y, n, detach_weights=rows)
    assert torch.equal(a.logits, b.logits)
    grads = []
    for r in (0, 1):
        model.zero_grad()
        model(x, y, n, detach_weights=rows).logits[r].sum().backward()
        grads.append(float(model.temporal.image_logvar.weight.grad.abs().sum()))
    assert grads[0] == 0.0 and grads[1] > 0
    labels = torch.tensor([0.0, 0.0, 1.0, 1.0])
    spec = ReliabilitySpec(loss="detector", detach_corrupted=True)
    recipe = TrainingRecipe(CorruptionSpec(kinds=("drop",), prob=1.0, rows="normal"), spec)
    step = RecipeStep(recipe, ("image", "event"), 0)
    x4, y4, n4 = torch.randn(4, 6, 16), torch.randn(4, 6, 16), torch.full((4,), 6)
    for r, expect_zero in ((0, True), (2, False)):  # row 0 corrupted (normal), row 2 clean
        model.zero_grad()
        out, _ = step(model, x4, y4, n4, labels)
        out.logits[r].sum().backward()
        g = model.temporal.image_logvar.weight.grad
        assert (g is None or float(g.abs().sum()) == 0.0) == expect_zero
    model.zero_grad()
    _, extra = step(model, x4, y4, n4, labels)
    extra.backward()
    assert float(model.temporal.image_logvar.weight.grad.abs().sum()) > 0
    v = parse_variant("reference:reliability_loss=detector:detach_corrupted=true")
    assert v.recipe["reliability"]["detach_corrupted"] is True


def test_mil_input_scores_clean_rows_only_or_the_clean_inputs_of_every_row():
    """``mil_input``: ``clean_rows`` names the rows the augmentation left clean and the MIL term
    is theirs alone; ``clean`` replaces the corrupted rows' scores by those of a second pass
    on their clean inputs (with gradient), so the MIL term sees the clean batch while the
    logvars the detector reads stay the corrupted pass's; ``corrupted`` (default) changes
    nothing."""
    from iefvad.models.losses import ief_vad_loss, mil_loss

    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, dropout=0.0)).eval()
    x, y, n = torch.randn(4, 6, 16), torch.randn(4, 6, 16), torch.tensor([6, 5, 6, 4])
    labels = torch.tensor([0.0, 0.0, 1.0, 1.0])
    corrupt = CorruptionSpec(kinds=("drop",), prob=1.0, whole=1.0, rows="normal")

    def step(mil_input):
        spec = ReliabilitySpec(loss="detector", mil_input=mil_input)
        return RecipeStep(TrainingRecipe(corrupt, spec), ("image", "event"), 0)

    rows = step("clean_rows")
    out, _ = rows(model, x, y, n, labels)
    assert rows.mil_rows.tolist() == [False, False, True, True]  # the normal rows were hit
    part = ief_vad_loss(out, labels, n, 0.1, 0.0, mil_rows=rows.mil_rows)
    assert torch.allclose(part.cls, mil_loss(out.logits[2:], labels[2:], n[2:]))
    plain = step("corrupted")
    corrupted, _ = plain(model, x, y, n, labels)
    assert plain.mil_rows is None
    full = step("clean")
    out, extra = full(model, x, y, n, labels)
    assert full.mil_rows is None
    assert torch.allclose(out.logits, model(x, y, n).logits, atol=1e-5)  # the clean batch's
    assert not torch.allclose(corrupted.logits[:2], out.logits[:2])
    assert torch.equal(out.logvar_image, corrupted.logvar_image)  # the detector's input
    out.logits[0].sum().backward()
    assert float(model.temporal.image_mu.weight.grad.abs().sum()) > 0
    v = parse_variant("reference:reliability_loss=detector:mil_input=clean")
    assert v.recipe["reliability"]["mil_input"] == "clean"
    with pytest.raises(UserInputError, match="mil_input"):
        ReliabilitySpec(mil_input="both")


def test_shuffle_and_swap_change_only_the_span():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 4, generator=g)
    m = torch.zeros(2, 8, dtype=torch.bool)
    m[:, 2:6] = True
    y = apply_corruption(x, m, "shuffle", noise=torch.randn(2, 8, 4, generator=g))
    assert torch.equal(y[~m], x[~m])
    for r in range(2):  # the span holds the same snippets, in another order
        a = np.sort(x[r, 2:6].numpy(), 0)
        assert np.allclose(np.sort(y[r, 2:6].numpy(), 0), a)
    donor = donor_rows(torch.randn(2, 8, 4, generator=g), torch.tensor([3, 8]))
    assert torch.equal(donor[0, 3], donor[0, 0])  # a short donor repeats its snippets
    z = apply_corruption(x, m, "swap", donor=donor)
    assert torch.equal(z[m], donor[m]) and torch.equal(z[~m], x[~m])


def test_corrupt_rows_normal_leaves_abnormal_videos_whole():
    """``rows="normal"``: only rows labelled normal are corrupted (a corrupted abnormal video
    on complementary streams can have lost its only evidence while keeping its label)."""
    from iefvad.engine.corruption import corrupt_batch

    spec = CorruptionSpec(kinds=("drop", "noise"), prob=1.0, whole=1.0, rows="normal")
    x, y = torch.randn(4, 5, 3), torch.randn(4, 5, 3)
    labels = torch.tensor([0.0, 1.0, 0.0, 1.0])
    a, b, mi, me = corrupt_batch(
        x, y, torch.full((4,), 5), spec, np.random.default_rng(0), None, labels
    )
    hit = (mi | me).any(1)
    assert hit.tolist() == [True, False, True, False]
    assert torch.equal(a[1], x[1]) and torch.equal(b[3], y[3])
    with pytest.raises(ValueError, match="labels"):
        corrupt_batch(x, y, torch.full((4,), 5), spec, np.random.default_rng(0))
    with pytest.raises(UserInputError, match="rows"):
        CorruptionSpec(kinds=("drop",), rows="abnormal")
    v = parse_variant("reference:corrupt=drop:corrupt_rows=normal")
    assert v.recipe["corrupt"]["rows"] == "normal"


def test_training_flags_reach_the_new_recipe_fields():
    from iefvad.cli.options import train_parser
    from iefvad.cli.reliability import recipe_record

    args = train_parser().parse_args(
        [
            "--recipe",
            "reliable",
            "--reliability_loss",
            "detector",
            "--corrupt_rows",
            "normal",
            "--detach_weights",
        ]  # fmt: skip
    )
    rec = recipe_record(args)
    assert rec["corrupt"]["rows"] == "normal" and rec["reliability"]["detach_weights"] is True
    plain = recipe_record(train_parser().parse_args(["--recipe", "reliable"]))
    assert plain["corrupt"]["rows"] == "all" and plain["reliability"]["detach_weights"] is False


def test_recipe_detector_is_the_measured_variant_with_its_model_fields():
    """``main.py --recipe detector`` trains what round 4 measured as SF: the same training
    record as the ablation string (whose reliability target, unused by the detector, differs)
    and the model fields the string sets; flags still change single parts; an ablation
    variant whose detector reads the stats without ``variance_temporal`` is refused."""
    from iefvad.cli.options import train_parser
    from iefvad.cli.reliability import recipe_model_fields, recipe_record

    ssf = (
        "reference:recipe=reliable:reliability_loss=detector:corrupt=noise+drop+freeze"
        ":variance_temporal=true:corrupt_rows=normal:corrupt_prob=0.75:corrupt_sigma=2,4"
        ":stats_scale=3:temporal_hidden=16"
    )
    v = parse_variant(ssf)
    args = train_parser().parse_args(["--recipe", "detector"])
    rec = recipe_record(args)
    assert rec["corrupt"] == v.recipe["corrupt"]
    assert {**rec["reliability"], "target": None} == {**v.recipe["reliability"], "target": None}
    fields = recipe_model_fields(args, {})
    assert {k: fields[k] for k in ("variance_temporal", "temporal_hidden", "stats_scale")} == {
        k: v.model[k] for k in ("variance_temporal", "temporal_hidden", "stats_scale")
    }
    assert fields.get("weight_power", 1.0) == v.model.get("weight_power", 1.0) == 1.0
    ModelConfig(dim=16, heads=2, **fields)  # a valid model
    custom = train_parser().parse_args(["--recipe", "detector", "--corrupt_prob", "0.5"])
    assert recipe_record(custom)["corrupt"]["prob"] == 0.5
    assert recipe_model_fields(custom, {"temporal_hidden": 8})["temporal_hidden"] == 8
    with pytest.raises(UserInputError, match="variance_temporal"):
        parse_variant("reference:recipe=detector:detector_source=stats")


def test_detector_band_leaves_clean_weights_free_inside_it_and_corrupted_ones_as_before():
    """band 0.3: a clean snippet costs nothing while both weights are in [0.3, 0.7], and a
    squared hinge beyond; a corrupted snippet keeps the BCE."""
    k = 3.0
    mu = torch.zeros(1, 3, 2)
    lv_i = torch.tensor([[[0.1, -0.2], [0.6, 0.6], [0.0, 0.0]]])  # w_image 0.43-0.65; 0.14
    lv_e = torch.zeros(1, 3, 2)
    clean = torch.zeros(1, 3, dtype=torch.bool)
    lengths = torch.tensor([1])
    inside = detector_loss(_out(mu, lv_i, mu, lv_e), lengths, k, clean, clean, band=0.3)
    assert float(inside) == 0.0  # first snippet only: inside the band
    beyond = detector_loss(_out(mu, lv_i, mu, lv_e), torch.tensor([2]), k, clean, clean, 0.3)
    assert float(beyond) > 0.0  # the second snippet's image weight is 0.14
    hit = torch.tensor([[False, True, False]])
    with_bce = detector_loss(_out(mu, lv_i, mu, lv_e), torch.tensor([2]), k, hit, clean, 0.3)
    plain = detector_loss(_out(mu, lv_i, mu, lv_e), torch.tensor([2]), k, hit, clean, 0.0)
    assert 0.0 < float(with_bce) < float(plain)  # corrupted snippet: BCE in both
    with pytest.raises(UserInputError, match="band"):
        ReliabilitySpec(loss="detector", band=0.5)
    assert parse_variant("reference:detector_band=0.3").recipe["reliability"]["band"] == 0.3


def test_temporal_hidden_is_a_zero_initialised_mlp_that_can_flag_both_ends_of_a_stat():
    """A linear map of the stats is monotone, so it cannot raise the variance both for a
    change of zero (frozen) and for a large one (noise); the MLP can. It starts as the plain
    heads (last layer zero) and has its own parameter names."""
    torch.manual_seed(0)
    cfg = dict(dim=16, heads=2, refine_steps=1, dropout=0.0, variance_temporal=True)
    lin, mlp = IEFVAD(ModelConfig(**cfg)), IEFVAD(ModelConfig(**cfg, temporal_hidden=8))
    mlp.load_state_dict(lin.state_dict(), strict=False)
    x, y = torch.randn(2, 6, 16), torch.randn(2, 6, 16)
    assert torch.allclose(lin(x, y).logits, mlp(x, y).logits)
    names = set(mlp.state_dict())
    assert "temporal.image_logvar_temporal.0.weight" in names
    assert "temporal.image_logvar_temporal.weight" not in names
    with pytest.raises(UserInputError, match="temporal_hidden"):
        ModelConfig(dim=16, heads=2, temporal_hidden=8)
    # fit both heads to "variance up at both ends of one stat": only the MLP can
    s = torch.linspace(-2.0, 0.5, 64)[:, None].repeat(1, 3)
    target = (s[:, 0] < -1.5) | (s[:, 0] > 0.2)
    errs = []
    for head in (lin.temporal.image_logvar_temporal, mlp.temporal.image_logvar_temporal):
        if isinstance(head, torch.nn.Sequential):  # away from zero so that ReLUs differ
            torch.nn.init.normal_(head[-1].weight, std=0.1)
        opt = torch.optim.Adam(head.parameters(), lr=0.05)
        for _ in range(400):
            opt.zero_grad()
            logit = head(s)[:, 0]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, target.float())
            loss.backward()
            opt.step()
        errs.append(float(((head(s)[:, 0] > 0) != target).float().mean()))
    assert errs[0] > 0.1 and errs[1] < 0.05


def test_weight_pool_snippet_gives_one_weight_per_snippet_from_the_mean_log_variance():
    torch.manual_seed(0)
    cfg = dict(dim=16, heads=2, refine_steps=1, dropout=0.0, weight_power=3.0)
    a = IEFVAD(ModelConfig(**cfg))
    b = IEFVAD(ModelConfig(**cfg, weight_pool="snippet"))
    b.load_state_dict(a.state_dict())  # no new parameters
    x, y = torch.randn(2, 6, 16), torch.randn(2, 6, 16)
    oa, ob = a(x, y), b(x, y)
    assert torch.equal(oa.logvar_image, ob.logvar_image)  # the heads are unchanged
    assert not torch.allclose(oa.w_image[..., 0], oa.w_image[..., 1])  # per value
    assert torch.allclose(ob.w_image, ob.w_image[..., :1].expand_as(ob.w_image))
    want = torch.sigmoid(-3.0 * (ob.logvar_image.mean(-1) - ob.logvar_event.mean(-1)))
    assert torch.allclose(ob.w_image[..., 0], want, atol=1e-6)
    with pytest.raises(UserInputError, match="weight_pool"):
        ModelConfig(dim=16, heads=2, weight_pool="video")
