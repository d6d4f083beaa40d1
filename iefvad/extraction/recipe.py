"""Features of decoded frames: the in-process API of extraction (one video, a stream, snippets).

Three levels, each built on the one below; the folder pipeline
(:mod:`iefvad.extraction.pipeline`) uses the middle one:

- :func:`encode_snippets`: resized frames ``[16*S, 256, 340, 3]`` uint8 -> per-crop image
  features ``[S, D]`` (mean of 16 per-frame CLIP embeddings) and event features ``[S, D]``.
  Crops, flips, BGR->RGB, normalisation and event maps are tensor ops on the encoders' device.
- :func:`extract_video_features`: a video file (or an iterable of BGR frames) -> ``[T, D]`` per
  crop and modality under the frame-count rule, decoding in a background thread.
- :func:`iter_snippet_features`: a live stream of frames -> features every ``group_snippets``
  snippets (16 frames each), for scoring as the video plays.

Example::

    enc = Encoders(image=load_encoder(ckpt).to("cuda", "fp16"),
                   event=load_encoder(event_ckpt, kind="event").to("cuda", "fp16"))
    feats = extract_video_features(enc, "my_video.mp4", RecipeOptions(crops=(0,)))
    feats.image[0]  # float32 [T, D]
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from iefvad.datasets.specs import SNIPPET_FRAMES
from iefvad.errors import UserInputError
from iefvad.events.representations import crop_maps
from iefvad.extraction.encoders import Encoder
from iefvad.video.decode import (
    CROP_SIZE,
    NUM_CROPS,
    RESIZE_H,
    RESIZE_W,
    TAILS,
    FrameGroup,
    Tail,
    VideoInfo,
    crop_tensor,
    group_frames,
    iter_groups,
    resize_frame,
)
from iefvad.video.events import (
    DEFAULT_CLAMP,
    DEFAULT_THRESHOLD,
    EVENT_NORMS,
    EventNorm,
    normalise_counts,
    snippet_event_counts,
    to_event_input,
)

MODALITIES: tuple[str, ...] = ("image", "event")


class RecipeError(UserInputError):
    """An option of the recipe or of the encoders is out of range (the message says which)."""


@dataclass(frozen=True)
class RecipeOptions:
    """What to compute; the defaults are the reference recipe (docs/reference.md sections 2-3)."""

    crops: tuple[int, ...] = tuple(range(NUM_CROPS))
    tail: Tail = "reference"
    threshold: float = DEFAULT_THRESHOLD
    """Event threshold in grayscale levels (0..255)."""
    event_norm: EventNorm = "group"
    clamp: float = DEFAULT_CLAMP

    def __post_init__(self) -> None:
        crops = tuple(sorted({int(c) for c in self.crops}))
        if not crops or any(not 0 <= c < NUM_CROPS for c in crops):
            raise RecipeError(f"crops must be a non-empty subset of 0..9, found {self.crops}")
        object.__setattr__(self, "crops", crops)
        if self.tail not in TAILS:
            raise RecipeError(f"tail must be one of {', '.join(TAILS)}, found {self.tail!r}")
        if self.event_norm not in EVENT_NORMS:
            raise RecipeError(
                f"event_norm must be one of {', '.join(EVENT_NORMS)}, found {self.event_norm!r}"
            )
        if not 0 <= self.threshold < 255:
            raise RecipeError(f"threshold must be in [0, 255) gray levels, found {self.threshold}")
        if not self.clamp > 0:
            raise RecipeError(f"clamp must be > 0 (the reference: 16), found {self.clamp}")

    def as_dict(self) -> dict:
        return {**asdict(self), "crops": list(self.crops)}


@dataclass
class Encoders:
    """The encoders of a run: ``image`` and/or ``event`` (None = modality not extracted).

    ``batch_size``: images per forward pass. Both encoders must be on the same device.
    """

    image: Encoder | None = None
    event: Encoder | None = None
    batch_size: int = 128

    def __post_init__(self) -> None:
        if self.image is None and self.event is None:
            raise ValueError("Encoders needs an image encoder, an event encoder, or both")
        for enc in (self.image, self.event):
            if enc is not None and enc.image_size != CROP_SIZE:
                raise ValueError(
                    f"encoder {enc.source} takes {enc.image_size}x{enc.image_size} inputs; the "
                    f"recipe's crops are {CROP_SIZE}x{CROP_SIZE}: use a 224-pixel CLIP"
                )
        if self.image is not None and self.event is not None:
            if self.image.device != self.event.device:
                raise ValueError(
                    f"image encoder on {self.image.device}, event encoder on {self.event.device}"
                )
        if self.batch_size < 1:
            raise RecipeError(f"batch_size must be >= 1, found {self.batch_size}")

    @property
    def device(self) -> torch.device:
        return (self.image or self.event).device  # type: ignore[union-attr]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if getattr(self, m) is not None)

    def of(self, modality: str) -> Encoder:
        enc = getattr(self, modality)
        if enc is None:
            raise ValueError(f"no {modality} encoder loaded")
        return enc


@dataclass
class SnippetFeatures:
    """Features of S snippets: ``{crop: float32 [S, D]}`` per modality (CPU tensors)."""

    image: dict[int, torch.Tensor] = field(default_factory=dict)
    event: dict[int, torch.Tensor] = field(default_factory=dict)
    num_snippets: int = 0
    start_snippet: int = 0
    """Index of the first snippet in its video or stream."""


@dataclass
class VideoFeatures:
    """Features of one video: ``{crop: float32 [T, D]}`` per modality, and what decoding found."""

    image: dict[int, np.ndarray]
    event: dict[int, np.ndarray]
    info: VideoInfo

    @property
    def num_snippets(self) -> int:
        return self.info.num_snippets


def _as_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != (RESIZE_H, RESIZE_W, 3):
        raise ValueError(
            f"expected resized frames uint8 [16*S, {RESIZE_H}, {RESIZE_W}, 3], found "
            f"{x.dtype} {tuple(x.shape)} (resize with iefvad.video.decode.resize_frame)"
        )
    if x.shape[0] % SNIPPET_FRAMES:
        raise ValueError(f"expected a multiple of {SNIPPET_FRAMES} frames, found {x.shape[0]}")
    return x


def _encode_image_crops(
    enc: Encoder, rgb: torch.Tensor, crops: tuple[int, ...], batch_size: int
) -> torch.Tensor:
    """Per-frame embeddings of every crop: ``rgb`` ``[F, 256, 340, 3]`` -> ``[C, F, D]``."""
    n = rgb.shape[0]
    out = torch.empty(len(crops) * n, enc.embed_dim, device=enc.device)
    total = len(crops) * n
    for a in range(0, total, batch_size):
        b = min(a + batch_size, total)
        pieces = []
        for ci in range(a // n, (b - 1) // n + 1):
            lo, hi = max(a, ci * n) - ci * n, min(b, (ci + 1) * n) - ci * n
            pieces.append(crop_tensor(rgb[lo:hi], crops[ci]))
        out[a:b] = enc.encode_uint8(pieces[0] if len(pieces) == 1 else torch.cat(pieces))
    return out.view(len(crops), n, enc.embed_dim)


def _encode_event_crops(
    enc: Encoder,
    rgb: torch.Tensor,
    opts: RecipeOptions,
    batch_size: int,
) -> torch.Tensor:
    """One embedding per snippet and crop: ``rgb`` ``[16*S, 256, 340, 3]`` -> ``[C, S, D]``."""
    counts = snippet_event_counts(rgb, opts.threshold)  # [S, 256, 340]
    s = counts.shape[0]
    maps = torch.cat(
        [
            to_event_input(
                normalise_counts(
                    crop_tensor(counts, c, channels_last=False), opts.event_norm, opts.clamp
                )
            )
            for c in opts.crops
        ]
    )  # [C*S, 3, 224, 224]
    out = torch.cat([enc.encode(maps[a : a + batch_size]) for a in range(0, len(maps), batch_size)])
    return out.view(len(opts.crops), s, enc.embed_dim)


def encode_event_counts(
    enc: Encoder, counts: torch.Tensor, crops: tuple[int, ...], repr: str, batch_size: int
) -> torch.Tensor:
    """One embedding per snippet and crop of event count maps ``[S, 2, 256, 340]`` (ON, OFF at
    rescaled coordinates) drawn as ``repr`` (:mod:`iefvad.events.representations`):
    ``[C, S, D]``."""
    counts = counts.to(enc.device)
    s = counts.shape[0]
    maps = torch.cat([crop_maps(counts, c, repr) for c in crops])  # [C*S, 3, 224, 224]
    out = torch.cat([enc.encode(maps[a : a + batch_size]) for a in range(0, len(maps), batch_size)])
    return out.view(len(crops), s, enc.embed_dim)


@torch.inference_mode()
def encode_snippets(
    encoders: Encoders,
    frames: np.ndarray | torch.Tensor,
    opts: RecipeOptions = RecipeOptions(),
    bgr: bool = True,
    event_counts: torch.Tensor | None = None,
    event_repr: str = "counts",
) -> SnippetFeatures:
    """Image and event features of S snippets of resized frames.

    ``frames``: uint8 ``[16*S, 256, 340, 3]`` (numpy or torch; pinned CPU memory is copied to
    the device asynchronously), BGR as OpenCV decodes unless ``bgr=False``. Event maps are
    normalised over all S snippets in ``group`` mode (pass the reference's groups of up to 32
    snippets to match it) or per snippet. Returns CPU float32 ``{crop: [S, D]}`` per modality.

    ``event_counts``: the snippets' events as count maps ``[S, 2, 256, 340]`` (a recording or the
    simulator, :mod:`iefvad.extraction.event_sources`), drawn as ``event_repr`` (``counts`` or
    ``polarity``) instead of the frame differences.
    """
    x = _as_frames(frames).to(encoders.device, non_blocking=True)
    rgb = x.flip(-1) if bgr else x
    s = x.shape[0] // SNIPPET_FRAMES
    feats = SnippetFeatures(num_snippets=s)
    if encoders.image is not None:
        emb = _encode_image_crops(encoders.image, rgb, opts.crops, encoders.batch_size)
        snip = emb.view(len(opts.crops), s, SNIPPET_FRAMES, -1).mean(dim=2).cpu()
        feats.image = {c: snip[i] for i, c in enumerate(opts.crops)}
    if encoders.event is not None:
        if event_counts is None:
            ev = _encode_event_crops(encoders.event, rgb, opts, encoders.batch_size).cpu()
        else:
            if event_counts.shape[0] != s:
                raise ValueError(f"{event_counts.shape[0]} event count maps for {s} snippets")
            ev = encode_event_counts(
                encoders.event, event_counts, opts.crops, event_repr, encoders.batch_size
            ).cpu()
        feats.event = {c: ev[i] for i, c in enumerate(opts.crops)}
    return feats


def background(it: Iterator, maxsize: int = 2) -> Iterator:
    """Run iterator ``it`` in a daemon thread, ``maxsize`` items ahead; re-raise its errors."""
    q: queue.Queue = queue.Queue(maxsize)
    done = object()
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in it:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put((done, e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        while True:
            item, err = q.get()
            if item is done:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()


def _stack(parts: list[torch.Tensor], dim: int) -> np.ndarray:
    if not parts:
        return np.zeros((0, dim), np.float32)
    return torch.cat(parts).numpy().astype(np.float32, copy=False)


def extract_video_features(
    encoders: Encoders,
    source: str | os.PathLike[str] | Iterable[np.ndarray],
    opts: RecipeOptions = RecipeOptions(),
    truncation_tolerance: float | None = 0.02,
) -> VideoFeatures:
    """Features of one video, decoded once: ``{crop: float32 [T, D]}`` per modality.

    ``source``: a video file, or an iterable of BGR frames ``[H, W, 3]`` uint8 of any size
    (resized here with cv2 INTER_LINEAR). T follows ``opts.tail`` (the reference rule by
    default; ``full`` or ``pad`` keep the tail). Raises
    :class:`iefvad.video.decode.VideoError` for a file that is unreadable, empty, truncated or
    has T = 0.
    """
    info = VideoInfo(str(source) if isinstance(source, (str, os.PathLike)) else "<frames>")
    if isinstance(source, (str, os.PathLike)):
        groups: Iterator[FrameGroup] = iter_groups(
            source, opts.tail, info=info, truncation_tolerance=truncation_tolerance, rgb=True
        )
    else:
        groups = group_frames(source, info, opts.tail, rgb=True)
    parts: dict[str, dict[int, list[torch.Tensor]]] = {
        m: {c: [] for c in opts.crops} for m in encoders.modalities
    }
    for group in background(groups):
        feats = encode_snippets(encoders, group.frames, opts, bgr=not group.rgb)
        for m in encoders.modalities:
            for c, f in getattr(feats, m).items():
                parts[m][c].append(f)
    out = {
        m: {c: _stack(parts[m][c], encoders.of(m).embed_dim) for c in opts.crops}
        for m in encoders.modalities
    }
    return VideoFeatures(out.get("image", {}), out.get("event", {}), info)


def iter_snippet_features(
    encoders: Encoders,
    frames: Iterable[np.ndarray],
    opts: RecipeOptions = RecipeOptions(),
    group_snippets: int = 1,
    pad: bool = False,
) -> Iterator[SnippetFeatures]:
    """Features of a live stream, every ``group_snippets`` snippets (16 frames each).

    ``frames``: BGR frames of any size (a camera, ``cv2.VideoCapture``...). Yields
    :class:`SnippetFeatures` with ``start_snippet`` set, as soon as a group is complete. Event
    maps are normalised over each group in ``group`` mode (``group_snippets=32`` reproduces the
    reference at 512 frames of latency; 1 is per-snippet). Every complete snippet is emitted
    (``tail='full'`` semantics); with ``pad`` a final partial snippet is padded by repeating its
    last frame.
    """
    if group_snippets < 1:
        raise RecipeError(f"group_snippets must be >= 1, found {group_snippets}")
    size = group_snippets * SNIPPET_FRAMES
    buf = np.empty((size, RESIZE_H, RESIZE_W, 3), np.uint8)
    n = 0
    start = 0
    for frame in frames:
        resize_frame(frame, buf[n])
        n += 1
        if n == size:
            feats = encode_snippets(encoders, buf, opts)
            feats.start_snippet = start
            start += group_snippets
            n = 0
            yield feats
    keep = (n // SNIPPET_FRAMES) * SNIPPET_FRAMES
    if pad and n % SNIPPET_FRAMES:
        keep += SNIPPET_FRAMES
        buf[n:keep] = buf[n - 1]
    if keep:
        feats = encode_snippets(encoders, buf[:keep], opts)
        feats.start_snippet = start
        yield feats
