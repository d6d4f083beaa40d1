"""Generated surveillance-like videos: the embedded dataset of the demo and of the tests.

Deterministic from a seed (frames are a pure function of the spec; the mp4 bytes depend only on
the OpenCV build). Each video is a static camera: a textured, desaturated background (one of
``scenes`` cameras shared by every split and label), sensor noise on every frame, and a few
"pedestrians" (a body and a head, muted colours) that walk slowly and smoothly, turn gently,
bounce off the edges of the region the camera watches, and sometimes step in or out of view
mid-video (so things appearing or leaving is normal).

Two kinds of anomaly, each needing a different modality:

- ``appearance``: a cart of an unusual, saturated colour (red or orange; pedestrians wear muted
  colours) fades in over 20 frames, stays parked and fades out. Visible in any single frame;
  invisible to the event maps (docs/reference.md section 3: thresholded differences of consecutive
  frames), since it never moves and fades by less than the threshold of 10 gray levels per
  frame. (Pedestrians passing in front of it still make their usual events.)
- ``motion``: one of the pedestrians, unchanged in looks, suddenly runs (10-16 px per frame
  instead of 0.4-1.5) or dashes erratically (as fast, with a new heading every few frames).
  Visible only in temporal change: any single frame shows an ordinary pedestrian.

Cameras are assigned round-robin within each split and kind, so no background is a cue to the
label. :func:`calibration_plans` gives extra normal clips, never in the dataset, to standardise
the demo's random encoders on (:mod:`iefvad.extraction.standardize`).

Everything happens inside :data:`WATCH_BOX`, the part of the frame the centre crop of the
extraction recipe sees (crop 0 / 5 of the 340x256 resize covers about x 55..265, y 15..225 of
a 320x240 frame), so the frame-level spans are visible in the crop the demo uses.

Layout written by :func:`make_demo_videos` (the custom-data layout of ``docs/lists.md``)::

    <root>/videos/normal/<name>.mp4                train and test normal videos
    <root>/videos/abnormal/appearance/<name>.mp4
    <root>/videos/abnormal/motion/<name>.mp4
    <root>/test_list.txt                           test video names, one per line
    <root>/annotations.csv                         video,start_frame,end_frame,class (test)
    <root>/videos.json                             the plan: split, kind, scene, spans, ...

Training videos carry video-level labels only (their folder); test videos carry frame spans.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from iefvad.datasets.specs import SNIPPET_FRAMES

KINDS: tuple[str, ...] = ("normal", "appearance", "motion")
"""Video kinds; the two anomaly kinds are the class folders under ``abnormal/``."""

WATCH_BOX: tuple[float, float, float, float] = (0.19, 0.08, 0.81, 0.92)
"""Region (x0, y0, x1, y1, fractions of the frame) where objects move: inside the centre crop."""

_SHIFT = 4
"""Fixed-point bits of cv2 drawing coordinates (sub-pixel, smooth motion)."""

ANOMALY_COLOURS: tuple[tuple[int, int, int], ...] = (
    (40, 40, 230),  # red (BGR)
    (20, 140, 240),  # orange
    (220, 40, 220),  # magenta
    (40, 200, 40),  # green
    (220, 200, 30),  # cyan
)
"""Saturated colours (BGR) whose gray level (76..170) lies inside the normal objects' range."""


@dataclass(frozen=True)
class DemoVideoSpec:
    """Size and make-up of the generated dataset."""

    seed: int = 0
    width: int = 320
    height: int = 240
    fps: float = 25.0
    train: tuple[int, int, int] = (48, 24, 24)
    """Training videos: (normal, appearance, motion). Half as many gave a fused frame AUC of
    0.77-0.92 over three training seeds; these give 0.91-0.95 (docs/demo.md)."""
    test: tuple[int, int, int] = (8, 8, 8)
    """Test videos: (normal, appearance, motion)."""
    snippets: tuple[int, int] = (8, 10)
    """Length range of a video in 16-frame snippets (inclusive)."""
    scenes: int = 4
    """Cameras (backgrounds), shared by every split and kind."""
    objects: tuple[int, int] = (1, 3)
    """Pedestrians per video (inclusive range)."""
    object_size: tuple[float, float] = (60.0, 90.0)
    """Pedestrian height range in pixels at 320x240 (scaled with the width)."""
    anomaly_size: float = 1.0
    """Size of an appearance anomaly relative to a pedestrian."""
    noise: float = 2.0
    """Sensor noise: standard deviation in gray levels, new every frame."""
    speed: tuple[float, float] = (0.4, 1.5)
    """Normal walking speed, pixels per frame at 320x240 (scaled with the width)."""
    run_speed: tuple[float, float] = (10.0, 16.0)
    """Speed of a running or erratically dashing object (motion anomaly), pixels per frame."""
    span_snippets: tuple[int, int] = (3, 5)
    """Length of an anomaly in snippets (inclusive range)."""
    anomaly_colours: int = 2
    """How many of :data:`ANOMALY_COLOURS` appearance anomalies use (the first ones)."""
    anomaly_shapes: tuple[str, ...] = ("cart",)
    """Shapes an appearance anomaly is drawn from (``cart``, ``person``, ``diamond``,
    ``star``); a cart is parked, the others walk."""
    fade: int = 20
    """Frames a parked cart takes to fade in (and out): its gray level changes by less than
    the event threshold of 10 per frame, so the event maps never see it."""
    fourcc: str = "mp4v"
    extension: str = ".mp4"

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 48:
            raise ValueError(f"frames must be at least 64x48, found {self.width}x{self.height}")
        if not 1 <= self.snippets[0] <= self.snippets[1]:
            raise ValueError(
                f"snippets must be a range (lo, hi) with 1 <= lo <= hi: {self.snippets}"
            )
        if self.span_snippets[1] > self.snippets[0] - 2:
            raise ValueError(
                f"anomalies of up to {self.span_snippets[1]} snippets need videos of at least "
                f"{self.span_snippets[1] + 2} snippets; found {self.snippets[0]}"
            )


@dataclass
class ObjectPlan:
    """One moving object. Positions in pixels of the full frame; frames absolute."""

    shape: str
    """``person``, ``diamond`` or ``star``."""
    colour: tuple[int, int, int]
    """Body colour, BGR."""
    head: tuple[int, int, int]
    """Head colour (``person`` only), BGR."""
    size: float
    """Body height in pixels."""
    start: tuple[float, float]
    heading: float
    """Initial direction in radians."""
    speed: float
    visible: tuple[int, int]
    """Frames ``[first, end)`` the object is in view."""
    turn_seed: int
    behaviour: str = "walk"
    """``walk``; ``run`` or ``erratic`` during ``odd`` frames (motion anomaly)."""
    odd: tuple[int, int] = (0, 0)
    odd_speed: float = 0.0
    fade: int = 0
    """Frames over which the object fades in at the start of ``visible`` and out at its end
    (0: it pops in and out)."""

    def opacity(self, t: int) -> float:
        """How opaque the object is at frame ``t`` (0 when out of view)."""
        if not self.visible[0] <= t < self.visible[1]:
            return 0.0
        if self.fade <= 0:
            return 1.0
        edge = min(t - self.visible[0] + 1, self.visible[1] - t)
        return min(1.0, edge / (self.fade + 1))


@dataclass
class VideoPlan:
    """Everything needed to render one video; also what ``videos.json`` records."""

    name: str
    split: str
    """``train`` or ``test``."""
    kind: str
    """``normal``, ``appearance`` or ``motion``."""
    scene: int
    frames: int
    spans: list[tuple[int, int]]
    """Anomalous frames ``[start, end)`` (empty for normal videos)."""
    seed: int
    objects: list[ObjectPlan] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return "normal" if self.kind == "normal" else f"abnormal/{self.kind}"

    @property
    def label(self) -> str:
        return "normal" if self.kind == "normal" else self.kind


@dataclass
class DemoVideos:
    """What :func:`make_demo_videos` wrote."""

    root: Path
    video_dir: Path
    test_list: Path
    annotations: Path
    plans: list[VideoPlan]

    def path_of(self, plan: VideoPlan, extension: str = ".mp4") -> Path:
        return self.video_dir / plan.folder / f"{plan.name}{extension}"


# ------------------------------------------------------------------------------ planning


def _box(spec: DemoVideoSpec) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = WATCH_BOX
    return x0 * spec.width, y0 * spec.height, x1 * spec.width, y1 * spec.height


def _muted_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A desaturated colour (gray level 50..190, saturation below 0.25), BGR."""
    level = rng.uniform(50, 190)
    tint = rng.normal(0, 1, 3)
    tint -= tint.mean()
    tint *= rng.uniform(0, 0.2) * level / (np.abs(tint).max() + 1e-9)
    return tuple(int(v) for v in np.clip(level + tint, 0, 255))  # type: ignore[return-value]


def _scale(spec: DemoVideoSpec) -> float:
    return spec.width / 320.0


def _person(
    rng: np.random.Generator, spec: DemoVideoSpec, frames: int, visible: tuple[int, int]
) -> ObjectPlan:
    x0, y0, x1, y1 = _box(spec)
    s = _scale(spec)
    return ObjectPlan(
        shape="person",
        colour=_muted_colour(rng),
        head=_muted_colour(rng),
        size=float(rng.uniform(*spec.object_size) * s),
        start=(float(rng.uniform(x0 + 15 * s, x1 - 15 * s)), float(rng.uniform(y0 + 30 * s, y1))),
        heading=float(rng.uniform(0, 2 * math.pi)),
        speed=float(rng.uniform(*spec.speed) * s),
        visible=visible,
        turn_seed=int(rng.integers(2**31)),
    )


def _visibility(rng: np.random.Generator, frames: int) -> tuple[int, int]:
    """Most pedestrians stay the whole video; some step in or out of view mid-video."""
    u = rng.uniform()
    if u < 0.6:
        return 0, frames
    if u < 0.8:
        return int(rng.integers(frames // 8, frames // 2)), frames
    return 0, int(rng.integers(frames // 2, frames - frames // 8))


def _span(rng: np.random.Generator, spec: DemoVideoSpec, snippets: int) -> tuple[int, int]:
    """An anomalous frame span that starts and ends off snippet boundaries, away from the ends."""
    n = int(rng.integers(spec.span_snippets[0], spec.span_snippets[1] + 1)) * SNIPPET_FRAMES
    n += int(rng.integers(-SNIPPET_FRAMES // 2, SNIPPET_FRAMES // 2))
    total = snippets * SNIPPET_FRAMES
    lo, hi = SNIPPET_FRAMES, total - SNIPPET_FRAMES - n
    start = int(rng.integers(lo, max(lo + 1, hi)))
    return start, min(total - 1, start + n)


def plan_video(
    spec: DemoVideoSpec, name: str, split: str, kind: str, seed: int, scene: int | None = None
) -> VideoPlan:
    """Draw the length, objects and anomaly of one video from ``seed``; its camera is
    ``scene`` (default: drawn too)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, found {kind!r}")
    rng = np.random.default_rng(seed)
    snippets = int(rng.integers(spec.snippets[0], spec.snippets[1] + 1))
    frames = snippets * SNIPPET_FRAMES
    drawn = int(rng.integers(spec.scenes))
    plan = VideoPlan(name, split, kind, drawn if scene is None else scene, frames, [], seed)
    n_obj = int(rng.integers(spec.objects[0], spec.objects[1] + 1))
    for i in range(n_obj):
        vis = (0, frames) if i == 0 else _visibility(rng, frames)
        plan.objects.append(_person(rng, spec, frames, vis))
    if kind == "normal":
        return plan
    start, end = _span(rng, spec, snippets)
    plan.spans = [(start, end)]
    if kind == "appearance":
        odd = _person(rng, spec, frames, (start, end))
        odd.colour = ANOMALY_COLOURS[int(rng.integers(spec.anomaly_colours))]
        odd.shape = str(rng.choice(list(spec.anomaly_shapes)))
        odd.head = odd.colour if odd.shape != "cart" else tuple(int(c * 0.45) for c in odd.colour)
        odd.size *= spec.anomaly_size
        if odd.shape == "cart":  # parked, fading in and out slowly: no frame difference
            odd.speed = 0.0  # ever exceeds the event threshold (docs/reference.md section 3)
            odd.fade = spec.fade
        plan.objects.append(odd)
    else:
        target = plan.objects[0]  # in view for the whole video
        target.behaviour = str(rng.choice(["run", "erratic"]))
        target.odd = (start, end)
        target.odd_speed = float(rng.uniform(*spec.run_speed) * _scale(spec))
    return plan


def calibration_plans(spec: DemoVideoSpec, clips: int = 4) -> list[VideoPlan]:
    """Normal clips of every camera, drawn with seeds of their own (never a training or test
    video): footage to standardise the demo's image tower on
    (:mod:`iefvad.extraction.standardize`)."""
    rng = np.random.default_rng([spec.seed, 1])
    plans = []
    for i in range(clips):
        seed = int(rng.integers(2**31))
        plans.append(
            plan_video(
                spec, f"calibration_{i + 1:02d}", "calibration", "normal", seed, i % spec.scenes
            )
        )
    return plans


def plan_dataset(spec: DemoVideoSpec = DemoVideoSpec()) -> list[VideoPlan]:
    """Every video of the dataset, train then test, in a fixed order (a pure function of
    ``spec``). Cameras go round-robin within each split and kind, so that no camera is more
    often abnormal than another (a label a model could learn from the background)."""
    rng = np.random.default_rng(spec.seed)
    plans: list[VideoPlan] = []
    for split, counts in (("train", spec.train), ("test", spec.test)):
        for kind, n in zip(KINDS, counts):
            first = int(rng.integers(spec.scenes))
            for i in range(n):
                name = f"{split}_{kind}_{i + 1:02d}"
                seed = int(rng.integers(2**31))
                scene = (first + i) % spec.scenes
                plans.append(plan_video(spec, name, split, kind, seed, scene))
    return plans


# ------------------------------------------------------------------------------ rendering


def render_background(spec: DemoVideoSpec, scene: int) -> np.ndarray:
    """A static camera view ``[H, W, 3]`` uint8 BGR: ground, a wall, paving, benches, texture."""
    rng = np.random.default_rng(10_000 + 7919 * spec.seed + scene)
    h, w = spec.height, spec.width
    base = np.array(_muted_colour(rng), np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    horizon = int(h * rng.uniform(0.05, 0.2))
    img[:horizon] = np.array(_muted_colour(rng), np.float32)
    # low-frequency texture (stains, light) and fine grain (gravel)
    low = cv2.resize(rng.normal(0, 1, (6, 8)).astype(np.float32), (w, h), cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0)
    img += (18 * low + 10 * fine)[..., None]
    # paving lines
    step = int(rng.integers(24, 48) * _scale(spec))
    shade = rng.uniform(-25, 25)
    for x in range(int(rng.integers(step)), w, step):
        img[horizon:, x : x + 1] += shade
    for y in range(horizon + int(rng.integers(step)), h, step):
        img[y : y + 1, :] += shade
    # a few static things: benches, bins, planters
    for _ in range(int(rng.integers(2, 5))):
        bw, bh = int(rng.uniform(20, 60) * _scale(spec)), int(rng.uniform(8, 24) * _scale(spec))
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(horizon, h - bh))
        img[y : y + bh, x : x + bw] = np.array(_muted_colour(rng), np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _positions(obj: ObjectPlan, spec: DemoVideoSpec, frames: int) -> np.ndarray:
    """``[frames, 2]`` centre positions: a smooth walk with gentle turns, bouncing off the
    watched region; during ``obj.odd`` a ``run`` goes ``odd_speed`` pixels per frame with
    sharper turns, an ``erratic`` dash as fast with a new random heading every few frames."""
    rng = np.random.default_rng(obj.turn_seed)
    x0, y0, x1, y1 = _box(spec)
    half_w, half_h = obj.size * (0.85 if obj.shape == "cart" else 0.3), obj.size * 0.5
    lo = np.array([x0 + half_w, y0 + half_h])
    hi = np.array([x1 - half_w, y1 - half_h])
    pos = np.clip(np.array(obj.start, np.float64), lo, hi)
    heading = obj.heading
    turn = rng.normal(0, 0.03, frames).cumsum() * 0.2 + rng.normal(0, 0.02, frames)
    zigzag = rng.uniform(-2.5, 2.5, frames) * (rng.uniform(size=frames) < 0.3)
    out = np.empty((frames, 2))
    for t in range(frames):
        odd = obj.odd[0] <= t < obj.odd[1]
        speed = obj.odd_speed if odd else obj.speed
        heading += turn[t] * (1.0 if odd else 0.1)
        if odd and obj.behaviour == "erratic":
            heading += zigzag[t]
        pos = pos + speed * np.array([math.cos(heading), math.sin(heading)])
        for k in range(2):  # bounce
            if pos[k] < lo[k] or pos[k] > hi[k]:
                pos[k] = np.clip(2 * (lo[k] if pos[k] < lo[k] else hi[k]) - pos[k], lo[k], hi[k])
                heading = math.atan2(
                    -math.sin(heading) if k == 1 else math.sin(heading),
                    -math.cos(heading) if k == 0 else math.cos(heading),
                )
        out[t] = pos
    return out


def _pts(xy: np.ndarray) -> np.ndarray:
    return np.round(xy * (1 << _SHIFT)).astype(np.int32)


def _draw(frame: np.ndarray, obj: ObjectPlan, centre: np.ndarray) -> None:
    """Draw ``obj`` centred at ``centre`` (sub-pixel, anti-aliased)."""
    s = obj.size
    cx, cy = centre
    aa = cv2.LINE_AA
    if obj.shape == "person":
        body = np.array([cx, cy + 0.12 * s])
        cv2.ellipse(
            frame,
            tuple(_pts(body)),
            tuple(_pts(np.array([0.2 * s, 0.36 * s]))),
            0,
            0,
            360,
            obj.colour,
            -1,
            aa,
            _SHIFT,
        )
        cv2.circle(
            frame,
            tuple(_pts(np.array([cx, cy - 0.34 * s]))),
            int(0.13 * s * 16),
            obj.head,
            -1,
            aa,
            _SHIFT,
        )
        return
    if obj.shape == "cart":  # a vehicle seen from above-front: a box, a darker window, wheels
        w, h = 0.85 * s, 0.5 * s
        box = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) + centre
        cv2.fillPoly(frame, [_pts(box)], obj.colour, aa, _SHIFT)
        win = np.array(
            [[-0.7 * w, -0.8 * h], [0.7 * w, -0.8 * h], [0.7 * w, -0.2 * h], [-0.7 * w, -0.2 * h]]
        )
        cv2.fillPoly(frame, [_pts(win + centre)], obj.head, aa, _SHIFT)
        return
    if obj.shape == "diamond":
        poly = np.array([[0, -0.5], [0.3, 0], [0, 0.5], [-0.3, 0]]) * s
    else:  # star
        ang = np.arange(10) * math.pi / 5 - math.pi / 2
        rad = np.where(np.arange(10) % 2 == 0, 0.45, 0.2) * s
        poly = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    cv2.fillPoly(frame, [_pts(poly + centre)], obj.colour, aa, _SHIFT)


@functools.lru_cache(maxsize=2)
def _noise_bank(height: int, width: int, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16 frames of rounded Gaussian noise split into positive and negative uint8 parts."""
    n = np.round(np.random.default_rng(seed).normal(0, sigma, (16, height, width, 3)))
    return np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)


class _Noise:
    """Sensor noise ``N(0, sigma)`` per frame, fast: two frames of a shared bank, one shifted
    at random, the other subtracted."""

    def __init__(self, spec: DemoVideoSpec, seed: int) -> None:
        self.pos, self.neg = _noise_bank(spec.height, spec.width, spec.noise, spec.seed)
        self.rng = np.random.default_rng(seed)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        i, j = self.rng.integers(len(self.pos), size=2)
        dy, dx = self.rng.integers(0, 8, size=2)
        pos = np.roll(self.pos[i], (dy, dx), (0, 1))
        cv2.add(frame, pos, dst=frame)
        cv2.subtract(frame, self.neg[j], dst=frame)
        return frame


def render_frames(plan: VideoPlan, spec: DemoVideoSpec) -> Iterator[np.ndarray]:
    """The frames of ``plan``: ``[H, W, 3]`` uint8 BGR, one array per frame (reused: copy it
    to keep it)."""
    background = render_background(spec, plan.scene)
    tracks = [_positions(o, spec, plan.frames) for o in plan.objects]
    order = np.argsort([o.start[1] for o in plan.objects])
    noise = _Noise(spec, plan.seed)
    frame = np.empty_like(background)
    for t in range(plan.frames):
        frame[:] = background
        ys = [tracks[i][t, 1] for i in range(len(plan.objects))]
        for i in sorted(order, key=lambda k: ys[k]):  # farther (higher) objects first
            obj = plan.objects[i]
            alpha = obj.opacity(t)
            if alpha >= 1.0:
                _draw(frame, obj, tracks[i][t])
            elif alpha > 0.0:
                layer = frame.copy()
                _draw(layer, obj, tracks[i][t])
                cv2.addWeighted(layer, alpha, frame, 1.0 - alpha, 0.0, dst=frame)
        yield noise.apply(frame)


FAILURES: tuple[str, ...] = ("black", "frozen", "noise")
"""Camera failures :func:`camera_failure` applies: a black screen, a frozen picture (the last
good frame repeated) and heavy noise (uniform gray levels, new every frame)."""


def camera_failure(
    frames: Iterable[np.ndarray], span: tuple[int, int], mode: str, seed: int = 0
) -> Iterator[np.ndarray]:
    """``frames`` with the camera failing on frames ``[start, end)`` of ``span``: ``black``
    (all zeros), ``frozen`` (the frame before the span repeated; the first frame when the span
    starts at 0) or ``noise`` (uniform noise over 0..255, seeded by ``seed``). Frames outside
    the span pass through untouched. Yields new arrays inside the span (copy the others to keep
    them, as for :func:`render_frames`)."""
    if mode not in FAILURES:
        raise ValueError(f"mode must be one of {FAILURES}, found {mode!r}")
    start, end = span
    rng = np.random.default_rng(seed)
    last: np.ndarray | None = None
    for t, frame in enumerate(frames):
        if not start <= t < end:
            yield frame
            if t == start - 1:
                last = frame.copy()
            continue
        if mode == "black":
            yield np.zeros_like(frame)
        elif mode == "frozen":
            if last is None:
                last = frame.copy()
            yield last.copy()
        else:
            yield rng.integers(0, 256, frame.shape, dtype=np.uint8)


def write_video(
    plan: VideoPlan,
    spec: DemoVideoSpec,
    path: str | os.PathLike[str],
    failure: tuple[str, tuple[int, int], int] | None = None,
) -> Path:
    """Render ``plan`` into a video file (``spec.fourcc``); returns the path. ``failure``:
    ``(mode, span, seed)`` of a :func:`camera_failure` applied to the frames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    vw = cv2.VideoWriter(
        str(tmp), cv2.VideoWriter_fourcc(*spec.fourcc), spec.fps, (spec.width, spec.height)
    )
    if not vw.isOpened():
        raise RuntimeError(f"OpenCV cannot write {spec.fourcc} video {tmp}")
    try:
        frames: Iterable[np.ndarray] = render_frames(plan, spec)
        if failure is not None:
            frames = camera_failure(frames, failure[1], failure[0], failure[2])
        for frame in frames:
            vw.write(frame)
    finally:
        vw.release()
    os.replace(tmp, path)
    return path


def make_demo_videos(
    root: str | os.PathLike[str], spec: DemoVideoSpec = DemoVideoSpec(), workers: int = 2
) -> DemoVideos:
    """Render the dataset under ``root`` (see the module doc); skip videos already there."""
    root = Path(root)
    video_dir = root / "videos"
    plans = plan_dataset(spec)
    out = DemoVideos(root, video_dir, root / "test_list.txt", root / "annotations.csv", plans)

    def job(plan: VideoPlan) -> None:
        path = out.path_of(plan, spec.extension)
        if not path.is_file():
            write_video(plan, spec, path)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(job, plans))
    test = [p for p in plans if p.split == "test"]
    out.test_list.write_text("".join(f"{p.name}\n" for p in test))
    rows = [f"{p.name},{s},{e},{p.label}\n" for p in test if p.kind != "normal" for s, e in p.spans]
    out.annotations.write_text("video,start_frame,end_frame,class\n" + "".join(rows))
    meta = {"spec": asdict(spec), "videos": [asdict(p) for p in plans]}
    (root / "videos.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out


__all__ = [
    "ANOMALY_COLOURS",
    "FAILURES",
    "KINDS",
    "WATCH_BOX",
    "DemoVideoSpec",
    "DemoVideos",
    "ObjectPlan",
    "VideoPlan",
    "make_demo_videos",
    "calibration_plans",
    "camera_failure",
    "plan_dataset",
    "plan_video",
    "render_background",
    "render_frames",
    "write_video",
]
