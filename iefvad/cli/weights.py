"""The weights flags of every script that builds encoders (extraction, ``infer.py``, the demo):
where weights that are not passed as files come from (caches, downloads, trust)."""

from __future__ import annotations

import argparse

from iefvad.extraction.weights import (
    DEFAULT_PRETRAINED,
    EVENT_CLIP_FILE_B,
    EVENT_CLIP_FILE_L,
    EVENT_CLIP_REPO,
    WeightsOptions,
)


def add_weights_flags(
    group: argparse._ArgumentGroup | argparse.ArgumentParser,
    *,
    image: bool = True,
    event: bool = True,
) -> None:
    """Add ``--clip_pretrained`` (``image``), ``--event_clip_repo/_file/_revision``
    (``event``), ``--offline`` and ``--trust_weights_file`` to ``group``."""
    if image:
        group.add_argument(
            "--clip_pretrained",
            default=DEFAULT_PRETRAINED,
            help="without --clip_ckpt: the open_clip pretrained tag of --clip_model, from the "
            "caches or downloaded (openai, laion2b_s32b_b82k, ...; --clip_model hf-hub:ORG/REPO "
            "takes that repository's weights)",
        )
    if event:
        group.add_argument(
            "--event_clip_repo",
            default=EVENT_CLIP_REPO,
            help="without an event-CLIP file: Hugging Face repository of the event-CLIP weights",
        )
        group.add_argument(
            "--event_clip_file",
            default=None,
            help=f"file in --event_clip_repo (default {EVENT_CLIP_FILE_L}; {EVENT_CLIP_FILE_B} "
            "when --clip_model is a ViT-B)",
        )
        group.add_argument(
            "--event_clip_revision",
            default=None,
            help="branch, tag or commit of --event_clip_repo (default main; a commit pins it)",
        )
    group.add_argument(
        "--offline",
        action="store_true",
        help="never download weights: passed files and the local caches only (as HF_HUB_OFFLINE=1)",
    )
    group.add_argument(
        "--trust_weights_file",
        action="store_true",
        help="load weight files that hold arbitrary pickled Python objects; such a file can "
        "run code on this machine: only for files from a source you trust",
    )


def weights_options(args: argparse.Namespace) -> WeightsOptions:
    """The :class:`WeightsOptions` of parsed flags (absent flags keep the defaults)."""
    d = WeightsOptions()
    return WeightsOptions(
        pretrained=getattr(args, "clip_pretrained", None) or d.pretrained,
        event_repo=getattr(args, "event_clip_repo", None) or d.event_repo,
        event_file=getattr(args, "event_clip_file", None),
        event_revision=getattr(args, "event_clip_revision", None),
        offline=bool(getattr(args, "offline", False)),
        trust_file=bool(getattr(args, "trust_weights_file", False)),
    )
