"""Per-dimension standardisation appended to an encoder: ``(f(x) - mean) / std``.

Used by the demo's random image tower. A random ViT's output is dominated by a constant (its
random class token passes through LayerNorm unchanged) and the part that varies with the image
is spread unevenly over the dimensions; the fusion model, whose first operation is a residual
LayerNorm, then learns nothing useful in a few hundred steps. Standardising the tower with
statistics of *normal calibration footage* (not the training or test videos) gives features
that vary around zero with unit spread, as trained CLIP features vary around their mean. The
statistics are part of the encoder: they change its fingerprint and are recorded in the
checkpoints trained on its features, so ``infer.py`` applies the very same map.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from iefvad.extraction.encoders import Encoder, fingerprint_module


class Standardize(nn.Module):
    """``x`` ``[B, D]`` -> ``(x - mean) / std`` with fixed buffers ``mean``, ``std`` ``[D]``."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def standardized(
    enc: Encoder, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor
) -> Encoder:
    """A copy of ``enc`` whose outputs are standardised (new fingerprint, same device)."""
    mean_t = torch.as_tensor(np.asarray(mean, np.float32))
    std_t = torch.as_tensor(np.asarray(std, np.float32))
    if mean_t.shape != (enc.embed_dim,) or std_t.shape != (enc.embed_dim,):
        raise ValueError(
            f"standardisation of a {enc.embed_dim}-wide encoder needs mean and std of shape "
            f"[{enc.embed_dim}], found {tuple(mean_t.shape)} and {tuple(std_t.shape)}"
        )
    if not torch.all(std_t > 0):
        raise ValueError("standardisation std must be positive")
    module = nn.Sequential(enc.module, Standardize(mean_t, std_t).to(enc.device, enc.dtype))
    arch = f"{enc.arch} standardised"
    return replace(
        enc,
        module=module.eval(),
        fingerprint=fingerprint_module(module, arch),
        source=f"{enc.source} standardised",
        arch=arch,
    )


def fit_standardizer(
    outputs: np.ndarray | torch.Tensor, eps: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std ``[D]`` of an encoder's ``outputs`` ``[N, D]`` (N >= 2) on calibration
    inputs."""
    x = torch.as_tensor(outputs).double()
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"expected outputs [N>=2, D], found {tuple(x.shape)}")
    return x.mean(0).float().numpy(), (x.std(0) + eps).float().numpy()


__all__ = ["Standardize", "fit_standardizer", "standardized"]
