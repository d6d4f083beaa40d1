"""Command line of feature extraction: ``extracting/extract.py`` and the seed's per-dataset
scripts (``extracting/ucf_gen_img.py``...), which are this one function with fixed defaults.

Exit status: 0 all videos extracted or already complete; 1 some videos failed (listed in the
failures file and the summary); 2 bad options, folders or weights; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iefvad.interrupts import sigterm_as_interrupt

if TYPE_CHECKING:
    from iefvad.extraction.pipeline import RunConfig
    from iefvad.extraction.recipe import Encoders

log = logging.getLogger("iefvad.extraction.pipeline")

COMPAT_SNIPPETS_PER_BATCH = 32


def parse_crops(text: str) -> tuple[int, ...]:
    """``"0-9"``, ``"0,5"``, ``"5"`` -> crop indices."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-")
                out.update(range(int(a), int(b) + 1))
            elif part:
                out.add(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"crops like 0-9 or 0,5 expected, found {text!r}"
        ) from None
    if not out or any(not 0 <= c <= 9 for c in out):
        raise argparse.ArgumentTypeError(
            f"crops must lie in 0..9 (a range A-B with A <= B), found {text!r}"
        )
    return tuple(sorted(out))


def _number(text: str, kind: type, ok: Callable[[float], bool], allowed: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value != value or not ok(value):  # value != value: NaN
        raise argparse.ArgumentTypeError(f"expected {allowed}, found {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes, workers, threads)."""
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def event_threshold(text: str) -> float:
    """An event threshold in gray levels, 0 <= t < 255."""
    return _number(text, float, lambda v: 0 <= v < 255, "gray levels 0 <= t < 255 (released: 10)")


def positive_float(text: str) -> float:
    """A number > 0."""
    return _number(text, float, lambda v: 0 < v < float("inf"), "a number > 0")


def fraction(text: str) -> float:
    """A fraction 0 <= f < 1."""
    return _number(text, float, lambda v: 0 <= v < 1, "a fraction 0 <= f < 1 (default 0.02)")


def build_parser(
    dataset: str | None = None, modality: str | None = None, compat: bool = False
) -> argparse.ArgumentParser:
    """The argument parser; ``dataset``/``modality`` fixed by a per-dataset front end."""
    from iefvad.cli.aliases import HelpFormatter
    from iefvad.cli.weights import add_weights_flags
    from iefvad.datasets.specs import DATASETS
    from iefvad.extraction.encoders import ARCHS, PRECISIONS
    from iefvad.video.decode import TAILS
    from iefvad.video.events import EVENT_NORMS

    event_only = modality == "event"
    p = argparse.ArgumentParser(
        description="Extract 10-crop CLIP image and synthetic-event features of videos "
        "(IEF-VAD recipe). See docs/extraction.md.",
        formatter_class=HelpFormatter,
    )
    g = p.add_argument_group("input and output")
    if dataset is None:
        g.add_argument(
            "--dataset",
            default="custom",
            choices=DATASETS,
            help="decides class folders (XD is flat) and the event tree name",
        )
    g.add_argument(
        "--video_dir",
        help="folder of videos (<Class>/<video> or flat); required unless --event_window_us or "
        "--event_count extract recordings alone",
    )
    g.add_argument(
        "--save_dir",
        action="append",
        default=None,
        help="output folder of the extracted modality; with both modalities the image "
        "tree (a path containing 'rgb'), the event tree beside it",
    )
    g.add_argument(
        "--out_root",
        default=None,
        help="write <out_root>/rgb and <out_root>/<event tree> (event_thr_10, ShanghaiTech "
        "event; event_thr_<threshold> for another --event_threshold)",
    )
    g.add_argument("--image_save_dir", default=None, help="image feature tree (overrides)")
    g.add_argument("--event_save_dir", default=None, help="event feature tree (overrides)")
    if modality is None:
        g.add_argument(
            "--modality",
            default="both",
            choices=("image", "event", "both"),
            help="features to extract: image (rgb tree), event, or both from one decode",
        )
    g.add_argument(
        "--videos",
        default=None,
        help="text file of video paths (relative to --video_dir) to extract only those",
    )
    g.add_argument("--crops", type=parse_crops, default="0-9", help="crops 0..9, e.g. 0-9, 0,5")

    w = p.add_argument_group("weights")
    ckpt_help = (
        "event-CLIP checkpoint ({'checkpoint': {'encoder_k.*'}} or OpenAI state_dict), as in "
        "the seed script"
        if event_only and compat
        else "CLIP image weights: OpenAI TorchScript/state_dict or open_clip checkpoint; default: "
        "--clip_model/--clip_pretrained from the caches, else downloaded"
    )
    w.add_argument("--clip_ckpt", default=None, help=ckpt_help)
    if not (event_only and compat):
        w.add_argument(
            "--event_clip_ckpt",
            default=None,
            help="event-CLIP checkpoint ({'checkpoint': {'encoder_k.*'}} or OpenAI state_dict); "
            "default: --event_clip_repo/--event_clip_file from the Hugging Face cache, else "
            "downloaded",
        )
    w.add_argument(
        "--clip_model",
        default=None,
        help="open_clip architecture name (or hf-hub:ORG/REPO) of the image weights; default "
        "ViT-L-14",
    )
    w.add_argument(
        "--clip_format",
        default="auto",
        choices=("auto", "openai", "open_clip"),
        help="auto: OpenAI layout if the keys say so, else open_clip --clip_model",
    )
    if not event_only:
        w.add_argument(
            "--model",
            default=None,
            choices=("vitl", "vitb"),
            help="seed flag: vitl = ViT-L-14, vitb = ViT-B-32 (OpenAI weights)",
        )
    w.add_argument(
        "--random_init",
        action="store_true",
        help="random weights (tests, demo); recorded in the manifests",
    )
    w.add_argument(
        "--random_arch",
        default=None,
        choices=tuple(ARCHS),
        help="architecture of --random_init (default: --clip_model, ViT-L-14)",
    )
    w.add_argument("--seed", type=int, default=0, help="--random_init seed (event uses seed+1)")
    add_weights_flags(w, image=modality != "event", event=modality != "image")

    r = p.add_argument_group("recipe")
    r.add_argument(
        "--tail",
        default="reference",
        choices=TAILS,
        help="frame-count rule: reference (s.2.4), full (every full snippet), pad",
    )
    r.add_argument(
        "--event_threshold",
        "--threshold",
        dest="threshold",
        type=event_threshold,
        default=10.0,
        help="event threshold (gray levels, 0..255); names the event tree event_thr_<threshold>",
    )
    r.add_argument(
        "--event_norm",
        default="group",
        choices=EVENT_NORMS,
        help="count-map normalisation: group of 32 snippets (reference) or snippet",
    )
    r.add_argument(
        "--clamp", type=positive_float, default=16.0, help="seed flag: clamp counts (no-op >=15)"
    )
    if compat:
        r.add_argument("--chunk_size", type=int, default=16, help="seed flag: must be 16")
    if modality != "image":
        _add_event_flags(p)

    s = p.add_argument_group("speed and scale")
    s.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK or cpu), cpu, cuda:N")
    s.add_argument(
        "--precision", default="auto", choices=PRECISIONS, help="auto: fp16 on CUDA, fp32 on CPU"
    )
    if compat:
        s.add_argument(
            "--batch_size",
            type=int,
            default=COMPAT_SNIPPETS_PER_BATCH,
            help="seed flag: snippets per group; only 32 (the reference) is supported",
        )
        s.add_argument(
            "--images_per_batch",
            type=positive_int,
            default=None,
            help="images per forward pass (default 256 on CUDA, 32 on CPU)",
        )
    else:
        s.add_argument(
            "--batch_size",
            "--images_per_batch",
            dest="images_per_batch",
            type=positive_int,
            default=None,
            help="images per forward pass (default 256 CUDA, 32 CPU)",
        )
    s.add_argument(
        "--workers", type=positive_int, default=min(4, os.cpu_count() or 1), help="decode threads"
    )
    s.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the encoders (experimental: slow start, unmeasured speed-up)",
    )
    s.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads (default on CPU: cores minus --workers, at least 1)",
    )
    s.add_argument(
        "--shard",
        default=None,
        help="RANK/WORLD of this process (default: from torchrun or SLURM env)",
    )

    o = p.add_argument_group("robustness")
    o.add_argument("--overwrite", action="store_true", help="redo videos already complete")
    o.add_argument(
        "--allow_truncated",
        action="store_true",
        help="keep features of videos that decode fewer frames than they report",
    )
    o.add_argument(
        "--truncation_tolerance",
        type=fraction,
        default=0.02,
        help="fraction of reported frames a video may lack before it counts truncated",
    )
    o.add_argument("--dry_run", action="store_true", help="list what would be done and stop")
    o.add_argument("--no_progress", action="store_true", help="no progress bar")
    o.add_argument("--log_level", default="INFO", help="logging level: DEBUG, INFO, WARNING")
    return p


def sensor_size(text: str) -> tuple[int, int]:
    """``720x1280`` (height x width) -> ``(720, 1280)``."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        h = w = 0
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"HEIGHTxWIDTH expected (e.g. 720x1280), found {text!r}")
    return h, w


def _add_event_flags(p: argparse.ArgumentParser) -> None:
    """Where the event stream comes from (docs/extraction.md, "Event cameras")."""
    from iefvad.events.representations import EVENT_REPRS
    from iefvad.extraction.event_sources import EVENT_SOURCES

    e = p.add_argument_group("event sensor (docs/extraction.md, Event cameras)")
    e.add_argument(
        "--event_source",
        default="frames",
        choices=EVENT_SOURCES,
        help="frames: thresholded frame differences (reference); simulator: a simulated event "
        "camera watching the video; recordings: event files in --event_dir",
    )
    e.add_argument(
        "--event_repr",
        default=None,
        choices=EVENT_REPRS,
        help="event maps: framediff (frames' default), counts (event-CLIP's training picture, "
        "the default for events) or polarity (ON, OFF, mean in 3 channels)",
    )
    e.add_argument(
        "--event_dir",
        default=None,
        help="folder of recordings named like the videos (<stem>.npz/.h5/.aedat4/.raw/.dat)",
    )
    e.add_argument(
        "--event_time_offset",
        type=int,
        default=0,
        help="µs of video before the recording's clock reads 0 (> 0: it starts later)",
    )
    e.add_argument(
        "--event_sensor_size",
        type=sensor_size,
        default=None,
        help="HEIGHTxWIDTH of recordings that do not store it (UCF-Crime-DVS: 720x1280)",
    )
    e.add_argument(
        "--event_window_us",
        type=positive_int,
        default=None,
        help="event-only data (no videos): snippets of this many µs of each recording",
    )
    e.add_argument(
        "--event_count",
        type=positive_int,
        default=None,
        help="event-only data (no videos): snippets of this many events of each recording",
    )
    e.add_argument(
        "--sim_threshold",
        type=positive_float,
        default=0.2,
        help="simulator contrast threshold (log intensity, ON and OFF)",
    )
    e.add_argument(
        "--sim_sigma",
        type=float,
        default=0.03,
        help="simulator per-pixel threshold mismatch (std; 0: none)",
    )
    e.add_argument(
        "--sim_refractory_us", type=int, default=100, help="simulator refractory period (µs)"
    )
    e.add_argument("--sim_seed", type=int, default=0, help="seed of the simulator's mismatch")


def event_options(args: argparse.Namespace) -> Any:
    """The :class:`iefvad.extraction.event_sources.EventOptions` of the flags."""
    from iefvad.events.simulator import SimulatorConfig
    from iefvad.extraction.event_sources import EventOptions, EventSourceError

    if not hasattr(args, "event_source"):
        return EventOptions()
    try:
        sim = SimulatorConfig(
            threshold_on=args.sim_threshold,
            threshold_off=args.sim_threshold,
            threshold_sigma=args.sim_sigma,
            refractory_us=args.sim_refractory_us,
            seed=args.sim_seed,
        )
    except ValueError as e:
        raise EventSourceError(f"simulator flags: {e}") from None
    return EventOptions(
        source=args.event_source,
        repr=args.event_repr,
        event_dir=Path(args.event_dir).expanduser() if args.event_dir else None,
        time_offset_us=args.event_time_offset,
        sensor_size=args.event_sensor_size,
        simulator=sim,
    )


def _roots(args: argparse.Namespace, modalities: tuple[str, ...], event_tree: str) -> dict:
    from iefvad.data.csv_lists import ListError, derive_event_path
    from iefvad.extraction.layout import ExtractError

    saves = args.save_dir or []
    if len(saves) > 1:
        log.warning(
            "--save_dir given %d times; using the last, %s (as the seed scripts did)",
            len(saves),
            saves[-1],
        )
    save = Path(saves[-1]).expanduser() if saves else None
    roots: dict[str, Path] = {}
    for m in modalities:
        explicit = args.image_save_dir if m == "image" else args.event_save_dir
        if explicit:
            roots[m] = Path(explicit).expanduser()
        elif args.out_root:
            roots[m] = Path(args.out_root).expanduser() / ("rgb" if m == "image" else event_tree)
        elif save is not None and (len(modalities) == 1 or m == "image"):
            roots[m] = save
        elif save is not None:
            try:
                roots[m] = derive_event_path(save, event_tree)
            except ListError:
                raise ExtractError(
                    f"--save_dir {save} has no 'rgb' to replace by {event_tree!r} for the event "
                    "features; pass --event_save_dir, or --out_root DIR for DIR/rgb and "
                    f"DIR/{event_tree}"
                ) from None
        else:
            raise ExtractError(
                f"no output folder for {m} features: pass --save_dir, --out_root or --{m}_save_dir"
            )
    if len(set(roots.values())) < len(roots):
        raise ExtractError(f"image and event features would share the folder {roots['image']}")
    named = (
        re.fullmatch(r"event_thr_(\d+(?:\.\d+)?)", roots["event"].name)
        if "event" in roots
        else None
    )
    if named and float(named[1]) != args.threshold:
        log.warning(
            "the event features of --event_threshold %g go to %s, a folder named for threshold %s; "
            "name it event_thr_%g (or use --out_root) so that no one reads them as the other's",
            args.threshold,
            roots["event"],
            named[1],
            args.threshold,
        )
    return roots


def main(
    argv: Sequence[str] | None = None,
    *,
    dataset: str | None = None,
    modality: str | None = None,
    compat: bool = False,
) -> int:
    """Run extraction from the command line; returns the exit status (see the module doc).

    ``dataset``/``modality``: fixed by the per-dataset front ends; ``compat``: accept the seed
    scripts' flags (``--batch_size`` as snippets per group, ``--chunk_size``, and in the event
    scripts ``--clip_ckpt`` as the event-CLIP checkpoint).
    """
    parser = build_parser(dataset, modality, compat)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    from iefvad.cli.entry import run_entry

    return run_entry(lambda: _run(args, dataset or args.dataset, modality or args.modality, compat))


def _encoder_choice(
    args: argparse.Namespace, modality: str, compat: bool
) -> tuple[str | None, str | None, str]:
    """``(image weights, event weights, open_clip model name)`` the flags ask for; the seed
    scripts' spellings (``--model vitl``, ``--clip_ckpt`` as the event weights of the event
    script) are mapped, contradictions and unsupported seed values stop with the flag named."""
    from iefvad.extraction.layout import ExtractError

    event_ckpt = getattr(args, "event_clip_ckpt", None)
    image_ckpt = args.clip_ckpt
    if compat and modality == "event":
        event_ckpt, image_ckpt = args.clip_ckpt, None
    elif modality == "event" and image_ckpt and not event_ckpt:
        raise ExtractError(
            "--modality event uses the event-CLIP weights: pass them with --event_clip_ckpt "
            "(--clip_ckpt is the image CLIP here)"
        )
    if compat:
        if args.batch_size != COMPAT_SNIPPETS_PER_BATCH:
            raise ExtractError(
                f"--batch_size {args.batch_size}: in the seed scripts it is the number of "
                "snippets per group, which decides T and the event normalisation; only 32 (the "
                "reference) is supported. Images per forward pass: --images_per_batch"
            )
        if args.chunk_size != 16:
            raise ExtractError(f"--chunk_size {args.chunk_size}: snippets are 16 frames, only 16")
    clip_model = args.clip_model
    seed_model = getattr(args, "model", None)
    if seed_model:
        mapped = {"vitl": "ViT-L-14", "vitb": "ViT-B-32"}[seed_model]
        if clip_model and clip_model != mapped:
            raise ExtractError(
                f"--model {seed_model} ({mapped}) contradicts --clip_model {clip_model}"
            )
        clip_model = mapped
    return image_ckpt, event_ckpt, clip_model or "ViT-L-14"


def _log_setup(cfg: RunConfig, encoders: Encoders, device: Any, where: str) -> None:
    """One log line per encoder (source, fingerprint, output tree) and one for the run."""
    for m, enc in (("image", encoders.image), ("event", encoders.event)):
        if enc is not None:
            log.info(
                "%s encoder: %s [%s] fingerprint %s%s -> %s",
                m,
                enc.source,
                enc.arch,
                enc.fingerprint,
                " (RANDOM weights)" if enc.random_init else "",
                cfg.roots[m],
            )
    opts = cfg.opts
    log.info(
        "device %s, %s, %d images per batch, %d decode workers; shard %d/%d (%s); crops %s, "
        "tail %s, threshold %g, event norm %s; events from %s drawn as %s",
        device,
        cfg.precision,
        encoders.batch_size,
        cfg.workers,
        cfg.rank,
        cfg.world,
        where,
        ",".join(map(str, opts.crops)),
        opts.tail,
        opts.threshold,
        opts.event_norm,
        cfg.events.source,
        cfg.events.repr,
    )


def _print_plan(cfg: RunConfig, encoders: Encoders) -> None:
    """``--dry_run``: what this shard would extract and why each redo is needed."""
    from iefvad.extraction.pipeline import plan

    p = plan(cfg, encoders)
    print(
        f"{p.listed} videos listed; this shard: {len(p.todo) + len(p.complete)}, "
        f"{len(p.complete)} complete, {len(p.todo)} to extract"
    )
    for rel, why in sorted(p.redo.items()):
        print(f"  redo {rel}: {why}")


def _extract(cfg: RunConfig, encoders: Encoders, distributed: bool) -> int:
    """Run the extraction; print this rank's summary (and all ranks' under torchrun); the
    exit status is the worst of them."""
    from iefvad.extraction.pipeline import gather_summaries, run_extraction

    with sigterm_as_interrupt():
        summary = run_extraction(cfg, encoders)
    total = gather_summaries(summary, cfg) if distributed else summary
    print(
        f"rank {cfg.rank}: {summary.text()}" if cfg.world > 1 else summary.text(), file=sys.stderr
    )
    if not distributed:
        return summary.exit_code
    if total is not None:
        print(f"all ranks: {total.text()}", file=sys.stderr)
    import torch.distributed as dist

    code = max(0 if total is None else total.exit_code, summary.exit_code)
    dist.destroy_process_group()
    return code


def _check_inputs_apart(
    args: argparse.Namespace,
    roots: dict[str, Path],
    image_ckpt: str | None,
    event_ckpt: str | None,
    rank: int,
    world: int,
) -> None:
    """No output lands on an input: the summary and failures files of each root are not the
    video list or a weights file, and neither of those lies in a root under a name the run
    writes (``<stem>__<crop>.npy``, ``<stem>.manifest.json``)."""
    from iefvad.extraction.layout import ExtractError, failures_name, summary_name
    from iefvad.extraction.manifest import MANIFEST_SUFFIX
    from iefvad.paths import check_outputs, shown

    inputs = [("--videos", args.videos), ("--clip_ckpt", image_ckpt)]
    inputs.append(("--event_clip_ckpt" if image_ckpt != event_ckpt else "--clip_ckpt", event_ckpt))
    outputs = [
        (f"the {m} features' {kind} file", root / name)
        for m, root in roots.items()
        for kind, name in (
            ("failures", failures_name(rank, world)),
            ("summary", summary_name(rank, world)),
        )
    ]
    check_outputs(outputs, inputs)
    for flag, path in inputs:
        if path is None:
            continue
        name = Path(path).name
        if not (re.fullmatch(r".*__\d\.npy", name) or name.endswith(MANIFEST_SUFFIX)):
            continue
        real = Path(os.path.realpath(path))
        for m, root in roots.items():
            if real.is_relative_to(os.path.realpath(root)):
                raise ExtractError(
                    f"{flag} {shown(path)} lies in the {m} feature folder {shown(root)} under a "
                    "name extraction writes (<video>__<crop>.npy, <video>.manifest.json): it "
                    f"could be overwritten; move it out of {shown(root)}. Nothing was written"
                )


def _run(args: argparse.Namespace, dataset: str, modality: str, compat: bool) -> int:
    from iefvad.cli.weights import weights_options
    from iefvad.datasets.specs import get_spec
    from iefvad.extraction.layout import (
        ExtractError,
        check_output_folders,
        event_tree_name,
        parse_shard,
        shard_from_env,
    )
    from iefvad.extraction.pipeline import RunConfig, init_distributed
    from iefvad.extraction.recipe import RecipeOptions
    from iefvad.extraction.setup import EncoderSetup, prepare_encoders

    spec = get_spec(dataset)
    if getattr(args, "event_window_us", None) or getattr(args, "event_count", None):
        return _run_event_only(args, spec, compat)
    if not args.video_dir:
        raise ExtractError("--video_dir is required (the folder of the videos)")
    if not Path(args.video_dir).expanduser().is_dir():
        raise ExtractError(f"--video_dir {args.video_dir} is not a folder; pass the video folder")
    modalities = ("image", "event") if modality == "both" else (modality,)
    image_ckpt, event_ckpt, clip_model = _encoder_choice(args, modality, compat)
    opts = RecipeOptions(args.crops, args.tail, args.threshold, args.event_norm, args.clamp)
    events = event_options(args)
    if events.source != "frames" and "event" not in modalities:
        raise ExtractError(f"--event_source {events.source} needs event features (--modality)")
    tree = event_tree_name(spec.event_dir, args.threshold)
    if not events.from_frames:
        tree = f"event_{'sim' if events.source == 'simulator' else 'dvs'}_{events.repr}"
    roots = _roots(args, modalities, tree)
    if args.shard:
        rank, world = parse_shard(args.shard)
        where = "--shard"
    else:
        rank, world, where = shard_from_env()
    _check_inputs_apart(args, roots, image_ckpt, event_ckpt, rank, world)
    if not args.dry_run:  # before the weights load: a read-only folder fails in a second
        check_output_folders(roots.values())
    if args.workers < 1:
        raise ExtractError(f"--workers must be >= 1, found {args.workers}")

    ready = prepare_encoders(
        EncoderSetup(
            modalities=modalities,
            image_ckpt=image_ckpt,
            event_ckpt=event_ckpt,
            clip_model=clip_model,
            clip_format=args.clip_format,
            random_init=args.random_init,
            random_arch=args.random_arch,
            weights=weights_options(args),
            seed=args.seed,
            device=args.device,
            precision=args.precision,
            images_per_batch=args.images_per_batch,
            compile=args.compile,
            threads=args.threads,
            workers=args.workers,
        )
    )
    cfg = RunConfig(
        video_dir=Path(args.video_dir).expanduser(),
        roots=roots,
        opts=opts,
        class_folders=spec.class_folders,
        precision=ready.precision,
        workers=args.workers,
        overwrite=args.overwrite,
        truncation_tolerance=None if args.allow_truncated else args.truncation_tolerance,
        video_list=Path(args.videos) if args.videos else None,
        rank=rank,
        world=world,
        progress=not args.no_progress,
        dataset=spec.name,
        events=events,
    )
    _log_setup(cfg, ready.encoders, ready.device, where)
    if args.dry_run:
        _print_plan(cfg, ready.encoders)
        return 0
    distributed = init_distributed() if not args.shard else False
    return _extract(cfg, ready.encoders, distributed)


def _run_event_only(args: argparse.Namespace, spec: Any, compat: bool) -> int:
    """Event features of recordings without videos (``--event_window_us``/``--event_count``)."""
    from iefvad.cli.weights import weights_options
    from iefvad.extraction.event_only import EventOnlyConfig, run_event_only
    from iefvad.extraction.layout import ExtractError, check_output_folders
    from iefvad.extraction.setup import EncoderSetup, prepare_encoders

    events = event_options(args)
    if events.source != "recordings":
        raise ExtractError(
            "--event_window_us and --event_count cut recordings: add "
            "--event_source recordings --event_dir DIR"
        )
    if args.event_window_us and args.event_count:
        raise ExtractError("give one of --event_window_us and --event_count, not both")
    if args.video_dir:
        log.warning("--video_dir is not used: --event_window_us/--event_count cut recordings alone")
    tree = f"event_dvs_{events.repr}"
    root = _roots(args, ("event",), tree)["event"]
    check_output_folders([root])
    _, event_ckpt, clip_model = _encoder_choice(args, "event", compat)
    ready = prepare_encoders(
        EncoderSetup(
            modalities=("event",),
            event_ckpt=event_ckpt,
            clip_model=clip_model,
            clip_format=args.clip_format,
            random_init=args.random_init,
            random_arch=args.random_arch,
            weights=weights_options(args),
            seed=args.seed,
            device=args.device,
            precision=args.precision,
            images_per_batch=args.images_per_batch,
            threads=args.threads,
        )
    )
    cfg = EventOnlyConfig(
        event_dir=events.event_dir,  # type: ignore[arg-type]
        root=root,
        crops=args.crops,
        repr=events.repr,  # type: ignore[arg-type]
        window_us=args.event_window_us,
        per_snippet=args.event_count,
        sensor_size=events.sensor_size,
        class_folders=spec.class_folders,
        overwrite=args.overwrite,
    )
    enc = ready.encoders.event
    assert enc is not None
    summary = run_event_only(cfg, enc, ready.encoders.batch_size)
    print(summary.text(), file=sys.stderr)
    return summary.exit_code
