import os, sys  # noqa: E401, I001 - the repo root on sys.path: runs without installing

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""Feature-extraction throughput: one JSON line per figure.

    python bench/extract.py                 # CI size: tiny random ViT on the CPU
    python bench/extract.py --size full     # on a GPU: ViT-L/14, 8 UCF-sized videos, bf16/fp16

Figures (``bench`` key): ``extract.decode`` (one decode worker: cv2 decode + 340x256 resize +
BGR->RGB, frames/s), ``extract.encoder`` (the image encoder alone on 224x224 crops, images/s),
``extract.end_to_end`` (the whole pipeline on generated videos: decoded frames/s, encoded
images/s = image crops + event maps, videos/s) and ``extract.precision`` (min cosine per snippet
of the chosen precision against fp32). Weights are random (speed does not depend on them).
"""

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

SIZES = {
    # videos, frames each, W, H, architecture, crops
    "ci": (3, 200, 320, 240, "tiny", "0-9"),
    "full": (8, 1024, 320, 240, "ViT-L-14", "0-9"),
}


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def machine(device: torch.device) -> dict:
    info = {"cpu_cores": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def make_videos(root: Path, n: int, frames: int, w: int, h: int) -> None:
    """UCF-like videos: a moving textured scene, mp4v."""
    rng = np.random.default_rng(0)
    scene = cv2.resize(rng.integers(0, 256, (h // 8, w // 8 * 2, 3), dtype=np.uint8), (w * 2, h))
    for i in range(n):
        path = root / f"C{i % 2}" / f"v{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
        for f in range(frames):
            x = (f * 3 + i * 17) % w
            vw.write(np.ascontiguousarray(scene[:, x : x + w]))
        vw.release()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_decode(root: Path) -> dict:
    from iefvad.video.decode import iter_groups

    t0, frames = time.perf_counter(), 0
    for video in sorted(root.rglob("*.mp4")):
        for g in iter_groups(video, rgb=True):
            frames += g.frames.shape[0]
    dt = time.perf_counter() - t0
    return {"frames": frames, "seconds": round(dt, 3), "frames_per_s": round(frames / dt, 1)}


def bench_encoder(enc, batch: int, device: torch.device, seconds: float = 5.0) -> dict:
    x = torch.randint(0, 256, (batch, 224, 224, 3), dtype=torch.uint8, device=device)
    enc.encode_uint8(x)  # warm-up (kernels, allocator)
    sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2 * batch:
        enc.encode_uint8(x)
        n += batch
    sync(device)
    dt = time.perf_counter() - t0
    return {"images": n, "seconds": round(dt, 3), "images_per_s": round(n / dt, 1)}


def bench_precision(encoders_lo, encoders_fp32, root: Path) -> dict:
    from iefvad.extraction.recipe import RecipeOptions, encode_snippets
    from iefvad.video.decode import iter_groups

    group = next(iter_groups(next(iter(sorted(root.rglob("*.mp4")))), rgb=True))
    frames = torch.from_numpy(group.frames[:64].copy())
    opts = RecipeOptions(crops=(0, 5))
    lo = encode_snippets(encoders_lo, frames, opts, bgr=False)
    hi = encode_snippets(encoders_fp32, frames, opts, bgr=False)
    out = {}
    for m in ("image", "event"):
        cos = [
            torch.nn.functional.cosine_similarity(getattr(lo, m)[c], getattr(hi, m)[c], dim=1)
            for c in opts.crops
        ]
        out[f"{m}_min_cosine"] = round(float(torch.cat(cos).min()), 6)
    return out


def main() -> None:
    from iefvad.cli.extract import parse_crops
    from iefvad.extraction.encoders import random_encoder, resolve_device, resolve_precision
    from iefvad.extraction.pipeline import RunConfig, cpu_threads, run_extraction
    from iefvad.extraction.recipe import Encoders, RecipeOptions

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--size", choices=tuple(SIZES), default=None, help="default: ci on CPU, full on GPU"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    p.add_argument("--arch", default=None, help="tiny, ViT-B-32, ViT-B-16, ViT-L-14")
    p.add_argument("--videos", type=int, default=None)
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--crops", default=None)
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--compile", action="store_true", help="torch.compile the encoders")
    p.add_argument("--encoder_seconds", type=float, default=5.0)
    p.add_argument("--skip", default="", help="comma list of figures to skip: decode,encoder,...")
    args = p.parse_args()

    device = resolve_device(args.device)
    size = args.size or ("full" if device.type == "cuda" else "ci")
    n, frames, w, h, arch, crops = SIZES[size]
    n, frames = args.videos or n, args.frames or frames
    arch, crops = args.arch or arch, parse_crops(args.crops or crops)
    precision = resolve_precision(args.precision, device)
    batch = args.batch_size or (256 if device.type == "cuda" else 32)
    skip = set(filter(None, args.skip.split(",")))
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(args.workers))
    common = dict(device=str(device), precision=precision, arch=arch, size=size,
                  torch_threads=torch.get_num_threads(), **machine(device))  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_videos(root / "videos", n, frames, w, h)
        if "decode" not in skip:
            emit(bench="extract.decode", resolution=f"{w}x{h}", **bench_decode(root / "videos"),
                 **common)  # fmt: skip
        image = random_encoder(arch, 0).to(device, precision)
        event = random_encoder(arch, 1, normalise=False).to(device, precision)
        if args.compile:
            image.compile(), event.compile()
            common["compiled"] = True
        encoders = Encoders(image=image, event=event, batch_size=batch)
        if "encoder" not in skip:
            emit(bench="extract.encoder", batch=batch,
                 **bench_encoder(image, batch, device, args.encoder_seconds), **common)  # fmt: skip
        if "precision" not in skip and precision != "fp32":
            ref = Encoders(
                image=random_encoder(arch, 0).to(device, "fp32"),
                event=random_encoder(arch, 1, normalise=False).to(device, "fp32"),
                batch_size=batch,
            )
            emit(bench="extract.precision", **bench_precision(encoders, ref, root / "videos"),
                 **common)  # fmt: skip
            del ref
        if "end_to_end" not in skip:
            cfg = RunConfig(
                video_dir=root / "videos",
                roots={"image": root / "out" / "rgb", "event": root / "out" / "event_thr_10"},
                opts=RecipeOptions(crops=crops),
                precision=precision,
                workers=args.workers,
                progress=False,
            )
            sync(device)
            s = run_extraction(cfg, encoders)
            sync(device)
            assert s.exit_code == 0 and len(s.done) == n, s.text()
            emit(
                bench="extract.end_to_end",
                videos=n,
                frames=s.frames,
                images=s.images,
                crops=len(crops),
                modalities="image+event",
                batch=batch,
                workers=args.workers,
                seconds=round(s.seconds, 3),
                frames_per_s=round(s.frames / s.seconds, 1),
                images_per_s=round(s.images / s.seconds, 1),
                videos_per_s=round(n / s.seconds, 4),
                **common,
            )


if __name__ == "__main__":
    main()
