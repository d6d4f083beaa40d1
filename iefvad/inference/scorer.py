"""The snippet scorer: features of consecutive snippets in, anomaly scores and fusion weights
out, under a temporal context (``chunk`` windows as ``test.py``, or ``causal``: only the past;
see :mod:`iefvad.inference`)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from iefvad.data.features import CLIP_LEN
from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.extraction.recipe import SnippetFeatures
from iefvad.inference.session import InferError
from iefvad.models.model import IEFVAD

CONTEXTS: tuple[str, ...] = ("chunk", "causal")


@dataclass(frozen=True)
class Context:
    """Temporal context of the model: ``mode`` ``chunk`` or ``causal`` (see the module doc),
    ``window`` snippets (1..256)."""

    mode: str = "chunk"
    window: int = CLIP_LEN

    def __post_init__(self) -> None:
        if self.mode not in CONTEXTS:
            raise InferError(f"context must be one of {', '.join(CONTEXTS)}, found {self.mode!r}")
        if not 1 <= self.window <= CLIP_LEN:
            raise InferError(
                f"--window {self.window}: the model takes 1..{CLIP_LEN} snippets of context"
            )


@dataclass
class SnippetScore:
    """Score of one snippet: probability of an anomaly and the mean fusion weights."""

    index: int
    """Snippet index in its video or stream (frames ``16*index .. 16*index + 15``)."""
    score: float
    w_image: float
    w_event: float


class Scorer:
    """Scores a sequence of snippet features with ``model`` under ``context``.

    Feed features with :meth:`push` (``[S, D]`` per modality, any S, in order) and collect the
    snippets it returns; :meth:`flush` scores what is left (the last chunk). Holds at most
    ``context.window`` snippets of features.
    """

    def __init__(
        self,
        model: IEFVAD,
        device: torch.device | str = "cpu",
        context: Context = Context(),
        batch_size: int = 32,
    ) -> None:
        self.model = model.eval()
        self.device = torch.device(device)
        self.context = context
        self.batch_size = batch_size
        self.dim = model.cfg.dim
        self._img: deque[torch.Tensor] = deque()
        self._evt: deque[torch.Tensor] = deque()
        self._next = 0
        """Index of the next snippet pushed."""
        self.seen = 0
        """Snippets in the last chunk scored (chunk mode)."""

    def _zeros(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.dim)

    def push(self, image: torch.Tensor | None, event: torch.Tensor | None) -> list[SnippetScore]:
        """Add ``S`` snippets (``[S, D]``; None for a modality the model does not use)."""
        ref = image if image is not None else event
        if ref is None:
            raise ValueError("push needs image or event features")
        s = int(ref.shape[0])
        image = image if image is not None else self._zeros(s)
        event = event if event is not None else self._zeros(s)
        if image.shape != event.shape or image.shape[-1] != self.dim:
            raise InferError(
                f"features {tuple(image.shape)} / {tuple(event.shape)} do not fit a model of "
                f"width D={self.dim}: are these the checkpoint's encoders?"
            )
        out: list[SnippetScore] = []
        for i in range(s):
            self._img.append(image[i].float().cpu())
            self._evt.append(event[i].float().cpu())
            if self.context.mode == "chunk" and len(self._img) == self.context.window:
                out.extend(self._score_chunk())
        if self.context.mode == "causal":
            out.extend(self._score_causal(s))
        return out

    def flush(self) -> list[SnippetScore]:
        """Score the snippets still buffered (chunk mode's last, partial window)."""
        if self.context.mode == "chunk" and self._img:
            return self._score_chunk()
        return []

    @torch.no_grad()
    def _run(self, windows: list[tuple[list[torch.Tensor], list[torch.Tensor]]], take: list[int]):
        """Score windows (each zero-padded to 256); return (prob, w_i, w_e) at ``take``."""
        probs, wis, wes = [], [], []
        for a in range(0, len(windows), self.batch_size):
            part = windows[a : a + self.batch_size]
            img = torch.zeros(len(part), CLIP_LEN, self.dim)
            evt = torch.zeros(len(part), CLIP_LEN, self.dim)
            lengths = torch.empty(len(part), dtype=torch.long)
            for j, (wi, we) in enumerate(part):
                img[j, : len(wi)] = torch.stack(wi)
                evt[j, : len(we)] = torch.stack(we)
                lengths[j] = len(wi)
            o = self.model(img.to(self.device), evt.to(self.device), lengths.to(self.device))
            pos = torch.tensor(take[a : a + len(part)])
            rows = torch.arange(len(part))
            probs.append(torch.sigmoid(o.logits.float()).cpu()[rows, pos])
            wis.append(o.w_image.float().mean(-1).cpu()[rows, pos])
            wes.append(o.w_event.float().mean(-1).cpu()[rows, pos])
        return torch.cat(probs), torch.cat(wis), torch.cat(wes)

    @torch.no_grad()
    def _score_chunk(self) -> list[SnippetScore]:
        img, evt = list(self._img), list(self._evt)
        self._img.clear()
        self._evt.clear()
        o = self.model(
            torch.nn.functional.pad(torch.stack(img), (0, 0, 0, CLIP_LEN - len(img)))[None].to(
                self.device
            ),
            torch.nn.functional.pad(torch.stack(evt), (0, 0, 0, CLIP_LEN - len(evt)))[None].to(
                self.device
            ),
            torch.tensor([len(img)], device=self.device),
        )
        p = torch.sigmoid(o.logits.float())[0, : len(img)].cpu()
        wi = o.w_image.float().mean(-1)[0, : len(img)].cpu()
        we = o.w_event.float().mean(-1)[0, : len(img)].cpu()
        first = self._next
        self._next += len(img)
        self.seen = len(img)
        return [
            SnippetScore(first + k, float(p[k]), float(wi[k]), float(we[k]))
            for k in range(len(img))
        ]

    def _score_causal(self, new: int) -> list[SnippetScore]:
        """Score the last ``new`` snippets pushed, each with the window that ends at it."""
        w = self.context.window
        img, evt = list(self._img), list(self._evt)
        windows, take = [], []
        for k in range(len(img) - new, len(img)):
            lo = max(0, k + 1 - w)
            windows.append((img[lo : k + 1], evt[lo : k + 1]))
            take.append(k - lo)
        p, wi, we = self._run(windows, take)
        while len(self._img) > w - 1:  # keep the context of the next snippet only
            self._img.popleft()
            self._evt.popleft()
        first = self._next
        self._next += new
        return [
            SnippetScore(first + j, float(p[j]), float(wi[j]), float(we[j])) for j in range(new)
        ]


class _Counter:
    """Counts the frames of an iterator and notes when each was read."""

    def __init__(self, frames: Iterable[np.ndarray], keep_times: bool = False) -> None:
        self.frames = frames
        self.n = 0
        self.keep_times = keep_times
        self.times: dict[int, float] = {}

    def __iter__(self) -> Iterator[np.ndarray]:
        for f in self.frames:
            self.n += 1
            if self.keep_times and self.n % SNIPPET_FRAMES == 0:
                self.times[self.n // SNIPPET_FRAMES - 1] = time.perf_counter()
            yield f
        if self.keep_times and self.n % SNIPPET_FRAMES:
            self.times[self.n // SNIPPET_FRAMES] = time.perf_counter()


def _features(feats: SnippetFeatures, crop: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    return feats.image.get(crop), feats.event.get(crop)


def _copy_frames(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """Frames of a capture, each a new array (safe to hand to another thread)."""
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        yield frame
