"""The model against an independent module written from docs/reference.md section 5."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iefvad.models.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from iefvad.models.model import IEFVAD, ModelConfig, num_parameters


class RefTemporal(nn.Module):
    """docs/reference.md section 5, written out plainly (the spec's names and order)."""

    def __init__(self, d=768, heads=8, layers=2, k=10, nu=8.0, student=True):
        super().__init__()
        self.c = (nu + 1) / nu if student else 1.0
        mha = lambda: nn.MultiheadAttention(d, heads, dropout=0.1, batch_first=True)  # noqa: E731
        self.image_attn_layers = nn.ModuleList([mha() for _ in range(layers)])
        self.image_norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(layers)])
        self.event_attn_layers = nn.ModuleList([mha() for _ in range(layers)])
        self.event_norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(layers)])
        self.whiten_image = nn.LayerNorm(d)
        self.whiten_event = nn.LayerNorm(d)
        self.image_mu = nn.Linear(d, d)
        self.event_mu = nn.Linear(d, d)
        self.image_logvar = nn.Linear(d, d)
        self.event_logvar = nn.Linear(d, d)
        self.refinement_blocks = nn.ModuleList(
            [nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d)) for _ in range(k)]
        )
        self.classifier = nn.Linear(d, 1)

    def forward(self, xi, xe):
        for attn, norm in zip(self.image_attn_layers, self.image_norms):
            xi = norm(xi + attn(xi, xi, xi)[0])
        for attn, norm in zip(self.event_attn_layers, self.event_norms):
            xe = norm(xe + attn(xe, xe, xe)[0])
        zi, ze = self.whiten_image(xi), self.whiten_event(xe)
        mu_i, lv_i = self.image_mu(zi), self.image_logvar(zi)
        mu_e, lv_e = self.event_mu(ze), self.event_logvar(ze)
        wi, we = self.c * torch.exp(-lv_i), self.c * torch.exp(-lv_e)
        wi_n, we_n = wi / (wi + we + 1e-8), we / (wi + we + 1e-8)
        fused = wi_n * mu_i + we_n * mu_e
        for r in self.refinement_blocks:
            fused = fused - 0.5 * r(fused)
        return fused, self.classifier(fused), mu_i, mu_e, lv_i, lv_e, wi_n, we_n


class RefModel(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.temporal = RefTemporal(**kw)


RELEASED_KEYS = (
    [
        f"temporal.{m}_attn_layers.{i}.{p}"
        for m in ("image", "event")
        for i in (0, 1)
        for p in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
    ]
    + [
        f"temporal.{m}_norms.{i}.{p}"
        for m in ("image", "event")
        for i in (0, 1)
        for p in ("weight", "bias")
    ]
    + [
        f"temporal.{n}.{p}"
        for n in (
            "whiten_image",
            "whiten_event",
            "image_mu",
            "event_mu",
            "image_logvar",
            "event_logvar",
            "classifier",
        )
        for p in ("weight", "bias")
    ]
    + [
        f"temporal.refinement_blocks.{k}.{j}.{p}"
        for k in range(10)
        for j in (0, 2)
        for p in ("weight", "bias")
    ]
)


def test_released_architecture_names_and_size():
    model = IEFVAD(ModelConfig.released())
    assert set(model.state_dict()) == set(RELEASED_KEYS)
    assert num_parameters(model) == 23_633_665


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    torch.manual_seed(0)
    ref = RefModel().eval()
    with torch.no_grad():  # make the uncertainty heads matter: spread the log-variances
        ref.temporal.image_logvar.weight.mul_(20)
        ref.temporal.event_logvar.bias.add_(0.3)
    d = tmp_path_factory.mktemp("released")
    torch.save(ref.state_dict(), d / "plain.pth")
    torch.save(
        {"epoch": 3, "model_state_dict": ref.state_dict(), "optimizer_state_dict": {}, "ap": 0.5},
        d / "wrapped.pth",
    )
    torch.save({f"module.{k}": v for k, v in ref.state_dict().items()}, d / "dp.pth")
    return ref, d


@pytest.mark.parametrize("name", ["plain.pth", "wrapped.pth", "dp.pth"])
def test_released_checkpoint_loads_strictly_and_matches_reference(released, name):
    ref, d = released
    model, ckpt = load_model(d / name)
    assert ckpt.kind == ("released-wrapped" if name == "wrapped.pth" else "released")
    assert (ckpt.config.dim, ckpt.config.layers, ckpt.config.refine_steps) == (768, 2, 10)
    # released files carry no configuration: they run as released, whatever our defaults are
    assert ckpt.config == ModelConfig.released()
    g = torch.Generator().manual_seed(1)
    xi, xe = torch.randn(3, 40, 768, generator=g), torch.randn(3, 40, 768, generator=g)
    with torch.no_grad():
        exp = ref.temporal(xi, xe)
        out = model(xi, xe, torch.tensor([40, 17, 5]))
    got = (
        out.fused,
        out.logits.unsqueeze(-1),
        out.mu_image,
        out.mu_event,
        out.logvar_image,
        out.logvar_event,
        out.w_image,
        out.w_event,
    )
    for a, b in zip(got, exp):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # the weights really vary per element, so the comparison is not vacuous
    assert float(out.w_image.std()) > 0.05


def test_released_checkpoint_is_bit_identical_to_the_spec_in_reference_mode(released):
    """Not just close: every eval output equals the spec module's bit for bit, for test
    chunks of 256 snippets with padding (lengths are ignored: the released code does not mask).
    (Train mode draws its dropout masks differently: the fused attention kernel.)"""
    ref, d = released
    model, _ = load_model(d / "plain.pth")
    g = torch.Generator().manual_seed(2)
    xi, xe = torch.randn(3, 256, 768, generator=g), torch.randn(3, 256, 768, generator=g)
    xi[1, 100:], xe[1, 100:] = 0.0, 0.0
    with torch.no_grad():
        exp = ref.temporal(xi, xe)
        out = model(xi, xe, torch.tensor([256, 100, 256]))
    got = (out.fused, out.logits.unsqueeze(-1), out.mu_image, out.mu_event)
    got += (out.logvar_image, out.logvar_event, out.w_image, out.w_event)
    for a, b in zip(got, exp):
        assert torch.equal(a, b)


def test_student_t_factor_cancels_in_reference_fusion():
    torch.manual_seed(0)
    a = IEFVAD(ModelConfig.released(dim=16, heads=2, noise="student_t")).eval()
    b = IEFVAD(ModelConfig.released(dim=16, heads=2, noise="gaussian")).eval()
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(2, 9, 16), torch.randn(2, 9, 16)
    with torch.no_grad():
        torch.testing.assert_close(a(x, y).logits, b(x, y).logits, rtol=0, atol=1e-6)


def test_our_checkpoint_carries_its_config(tmp_path):
    cfg = ModelConfig(dim=24, heads=3, layers=1, refine_steps=3, nu=4.0, noise="gaussian")
    torch.manual_seed(0)
    model = IEFVAD(cfg)
    save_checkpoint(tmp_path / "m.pth", model, dataset="xd", selection={"mode": "last"})
    loaded, ckpt = load_model(tmp_path / "m.pth")
    assert ckpt.kind == "iefvad" and ckpt.config == cfg and ckpt.meta["dataset"] == "xd"
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_checkpoint_that_does_not_fit(tmp_path):
    sd = IEFVAD(ModelConfig.released(dim=16, heads=2)).state_dict()
    sd["temporal.extra.weight"] = torch.zeros(1)
    del sd["temporal.image_mu.bias"]
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(
        CheckpointError,
        match=r"bad\.pth does not fit.*missing 1 keys.*"
        r"image_mu\.bias.*unexpected 1 keys.*extra\.weight",
    ):
        load_model(tmp_path / "bad.pth")


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pth does not exist"):
        read_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*junk\.pth"):
        read_checkpoint(tmp_path / "junk.pth")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth has no 'temporal.classifier.weight'"):
        read_checkpoint(tmp_path / "other.pth")


def test_width_mismatch_is_reported():
    model = IEFVAD(ModelConfig(dim=16, heads=2))
    with pytest.raises(ValueError, match=r"width D=8 but the model expects D=16"):
        model(torch.zeros(1, 4, 8), torch.zeros(1, 4, 8))


@pytest.mark.parametrize("fusion,used", [("image_only", 0), ("event_only", 1)])
def test_single_modality_baselines_ignore_the_other_stream(fusion, used):
    from iefvad.models.losses import ief_vad_loss

    torch.manual_seed(0)
    model = IEFVAD(ModelConfig(dim=16, heads=2, refine_steps=1, fusion=fusion)).eval()
    x = [torch.randn(2, 9, 16), torch.randn(2, 9, 16)]
    y = [t.clone() for t in x]
    y[1 - used] = torch.randn(2, 9, 16) * 5  # change only the unused modality
    with torch.no_grad():
        a, b = model(*x), model(*y)
        x2 = [t.clone() for t in x]
        x2[used] = x2[used] + 1.0
        c = model(*x2)
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)
    assert not torch.allclose(a.logits, c.logits)
    w_used, w_other = (a.w_image, a.w_event) if used == 0 else (a.w_event, a.w_image)
    assert bool((w_used == 1).all()) and bool((w_other == 0).all())
    lengths, labels = torch.tensor([9, 4]), torch.tensor([1.0, 0.0])
    parts = ief_vad_loss(a, labels, lengths, 1.0, -0.1, modalities=model.cfg.modalities)
    assert float(parts.align) == 0.0 and float(parts.kl) > 0.0
