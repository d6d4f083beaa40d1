"""``model.imf_vad``: the published class names and signatures over our model."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from iefvad.models.checkpoint import load_model
from iefvad.models.model import IEFVAD, ModelConfig
from model.imf_vad import MMFMIL, MultiModal_Fusion_Attn_Iter

D, HEADS, LAYERS, STEPS, NU = 32, 4, 2, 3, 5


def seed_args(**over) -> argparse.Namespace:
    """The attributes the published scripts' argument parser gives ``MMFMIL``."""
    base = dict(
        visual_layers=LAYERS,
        visual_head=HEADS,
        num_refinement_steps=STEPS,
        lambda_ref=0.5,
        noise_model="StudentT",
        nu=NU,
    )
    return argparse.Namespace(**{**base, **over})


def seed_model(**over) -> MMFMIL:
    return MMFMIL(1, D, 256, D, HEADS, LAYERS, 8, 10, 10, "cpu", seed_args(**over))


def released_keys(layers: int, steps: int) -> list[str]:
    """The released state-dict keys (docs/reference.md section 5), written out."""
    keys = []
    for m in ("image", "event"):
        for i in range(layers):
            keys += [f"{m}_attn_layers.{i}.{p}" for p in ("in_proj_weight", "in_proj_bias")]
            keys += [f"{m}_attn_layers.{i}.out_proj.{p}" for p in ("weight", "bias")]
        keys += [f"{m}_norms.{i}.{p}" for i in range(layers) for p in ("weight", "bias")]
    for name in (
        "whiten_image", "whiten_event", "image_mu", "event_mu", "image_logvar", "event_logvar",
    ):  # fmt: skip
        keys += [f"{name}.weight", f"{name}.bias"]
    keys += [f"refinement_blocks.{k}.{j}.{p}" for k in range(steps) for j in (0, 2)
             for p in ("weight", "bias")]  # fmt: skip
    keys += ["classifier.weight", "classifier.bias"]
    return ["temporal." + k for k in keys]


@pytest.fixture
def released_file(tmp_path):
    """A released-format ``.pth``: a plain ``temporal.*`` state dict of random weights."""
    torch.manual_seed(0)
    ours = IEFVAD(ModelConfig.released(dim=D, heads=HEADS, layers=LAYERS, refine_steps=STEPS))
    for p in ours.parameters():  # move LayerNorms and biases off their initial values
        nn.init.normal_(p, std=0.2)
    path = tmp_path / "ucf.pth"
    torch.save({k: v.clone() for k, v in ours.state_dict().items()}, path)
    return path


def test_import_and_released_attributes():
    m = seed_model()
    assert isinstance(m.temporal, MultiModal_Fusion_Attn_Iter)
    assert (m.num_class, m.embed_dim, m.visual_length, m.device) == (1, D, 256, "cpu")
    t = m.temporal
    assert (t.num_layers, t.num_refinement_steps, t.lambda_ref) == (LAYERS, STEPS, 0.5)
    assert (t.noise_model, t.nu, t.epsilon) == ("StudentT", NU, 1e-8)
    assert t.image_attn_layers[0].num_heads == HEADS
    names = {n for n, _ in t.named_children()}
    assert names == {
        "image_attn_layers", "image_norms", "event_attn_layers", "event_norms",
        "whiten_image", "whiten_event", "image_mu", "event_mu", "image_logvar",
        "event_logvar", "refinement_blocks", "classifier",
    }  # fmt: skip


def test_state_dict_keys_and_strict_load(released_file):
    m = seed_model()
    assert list(m.state_dict()) == released_keys(LAYERS, STEPS)
    sd = torch.load(released_file, map_location="cpu", weights_only=True)
    assert sorted(sd) == sorted(m.state_dict())
    m.load_state_dict(sd, strict=True)
    for k, v in m.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # the module alone takes the same dict without the prefix
    bare = {k.removeprefix("temporal."): v for k, v in sd.items()}
    MultiModal_Fusion_Attn_Iter(D, LAYERS, HEADS, num_refinement_steps=STEPS).load_state_dict(
        bare, strict=True
    )


@pytest.mark.parametrize(
    "noise_model, noise", [("StudentT", "student_t"), ("Gaussian", "gaussian")]
)
def test_outputs_equal_our_model(released_file, noise_model, noise):
    m = seed_model(noise_model=noise_model)
    m.load_state_dict(torch.load(released_file, weights_only=True), strict=True)
    m.eval()
    ours, _ = load_model(released_file, heads=HEADS, nu=NU, noise=noise)
    torch.manual_seed(1)
    xi, xe = torch.randn(2, 7, D), torch.randn(2, 7, D)
    with torch.no_grad():
        ref = ours(xi, xe)
        # float64 inputs are cast to float32; mask, text and lengths are ignored, as released
        pad = torch.zeros(2, 7, dtype=torch.bool)
        pad[1, 4:] = True
        got = m(xi.double(), xe.double(), pad, None, torch.tensor([7, 4]))
    assert set(got) == {
        "fused", "logits", "image_mu", "event_mu", "image_logvar", "event_logvar", "w_i", "w_e",
    }  # fmt: skip
    assert got["logits"].shape == (2, 7, 1)
    pairs = {
        "fused": ref.fused, "logits": ref.logits.unsqueeze(-1), "image_mu": ref.mu_image,
        "event_mu": ref.mu_event, "image_logvar": ref.logvar_image,
        "event_logvar": ref.logvar_event, "w_i": ref.w_image, "w_e": ref.w_event,
    }  # fmt: skip
    for k, want in pairs.items():
        assert got[k].dtype == torch.float32, k
        torch.testing.assert_close(got[k], want, atol=1e-6, rtol=0, msg=k)
    # to_iefvad gives our model with the same weights
    conv = m.to_iefvad()
    assert not conv.training and conv.cfg == ours.cfg
    with torch.no_grad():
        torch.testing.assert_close(conv(xi, xe).logits, ref.logits, atol=1e-6, rtol=0)


def test_zero_refinement_steps_keeps_identity_and_does_not_refine():
    m = seed_model(num_refinement_steps=0, lambda_ref=0.7).eval()
    t = m.temporal
    assert len(t.refinement_blocks) == 1 and isinstance(t.refinement_blocks[0], nn.Identity)
    assert t.lambda_ref == 0.7 and t.num_refinement_steps == 0
    assert list(m.state_dict()) == released_keys(LAYERS, 0)
    torch.manual_seed(2)
    xi, xe = torch.randn(1, 5, D), torch.randn(1, 5, D)
    with torch.no_grad():
        out = m(xi, xe, None, None, None)
        unrefined = out["w_i"] * out["image_mu"] + out["w_e"] * out["event_mu"]
        torch.testing.assert_close(out["fused"], unrefined, atol=1e-6, rtol=0)
        torch.testing.assert_close(out["logits"], t.classifier(unrefined), atol=1e-6, rtol=0)
        ours = IEFVAD(ModelConfig.released(dim=D, heads=HEADS, layers=LAYERS, refine_steps=0))
        ours.load_state_dict(m.state_dict(), strict=True)
        ref = ours.eval()(xi, xe)
    torch.testing.assert_close(out["fused"], ref.fused, atol=1e-6, rtol=0)


def test_epsilon_is_the_released_denominator_guard():
    """A large epsilon shrinks both normalised weights as ``w / (w_i + w_e + eps)``."""
    torch.manual_seed(3)
    t = MultiModal_Fusion_Attn_Iter(D, LAYERS, HEADS, num_refinement_steps=1, nu=4, epsilon=0.5)
    t.eval()
    with torch.no_grad():
        out = t(torch.randn(1, 6, D), torch.randn(1, 6, D))
        c = (4 + 1) / 4
        wi, we = c * torch.exp(-out["image_logvar"]), c * torch.exp(-out["event_logvar"])
        torch.testing.assert_close(out["w_i"], wi / (wi + we + 0.5), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out["w_e"], we / (wi + we + 0.5), atol=1e-6, rtol=1e-5)
    assert (out["w_i"] + out["w_e"]).max() < 1 - 1e-3  # the guard matters here


@pytest.mark.parametrize("bad", ["studentt", "Laplace", "student_t"])
def test_unknown_noise_model_is_refused(bad):
    with pytest.raises(ValueError, match="noise_model must be one of 'Gaussian', 'StudentT'"):
        MultiModal_Fusion_Attn_Iter(D, num_heads=HEADS, noise_model=bad)
    with pytest.raises(ValueError, match=repr(bad)):
        seed_model(noise_model=bad)


def test_gaussian_ignores_nu():
    m = seed_model(noise_model="Gaussian", nu=0)
    assert m.temporal.nu == 0 and m.temporal.cfg.noise == "gaussian"
