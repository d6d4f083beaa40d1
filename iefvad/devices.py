"""The one ``--device`` resolver: training, testing, extraction and inference all use it."""

from __future__ import annotations

import os

import torch

from iefvad.errors import UserInputError


class DeviceError(UserInputError):
    """``--device`` names a device this machine does not have."""


def _local_rank() -> int:
    """This process's GPU under torchrun (``LOCAL_RANK``), else 0."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else the CPU) or a device this machine has.

    ``auto`` and a bare ``cuda`` pick ``cuda:<LOCAL_RANK>``, one GPU per torchrun rank (rank 0,
    i.e. ``cuda:0``, without torchrun).
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", _local_rank())
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise DeviceError(
            f"--device {name!r} is not a device name ({e}); use auto, cpu, cuda or cuda:N"
        ) from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {name}: CUDA is not available here (torch {torch.__version__}"
                f"{'' if torch.backends.cuda.is_built() else ', built without CUDA'}); "
                "pass --device cpu (or auto, which falls back to the CPU)"
            )
        if dev.index is None:
            dev = torch.device("cuda", _local_rank())
        count = torch.cuda.device_count()
        if dev.index >= count:
            raise DeviceError(
                f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}; pass one of them or --device cpu"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"--device {name}: MPS is not available here; pass --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device {name}: unsupported device type; use auto, cpu or cuda")
    return dev
