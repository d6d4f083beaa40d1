"""Property 1: no output destroys an input. In every script an output that is the same file as
one of the command's inputs (the same path, a symbolic or a hard link), or as another output,
is refused before anything is written (exit 2, both paths named)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from iefvad.cli.lists import generate_file_main, generate_gt_main
from iefvad.paths import PathClashError, check_outputs, same_file


def make_custom_tree(root: Path) -> None:
    """normal/n0..n3 and abnormal/fight/a0..a3 image features (one crop, T = 3, D = 4)."""
    for rel in [f"normal/n{i}" for i in range(4)] + [f"abnormal/fight/a{i}" for i in range(4)]:
        p = root / f"{rel}__5.npy"
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, np.zeros((3, 4), np.float32))


def link(kind: str, target: Path, at: Path) -> Path:
    """``at`` as the same file as ``target``: the same path, a symbolic or a hard link."""
    if kind == "same":
        return target
    if kind == "symlink":
        at.symlink_to(target)
    else:
        os.link(target, at)
    return at


# ----------------------------------------------------------------------------- the helper


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink"])
def test_same_file_sees_links(tmp_path, kind):
    a = tmp_path / "a.csv"
    a.write_text("x")
    assert same_file(link(kind, a, tmp_path / "b.csv"), a)
    assert not same_file(tmp_path / "c.csv", a)
    # an output that does not exist yet, reached through a linked folder
    (tmp_path / "d").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "d")
    assert same_file(tmp_path / "alias" / "new.csv", tmp_path / "d" / "new.csv")


def test_check_outputs_names_both_paths(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("x")
    with pytest.raises(PathClashError, match=r"--out .*a\.csv is the same file as the input "):
        check_outputs([("--out", a)], [("--list", a)])
    with pytest.raises(PathClashError, match=r"--x .* and --y .* are the same file"):
        check_outputs([("--x", tmp_path / "o"), ("--y", tmp_path / "." / "o")])
    check_outputs([("--x", tmp_path / "o"), ("--y", None)], [("--list", a)])  # no clash


# ----------------------------------------------------------------------------- list/*


def test_generate_file_same_train_and_test_path_is_refused(tmp_path, capsys):
    make_custom_tree(tmp_path / "rgb")
    out = tmp_path / "lists" / "both.csv"
    rc = generate_file_main(
        ["--dataset", "custom", "--base_path", str(tmp_path / "rgb"), "--test_fraction", "0.5",
         "--train_save_path", str(out), "--test_save_path", str(out)]
    )  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "--train_save_path" in err and "--test_save_path" in err and "same file" in err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink"])
def test_generate_file_output_onto_its_test_list_is_refused(tmp_path, capsys, kind):
    make_custom_tree(tmp_path / "rgb")
    names = tmp_path / "test_videos.txt"
    names.write_text("n0\na0\n")
    out = link(kind, names, tmp_path / "alias.txt")
    rc = generate_file_main(
        ["--dataset", "custom", "--base_path", str(tmp_path / "rgb"), "--test_list", str(names),
         "--train_save_path", str(tmp_path / "train.csv"), "--test_save_path", str(out)]
    )  # fmt: skip
    assert rc == 2
    assert "is the same file as the input --test_list" in capsys.readouterr().err
    assert names.read_text() == "n0\na0\n"
    assert not (tmp_path / "train.csv").exists()


@pytest.mark.parametrize("kind", ["same", "hardlink"])
def test_generate_gt_onto_its_csv_or_annotations_is_refused(tmp_path, capsys, kind):
    csv = tmp_path / "test.csv"
    csv.write_text("path,label\nx__5.npy,normal\n")
    rc = generate_gt_main(
        ["--dataset", "custom", "--csv_path", str(csv),
         "--save_path", str(link(kind, csv, tmp_path / "gt.npy"))]
    )  # fmt: skip
    assert rc == 2
    assert "the same file as the input --csv_path" in capsys.readouterr().err
    assert csv.read_text() == "path,label\nx__5.npy,normal\n"
    # the sidecar gt.json would land on the annotation file
    ann = tmp_path / "g2.json"
    ann.write_text("video,start_frame,end_frame\n")
    rc = generate_gt_main(
        ["--dataset", "custom", "--csv_path", str(csv), "--frame_lbl_txt", str(ann),
         "--save_path", str(tmp_path / "g2.npy")]
    )  # fmt: skip
    assert rc == 2
    assert "the same file as the input --frame_lbl_txt" in capsys.readouterr().err
    assert ann.read_text() == "video,start_frame,end_frame\n"


# ----------------------------------------------------------------------------- main.py, test.py


def test_training_output_onto_an_input_is_refused_before_training(synth_set, tmp_path):
    from iefvad.engine.train import train

    from conftest import synth_train_cfg

    ckpt_dir = tmp_path / "ck"
    ckpt_dir.mkdir()
    gt = link("symlink", synth_set.gt_path, ckpt_dir / "config.json")
    cfg = synth_train_cfg(synth_set, ckpt_dir, "x", "--gt_path", str(gt))
    before = synth_set.gt_path.read_bytes()
    with pytest.raises(PathClashError, match=r"config\.json is the same file as the input"):
        train(cfg)
    assert synth_set.gt_path.read_bytes() == before
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["config.json"]


def test_test_py_metrics_json_onto_the_test_list_is_refused(synth_set, tmp_path):
    from iefvad.cli.options import evaluation_config, test_parser
    from iefvad.engine.report import run_test

    before = synth_set.test_csv.read_bytes()
    args = test_parser().parse_args(
        ["--ckpt_path", str(tmp_path / "never_read.pth"), "--test_list", str(synth_set.test_csv),
         "--metrics_json", str(synth_set.test_csv), "--out_dir", str(tmp_path / "o")]
    )  # fmt: skip
    with pytest.raises(PathClashError, match="--metrics_json .* the same file as the input"):
        run_test(evaluation_config(args))
    assert synth_set.test_csv.read_bytes() == before


def test_test2_output_onto_the_test_list_is_refused(synth_set, tmp_path):
    from iefvad.cli.explore import explore_config, explore_parser
    from iefvad.studies.explore import run_explore

    out = tmp_path / "o"
    out.mkdir()
    link("hardlink", synth_set.test_csv, out / "uncertainty.csv")
    before = synth_set.test_csv.read_bytes()
    args = explore_parser().parse_args(
        ["--ckpt_path", str(tmp_path / "never_read.pth"), "--test_list", str(synth_set.test_csv),
         "--out_dir", str(out)]
    )  # fmt: skip
    with pytest.raises(PathClashError, match="uncertainty.csv is the same file as the input"):
        run_explore(explore_config(args))
    assert synth_set.test_csv.read_bytes() == before


def test_ablate_output_onto_the_train_list_is_refused(synth_set, tmp_path):
    from iefvad.cli.ablate import ablation_config, ablation_parser
    from iefvad.studies.ablate import run_ablation

    out = tmp_path / "o"
    out.mkdir()
    link("symlink", synth_set.train_csv, out / "runs.csv")
    before = synth_set.train_csv.read_bytes()
    argv = ["--train_list", str(synth_set.train_csv), "--test_list", str(synth_set.test_csv),
            "--gt_path", str(synth_set.gt_path), "--out_dir", str(out),
            "--variants", "concat"]  # fmt: skip
    with pytest.raises(PathClashError, match="runs.csv is the same file as the input"):
        run_ablation(ablation_config(ablation_parser().parse_args(argv), argv))
    assert synth_set.train_csv.read_bytes() == before


# ----------------------------------------------------------------- infer, extraction, demo


def test_infer_outputs_never_land_on_its_inputs(tmp_path, monkeypatch):
    from iefvad.inference import run as infer_run
    from iefvad.inference.offline import OfflineConfig, plan_outputs
    from iefvad.inference.run import InferConfig, run_infer
    from iefvad.inference.session import SessionConfig

    out = tmp_path / "o"
    out.mkdir()
    ckpt = out / "v.json"  # infer.py v.mp4 writes o/v.json: this name is taken, v-2 is used
    ckpt.write_bytes(b"not a result")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not read")
    offline = OfflineConfig((str(video),), out, plots=False)
    assert plan_outputs(offline) == ["v-2"]
    # the check itself, on an output name that would be the checkpoint
    monkeypatch.setattr(infer_run, "plan_outputs", lambda cfg: ["v"])
    with pytest.raises(PathClashError, match="the same file as the input --ckpt_path"):
        run_infer(InferConfig(SessionConfig(ckpt), offline))
    assert ckpt.read_bytes() == b"not a result"


def test_extraction_output_onto_its_video_list_is_refused(tmp_path, capsys):
    from iefvad.cli.extract import main

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"x")
    rgb = tmp_path / "f" / "rgb"
    rgb.mkdir(parents=True)
    listed = rgb / "extract_failures.txt"  # the run's failures file
    listed.write_text("a.mp4\n")
    rc = main(
        ["--video_dir", str(videos), "--save_dir", str(rgb), "--modality", "image",
         "--videos", str(listed), "--random_init", "--random_arch", "tiny", "--device", "cpu"]
    )  # fmt: skip
    assert rc == 2
    assert "the same file as the input --videos" in capsys.readouterr().err
    assert listed.read_text() == "a.mp4\n"


def test_demo_weights_inside_the_folders_it_writes_are_refused(tmp_path, capsys):
    from iefvad.cli.demo import main

    weights = tmp_path / "demo" / "checkpoints" / "clip.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"w")
    with pytest.raises(SystemExit) as e:
        main(["--out_dir", str(tmp_path / "demo"), "--clip_ckpt", str(weights), "--quick"])
    assert e.value.code == 2
    assert "--clip_ckpt" in capsys.readouterr().err
    assert weights.read_bytes() == b"w"
