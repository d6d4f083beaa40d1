"""The published ``model.imf_vad`` interface, as thin wrappers over :mod:`iefvad.models.model`.

This is a compatibility layer: scripts that build ``MMFMIL(...)`` or
``MultiModal_Fusion_Attn_Iter(...)`` with the released arguments, load the authors' ``.pth``
files strictly and read the released output dict keep working, while the computation is our
:class:`iefvad.models.model.TemporalFusion` (its module and parameter names are the released ones,
so the state-dict keys are identical). Differences from the released classes:

* a wrong ``noise_model`` raises ``ValueError`` at construction, not at the first forward;
* shape and width mismatches of the inputs raise a ``ValueError`` naming both shapes.

New code should use :mod:`iefvad.models.model` (``ModelConfig``, ``IEFVAD``) instead: it masks
padded snippets and offers the other fusion rules, and our checkpoints record their config.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from iefvad.models.fusion import reference_fuse
from iefvad.models.model import IEFVAD, ModelConfig, TemporalFusion

__all__ = ["MMFMIL", "MultiModal_Fusion_Attn_Iter"]

NOISE_MODELS = {"Gaussian": "gaussian", "StudentT": "student_t"}
"""The released ``noise_model`` names and the :class:`ModelConfig` ``noise`` they mean."""

_FUSE_GUARD = 1e-8
"""The denominator guard of :func:`iefvad.models.fusion.reference_fuse` (the released default)."""


class MultiModal_Fusion_Attn_Iter(TemporalFusion):  # noqa: N801 (the released name)
    """The released fusion module: our :class:`TemporalFusion` configured by the released
    arguments, returning the released output dict.

    ``noise_model`` is ``"Gaussian"`` or ``"StudentT"``; with ``reference`` fusion the
    Student-t factor ``(nu+1)/nu`` cancels in the normalised weights except against
    ``epsilon``. ``num_refinement_steps = 0`` keeps the released parameter-free ``Identity``
    placeholder in ``refinement_blocks`` and applies no refinement. The released behaviour
    is kept: padding is never masked. For new code use :class:`iefvad.models.model.IEFVAD`.
    """

    def __init__(
        self,
        embed_dim: int,
        num_layers: int = 2,
        num_heads: int = 8,
        dropout: float = 0.1,
        num_refinement_steps: int = 3,
        lambda_ref: float = 0.5,
        noise_model: str = "StudentT",
        nu: float = 5,
        epsilon: float = 1e-8,
    ) -> None:
        if noise_model not in NOISE_MODELS:
            raise ValueError(
                f"noise_model must be one of {', '.join(map(repr, NOISE_MODELS))} "
                f"(the released names), got {noise_model!r}"
            )
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
        noise = NOISE_MODELS[noise_model]
        cfg_nu = nu
        if noise == "gaussian" and not (isinstance(nu, (int, float)) and nu > 0):
            cfg_nu = ModelConfig.nu  # the Gaussian model never reads nu; keep the config valid
        cfg = ModelConfig.released(
            dim=embed_dim,
            heads=num_heads,
            layers=num_layers,
            dropout=dropout,
            refine_steps=num_refinement_steps,
            # With no refinement step the released forward never calls its Identity
            # placeholder; run with step size 0 the placeholder leaves the latent unchanged.
            lambda_ref=lambda_ref if num_refinement_steps else 0.0,
            nu=float(cfg_nu),
            noise=noise,
        )
        super().__init__(cfg)
        if num_refinement_steps == 0:
            self.refinement_blocks = nn.ModuleList([nn.Identity()])
        # the released attributes
        self.num_layers = num_layers
        self.num_refinement_steps = num_refinement_steps
        self.lambda_ref = lambda_ref
        self.noise_model = noise_model
        self.nu = nu
        self.epsilon = epsilon

    def fuse(self, mu_i: Tensor, lv_i: Tensor, mu_e: Tensor, lv_e: Tensor, *args: Any, **kw: Any):
        """The released fusion with this module's ``epsilon``: ``c w_i / (c w_i + c w_e + eps)``
        equals our rule (guard 1e-8) with the common factor ``c`` scaled by ``1e-8 / eps``."""
        if self.epsilon == _FUSE_GUARD:
            return super().fuse(mu_i, lv_i, mu_e, lv_e, *args, **kw)
        c = self.cfg.noise_scale * _FUSE_GUARD / self.epsilon
        return reference_fuse(mu_i, lv_i, mu_e, lv_e, c)

    def forward(  # type: ignore[override]  # the released signature and dict
        self, image_features: Tensor, event_features: Tensor
    ) -> dict[str, Tensor]:
        """``[B, T, D]`` image and event features to the released dict; ``logits`` is
        ``[B, T, 1]`` as released, ``fused`` the refined latent, the rest ``[B, T, D]``."""
        out = super().forward(image_features, event_features)
        return {
            "fused": out.fused,
            "logits": out.logits.unsqueeze(-1),
            "image_mu": out.mu_image,
            "event_mu": out.mu_event,
            "image_logvar": out.logvar_image,
            "event_logvar": out.logvar_event,
            "w_i": out.w_image,
            "w_e": out.w_event,
        }


class MMFMIL(nn.Module):
    """The released top-level model: the fusion module under ``temporal`` (so released
    ``.pth`` files load strictly), built from ``args.visual_layers``, ``args.visual_head``,
    ``args.num_refinement_steps``, ``args.lambda_ref``, ``args.noise_model`` and ``args.nu``
    as released (the positional size arguments are only stored).

    For new code use :class:`iefvad.models.model.IEFVAD`; :meth:`to_iefvad` converts.
    """

    def __init__(
        self,
        num_class: int,
        embed_dim: int,
        visual_length: int,
        visual_width: int,
        visual_head: int,
        visual_layers: int,
        attn_window: int,
        prompt_prefix: int,
        prompt_postfix: int,
        device: Any,
        args: Any,
    ) -> None:
        super().__init__()
        self.num_class = num_class
        self.visual_length = visual_length
        self.visual_width = visual_width
        self.embed_dim = embed_dim
        self.attn_window = attn_window
        self.prompt_prefix = prompt_prefix
        self.prompt_postfix = prompt_postfix
        self.device = device
        self.temporal = MultiModal_Fusion_Attn_Iter(
            embed_dim,
            num_layers=args.visual_layers,
            num_heads=args.visual_head,
            num_refinement_steps=args.num_refinement_steps,
            lambda_ref=args.lambda_ref,
            noise_model=args.noise_model,
            nu=args.nu,
        )

    def forward(
        self,
        img_visual: Tensor,
        ev_visual: Tensor,
        padding_mask: Any = None,
        text: Any = None,
        lengths: Any = None,
        return_attn: bool = False,
    ) -> dict[str, Tensor]:
        """The released dict of :class:`MultiModal_Fusion_Attn_Iter` on float32 inputs;
        ``padding_mask``, ``text``, ``lengths`` and ``return_attn`` are ignored, as released
        (the released model never masks padding)."""
        return self.temporal(img_visual.float(), ev_visual.float())

    def to_iefvad(self) -> IEFVAD:
        """An :class:`IEFVAD` with this model's config and (copied) weights."""
        model = IEFVAD(self.temporal.cfg)
        model.load_state_dict(self.state_dict(), strict=True)
        return model.to(next(self.parameters()).device).train(self.training)
