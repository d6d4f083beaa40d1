import os, sys  # noqa: E401, I001 - the repo root on sys.path: runs without installing

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""What the event simulator changes against the frame differences, on the demo's generated
videos; and the picture of each event representation on one snippet.

    python bench/event_sources.py       # JSON lines, and figure/event_representations.png

For every snippet of ``--videos`` test videos of the demo (``iefvad.synthetic.videos``), at the
340x256 resize, the event map's lit pixels are compared with where the scene really changed
(a noise-free render of the same video: pixels whose gray level spans more than 3 levels over
the snippet). ``recall``: fraction of changed pixels lit; ``false``: fraction of unchanged
pixels lit (sensor noise, mostly); per kind of video (the ``appearance`` anomaly is a cart
fading in slower than 10 gray levels per frame; ``motion`` a runner). Conditions: ``normal``,
``dark`` (every rendered frame, noise included, times 0.15: a night scene of 0..38 gray
levels) and ``slow`` (walkers, runners and fades 4 times slower, rendered so). Frame
differences: threshold 10 (the reference); simulator: the defaults of
:class:`iefvad.events.simulator.SimulatorConfig`. ``event_sources.speed``: simulator
frames/s and events/s on this machine.
"""

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from iefvad.events.alignment import frame_times_us  # noqa: E402
from iefvad.events.representations import crop_maps, snippet_counts  # noqa: E402
from iefvad.events.simulator import SimulatorConfig, simulate  # noqa: E402
from iefvad.synthetic.videos import DemoVideoSpec, plan_dataset, render_frames  # noqa: E402
from iefvad.video.decode import crop_tensor, resize_frame  # noqa: E402
from iefvad.video.events import event_counts, grayscale, normalise_counts  # noqa: E402

CHANGED_LEVELS = 3.0
DARK = 0.15


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def frames_of(plan, spec: DemoVideoSpec, scale: float = 1.0) -> np.ndarray:
    """RGB frames resized to 256x340, uint8 (``scale``: brightness, applied before rounding)."""
    out = []
    for f in render_frames(plan, spec):
        img = resize_frame(f)[..., ::-1]
        out.append(np.clip(np.rint(img * scale), 0, 255).astype(np.uint8) if scale != 1 else img)
    return np.stack(out)


def gray_of(rgb: np.ndarray) -> np.ndarray:
    return grayscale(torch.from_numpy(np.ascontiguousarray(rgb))).numpy()


def framediff_lit(gray: np.ndarray) -> np.ndarray:
    """``[S, H, W]`` bool: pixels the reference count map lights (any difference > 10)."""
    s = len(gray) // 16
    g = torch.from_numpy(gray[: 16 * s].reshape(s, 16, *gray.shape[1:]))
    return (event_counts(g) > 0).numpy()


def simulated_counts(gray: np.ndarray, fps: float, cfg: SimulatorConfig) -> torch.Tensor:
    """``[S, 2, H, W]`` count maps of the simulator source (snippet i: t(16i) < t <= t(16i+15))."""
    times = frame_times_us(len(gray), fps)
    ev = simulate(gray, times[: len(gray)], cfg)
    s = len(gray) // 16
    wins = [ev.slice_time(int(times[16 * i]) + 1, int(times[16 * i + 15]) + 1) for i in range(s)]
    return snippet_counts(wins, gray.shape[1:])


def changed(clean_gray: np.ndarray) -> np.ndarray:
    s = len(clean_gray) // 16
    g = clean_gray[: 16 * s].reshape(s, 16, *clean_gray.shape[1:])
    return (g.max(1) - g.min(1)) > CHANGED_LEVELS


def measure(args: argparse.Namespace) -> None:
    base = DemoVideoSpec(seed=args.seed)
    slow = replace(
        base,
        speed=(base.speed[0] / 4, base.speed[1] / 4),
        run_speed=(base.run_speed[0] / 4, base.run_speed[1] / 4),
        fade=base.fade * 4,
    )
    cfg = SimulatorConfig()
    tests = [p for p in plan_dataset(base) if p.split == "test"]
    picked = [
        p
        for k in ("normal", "appearance", "motion")
        for p in [q for q in tests if q.kind == k][: args.videos]
    ]
    for cond in ("normal", "dark", "slow"):
        spec = slow if cond == "slow" else base
        scale = DARK if cond == "dark" else 1.0
        plans = plan_dataset(spec)
        names = {p.name for p in picked}
        rows: dict[tuple[str, str], list[np.ndarray]] = {}
        for plan in (p for p in plans if p.name in names):
            clean = gray_of(frames_of(plan, replace(spec, noise=0.0)))
            gray = gray_of(frames_of(plan, spec, scale))
            truth = changed(clean)
            lit = {
                "framediff": framediff_lit(gray),
                "simulator": simulated_counts(gray, spec.fps, cfg).sum(1).numpy() > 0,
            }
            for rep, m in lit.items():
                for region, mask in (("recall", truth), ("false", ~truth)):
                    hit = (m & mask).sum() / max(mask.sum(), 1)
                    rows.setdefault((rep, plan.kind), []).append(
                        np.array([region == "recall", hit])
                    )
        for (rep, kind), vals in sorted(rows.items()):
            a = np.array(vals)
            emit(
                bench="event_sources.visibility",
                condition=cond,
                source=rep,
                kind=kind,
                videos=len(a) // 2,
                recall=round(float(a[a[:, 0] == 1, 1].mean()), 3),
                false=round(float(a[a[:, 0] == 0, 1].mean()), 4),
            )


def speed(args: argparse.Namespace) -> None:
    plan = [p for p in plan_dataset(DemoVideoSpec(seed=args.seed)) if p.kind == "motion"][0]
    gray = gray_of(frames_of(plan, DemoVideoSpec(seed=args.seed)))
    t0 = time.perf_counter()
    ev = simulate(gray, frame_times_us(len(gray), 25.0)[: len(gray)])
    dt = time.perf_counter() - t0
    emit(
        bench="event_sources.speed",
        frames=len(gray),
        size="340x256",
        events=len(ev),
        frames_per_s=round(len(gray) / dt, 1),
        events_per_s=round(len(ev) / dt),
        machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        cpu_cores=os.cpu_count(),
    )


def figure(args: argparse.Namespace, out: Path) -> None:
    """One snippet of a motion test video (inside its anomaly): the image crop, the reference
    frame-difference map, the simulator's counts and polarity maps (crop 0, as the encoder sees
    them)."""
    import matplotlib.pyplot as plt

    from iefvad.viz.figures import save_figure

    spec = DemoVideoSpec(seed=args.seed)
    plan = [p for p in plan_dataset(spec) if p.split == "test" and p.kind == "motion"][0]
    rgb = frames_of(plan, spec)
    snip = (plan.spans[0][0] + plan.spans[0][1]) // 32
    frames = rgb[16 * snip : 16 * snip + 16]
    diff = normalise_counts(event_counts(torch.from_numpy(gray_of(frames))[None]), "snippet")
    counts = simulated_counts(gray_of(rgb), spec.fps, SimulatorConfig())[snip : snip + 1]
    panels = [
        ("image (crop 0, frame 8 of 16)", crop_tensor(torch.from_numpy(frames[8]), 0).numpy()),
        ("framediff: |diff| > 10, counted\n(reference, default for videos)",
         crop_tensor(diff[0], 0, channels_last=False).numpy()),
        ("counts: simulator, ON/OFF each\n/ (max + 1), averaged (event-CLIP)",
         crop_maps(counts, 0, "counts")[0, 0].numpy()),
        ("polarity: R = ON, G = OFF,\nB = their mean",
         crop_maps(counts, 0, "polarity")[0].permute(1, 2, 0).numpy()),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.8))
    for ax, (title, img) in zip(axes, panels):
        if img.ndim == 2:
            ax.imshow(img, cmap="gray", vmin=0, vmax=max(float(img.max()), 1e-6))
        else:
            ax.imshow(img / max(float(img.max()), 1e-6) if img.dtype != np.uint8 else img)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"One snippet of demo video {plan.name} (a runner), as each event map shows it")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    save_figure(fig, out)
    emit(bench="event_sources.figure", path=str(out), video=plan.name, snippet=snip)


def main() -> None:
    p = argparse.ArgumentParser(description="Event simulator vs frame differences; figure.")
    p.add_argument("--videos", type=int, default=2, help="test videos per kind")
    p.add_argument("--seed", type=int, default=0, help="demo dataset seed")
    p.add_argument("--figure", default="figure/event_representations.png")
    p.add_argument("--no_figure", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    if not args.no_figure:
        figure(args, Path(args.figure))
    speed(args)
    measure(args)


if __name__ == "__main__":
    main()
