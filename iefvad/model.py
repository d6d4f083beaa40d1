"""The dual-stream uncertainty-weighted fusion model (REFERENCE.md section 5).

A pure ``nn.Module``: no data loading, no training glue. Module and parameter names are those
of the released checkpoints (``temporal.image_attn_layers.0.in_proj_weight``, ...), so the
authors' ``.pth`` files load strictly.

Shapes: B videos, T snippets, D feature width. Inputs are ``[B, T, D]`` image and event
features; ``lengths`` ``[B]`` gives the number of valid snippets of each row.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from iefvad.errors import UserInputError

NOISE_MODELS = ("student_t", "gaussian")
FUSIONS = ("reference", "image_only", "event_only")
"""``reference``: the released per-element inverse-variance fusion. ``image_only`` /
``event_only``: single-modality baselines (the other stream is not computed)."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and fusion settings; stored in every checkpoint we write."""

    dim: int = 768
    """Feature and embedding width D (768 for CLIP ViT-L/14, 512 for ViT-B)."""
    heads: int = 8
    layers: int = 2
    """Self-attention layers per modality."""
    dropout: float = 0.1
    refine_steps: int = 10
    """Number K of refinement blocks."""
    lambda_ref: float = 0.5
    """Step size of each refinement: ``fused -= lambda_ref * R_k(fused)``."""
    nu: float = 8.0
    """Degrees of freedom of the Student-t noise model."""
    noise: str = "student_t"
    """``student_t`` or ``gaussian`` (identical fused output in ``reference`` fusion)."""
    fusion: str = "reference"
    mask_padding: bool = False
    """Mask padded snippets in attention (the reference does not)."""

    def __post_init__(self) -> None:
        if self.noise not in NOISE_MODELS:
            raise UserInputError(f"noise must be one of {NOISE_MODELS}, got {self.noise!r}")
        if self.fusion not in FUSIONS:
            raise UserInputError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.dim % self.heads:
            raise UserInputError(f"dim {self.dim} is not divisible by heads {self.heads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a dict, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def modalities(self) -> tuple[str, ...]:
        """The streams this model uses: ``("image", "event")`` or one of them."""
        return {"image_only": ("image",), "event_only": ("event",)}.get(
            self.fusion, ("image", "event")
        )

    @property
    def noise_scale(self) -> float:
        """c in ``w = c * exp(-logvar)``: (nu+1)/nu for Student-t, 1 for Gaussian."""
        return (self.nu + 1.0) / self.nu if self.noise == "student_t" else 1.0


class FusionOutput(NamedTuple):
    """Everything the forward pass returns; all ``[B, T, D]`` except ``logits`` ``[B, T]``."""

    fused: Tensor
    logits: Tensor
    mu_image: Tensor
    mu_event: Tensor
    logvar_image: Tensor
    logvar_event: Tensor
    w_image: Tensor
    w_event: Tensor


def padding_mask(lengths: Tensor, t: int) -> Tensor:
    """``[B, T]`` bool, True at padded positions (index >= length)."""
    return torch.arange(t, device=lengths.device)[None, :] >= lengths[:, None]


class TemporalFusion(nn.Module):
    """Per-modality self-attention encoders, uncertainty heads, fusion and refinement."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim

        def attn() -> nn.ModuleList:
            return nn.ModuleList(
                nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
                for _ in range(cfg.layers)
            )

        def norms() -> nn.ModuleList:
            return nn.ModuleList(nn.LayerNorm(d) for _ in range(cfg.layers))

        self.image_attn_layers = attn()
        self.image_norms = norms()
        self.event_attn_layers = attn()
        self.event_norms = norms()
        self.whiten_image = nn.LayerNorm(d)
        self.whiten_event = nn.LayerNorm(d)
        self.image_mu = nn.Linear(d, d)
        self.event_mu = nn.Linear(d, d)
        self.image_logvar = nn.Linear(d, d)
        self.event_logvar = nn.Linear(d, d)
        self.refinement_blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
            for _ in range(cfg.refine_steps)
        )
        self.classifier = nn.Linear(d, 1)

    @staticmethod
    def _encode(
        x: Tensor, layers: nn.ModuleList, norms: nn.ModuleList, pad: Tensor | None
    ) -> Tensor:
        for attn, norm in zip(layers, norms):
            h, _ = attn(x, x, x, key_padding_mask=pad, need_weights=False)
            x = norm(x + h)
        return x

    def fuse(
        self, mu_i: Tensor, lv_i: Tensor, mu_e: Tensor, lv_e: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Inverse-variance weights per element; returns ``(fused, w_image, w_event)``."""
        c = self.cfg.noise_scale
        wi = c * torch.exp(-lv_i)
        we = c * torch.exp(-lv_e)
        total = wi + we + 1e-8
        wi, we = wi / total, we / total
        return wi * mu_i + we * mu_e, wi, we

    def forward(self, image: Tensor, event: Tensor, lengths: Tensor | None = None) -> FusionOutput:
        if image.shape != event.shape:
            raise ValueError(
                f"image features {tuple(image.shape)} and event features "
                f"{tuple(event.shape)} must have the same shape [B, T, D]"
            )
        if image.shape[-1] != self.cfg.dim:
            raise ValueError(
                f"features have width D={image.shape[-1]} but the model expects D={self.cfg.dim}"
            )
        pad = None
        if self.cfg.mask_padding and lengths is not None:
            pad = padding_mask(lengths, image.shape[1])
        use = self.cfg.modalities
        if "image" in use:
            zi = self.whiten_image(
                self._encode(image, self.image_attn_layers, self.image_norms, pad)
            )
            mu_i, lv_i = self.image_mu(zi), self.image_logvar(zi)
        if "event" in use:
            ze = self.whiten_event(
                self._encode(event, self.event_attn_layers, self.event_norms, pad)
            )
            mu_e, lv_e = self.event_mu(ze), self.event_logvar(ze)
        if use == ("image",):  # the unused stream reads as zeros with weight 0
            mu_e, lv_e = torch.zeros_like(mu_i), torch.zeros_like(lv_i)
            fused, wi, we = mu_i, torch.ones_like(mu_i), torch.zeros_like(mu_i)
        elif use == ("event",):
            mu_i, lv_i = torch.zeros_like(mu_e), torch.zeros_like(lv_e)
            fused, wi, we = mu_e, torch.zeros_like(mu_e), torch.ones_like(mu_e)
        else:
            fused, wi, we = self.fuse(mu_i, lv_i, mu_e, lv_e)
        for block in self.refinement_blocks:
            fused = fused - self.cfg.lambda_ref * block(fused)
        logits = self.classifier(fused).squeeze(-1)
        return FusionOutput(fused, logits, mu_i, mu_e, lv_i, lv_e, wi, we)


class IEFVAD(nn.Module):
    """Top-level model; the fusion network lives under ``temporal`` as in the released files."""

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ModelConfig()
        self.temporal = TemporalFusion(self.cfg)

    def forward(self, image: Tensor, event: Tensor, lengths: Tensor | None = None) -> FusionOutput:
        return self.temporal(image, event, lengths)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def kl_shift(cfg: ModelConfig) -> float:
    """Offset added to logvar in the KL term: log(nu/(nu+1)) for Student-t, else 0."""
    return math.log(cfg.nu / (cfg.nu + 1.0)) if cfg.noise == "student_t" else 0.0
