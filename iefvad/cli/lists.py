"""Command lines of ``list/generate_file.py`` and ``list/generate_gt.py`` (and the seed twins)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from iefvad.cli.aliases import HelpFormatter
from iefvad.cli.entry import run_entry
from iefvad.data.csv_lists import ListError
from iefvad.data.groundtruth import generate_gt, sidecar_path
from iefvad.data.list_rules import DEFAULT_TEST_CROP, SPLITS, default_paths
from iefvad.data.lists import benchmark_lists, custom_lists, write_lists
from iefvad.datasets.specs import DATASETS, get_spec
from iefvad.errors import UserInputError
from iefvad.paths import check_outputs

# --------------------------------------------------------------------------- command line


@contextmanager
def _cli_warnings() -> Iterator[None]:
    """Print every warning as one ``warning: ...`` line on stderr."""

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield


def _dataset_arg(p: argparse.ArgumentParser, dataset: str | None) -> None:
    if dataset is None:
        p.add_argument("--dataset", required=True, choices=DATASETS)
    else:
        p.add_argument("--dataset", default=dataset, choices=[dataset], help=argparse.SUPPRESS)


def file_parser(dataset: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Write the train/test list CSVs (path,label) of a feature tree.",
        formatter_class=HelpFormatter,
    )
    _dataset_arg(p, dataset)
    p.add_argument(
        "--base_path",
        required=True,
        help="root of the image features: <root>/[<Class>/]<video>__<crop>.npy",
    )
    p.add_argument("--train_save_path", help="train CSV (default list/<dataset>/train.csv)")
    p.add_argument("--test_save_path", help="test CSV (default list/<dataset>/test.csv)")
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="standard",
        help="benchmark split: standard or the reference's ief-vad lists",
    )
    p.add_argument(
        "--test_crop",
        type=int,
        default=DEFAULT_TEST_CROP,
        help="crop used for test rows",
    )
    p.add_argument(
        "--absolute",
        action="store_true",
        help="write absolute paths (default: relative to the CSV's folder)",
    )
    p.add_argument(
        "--skip_unknown",
        action="store_true",
        help="leave out feature videos that are in no split file (default: error)",
    )
    p.add_argument(
        "--event_base_path",
        help="root of the parallel event-feature tree: adds an event_path column",
    )
    g = p.add_argument_group("custom data (--dataset custom)")
    g.add_argument("--test_list", help="file of test video names, one per line")
    g.add_argument(
        "--test_fraction", type=float, help="draw this fraction of every class as test videos"
    )
    g.add_argument("--seed", type=int, default=0, help="seed of --test_fraction")
    g.add_argument(
        "--frame_lbl_txt",
        help="annotations CSV video,start_frame,end_frame[,class] of the test videos",
    )
    return p


def generate_file_main(
    argv: Sequence[str] | None = None,
    dataset: str | None = None,
    list_dir: str | os.PathLike[str] | None = None,
) -> int:
    """``list/generate_file.py``: parse arguments, build and write the lists; exit status."""
    return run_entry(lambda: _generate_file(argv, dataset, list_dir))


def _generate_file(
    argv: Sequence[str] | None,
    dataset: str | None,
    list_dir: str | os.PathLike[str] | None,
) -> int:
    args = file_parser(dataset).parse_args(argv)
    defaults = default_paths(args.dataset, list_dir)
    train_path = Path(args.train_save_path or defaults.train)
    test_path = Path(args.test_save_path or defaults.test)
    custom_only = [
        f"--{n}"
        for n in ("test_list", "test_fraction", "frame_lbl_txt")
        if getattr(args, n) is not None
    ]
    check_outputs(
        [("--train_save_path", train_path), ("--test_save_path", test_path)],
        [("--test_list", args.test_list), ("--frame_lbl_txt", args.frame_lbl_txt)],
    )
    with _cli_warnings():
        if get_spec(args.dataset).user_data:
            if args.split != "standard":
                raise UserInputError("--split applies to the benchmarks, not to custom data")
            lists = custom_lists(
                args.base_path,
                args.test_list,
                args.test_fraction,
                args.seed,
                args.test_crop,
                args.frame_lbl_txt,
                args.event_base_path,
            )
        else:
            if custom_only:
                raise UserInputError(
                    f"{', '.join(custom_only)} apply to --dataset custom only; the "
                    f"{args.dataset} split comes from its shipped files (--split)"
                )
            lists = benchmark_lists(
                args.dataset,
                args.base_path,
                args.split,
                args.test_crop,
                args.skip_unknown,
                args.event_base_path,
            )
        if not lists.train and not lists.test:
            raise ListError(f"no video under {args.base_path} belongs to a split")
        write_lists(lists, train_path, test_path, relative=not args.absolute)
    for note in lists.notes:
        print(f"note: {note}")
    if lists.train:
        print(f"train: {lists.train_videos} videos, {len(lists.train)} rows -> {train_path}")
    else:
        print(f"train: no videos, {train_path} not written")
    if lists.test:
        print(f"test: {lists.test_videos} videos (crop {args.test_crop}) -> {test_path}")
    else:
        print(f"test: no videos, {test_path} not written")
    return 0


def gt_parser(dataset: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Write the frame-level ground truth (.npy + .json sidecar) of a test list.",
        formatter_class=HelpFormatter,
    )
    _dataset_arg(p, dataset)
    p.add_argument("--csv_path", help="test CSV (default list/<dataset>/test.csv)")
    p.add_argument("--save_path", help="ground-truth .npy (default list/<dataset>/gt.npy)")
    p.add_argument(
        "--frame_lbl_txt",
        help="annotation file (default: the shipped one of the dataset and --split)",
    )
    p.add_argument(
        "--split",
        choices=SPLITS,
        default="standard",
        help="picks the shipped annotation file (XD: standard or the reference's)",
    )
    p.add_argument("--data_root", help="resolve relative CSV paths here (default: CSV folder)")
    return p


def generate_gt_main(
    argv: Sequence[str] | None = None,
    dataset: str | None = None,
    list_dir: str | os.PathLike[str] | None = None,
) -> int:
    """``list/generate_gt.py``: parse arguments, write the ground truth; exit status."""
    return run_entry(lambda: _generate_gt(argv, dataset, list_dir))


def _generate_gt(
    argv: Sequence[str] | None,
    dataset: str | None,
    list_dir: str | os.PathLike[str] | None,
) -> int:
    args = gt_parser(dataset).parse_args(argv)
    defaults = default_paths(args.dataset, list_dir)
    csv_path = Path(args.csv_path or defaults.test)
    save_path = Path(args.save_path or defaults.gt)
    check_outputs(
        [("--save_path", save_path), ("--save_path's sidecar", sidecar_path(save_path))],
        [("--csv_path", csv_path), ("--frame_lbl_txt", args.frame_lbl_txt)],
    )
    with _cli_warnings():
        s = generate_gt(
            args.dataset, csv_path, save_path, args.frame_lbl_txt, args.split, args.data_root
        )
    share = 100.0 * s.abnormal_frames / max(1, s.frames)
    print(
        f"ground truth: {len(s.videos)} videos, {s.frames} frames ({share:.2f}% abnormal) "
        f"from {s.annotations or 'no annotation file'} -> {s.path} "
        f"(+ {s.path.with_suffix('.json').name})"
    )
    return 0
