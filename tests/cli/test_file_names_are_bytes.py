"""Property 5: file names are bytes. Videos, features and lists whose names are not UTF-8
(``b'caf\\xe9.mp4'``, held by Python as lone surrogates) are extracted, listed, read back and
scored like any other; messages show the byte as ``\\xe9``; one bad name (a broken or looping
link, a name too long for its feature files) is reported and never stops the other videos."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from iefvad.cli.extract import main as extract_main
from iefvad.cli.lists import generate_file_main
from iefvad.data.csv_lists import ListError, read_list

from extract_helpers import tiny_scoring_checkpoint, torch_threads, write_video

CAFE = os.fsdecode(b"caf\xe9")  # 'caf\udce9': the Latin-1 byte of a name from an old camera
BAD = os.fsdecode(b"b\xff\xfe")
LONG = "v" * 250  # + ".mp4": a legal name, but <stem>.manifest.json would be 264 bytes


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A custom folder with non-UTF-8, long, broken and looping video names next to plain
    ones, extracted (crop 5) by extracting/extract.py's main; returns (root, exit status,
    stderr lines)."""
    root = tmp_path_factory.mktemp("bytes")
    v = root / "videos"
    for i, rel in enumerate(
        ["normal/n0", "normal/n1", f"normal/{CAFE}", "abnormal/fight/a0", f"abnormal/fight/{BAD}",
         f"normal/{LONG}"]
    ):  # fmt: skip
        plain = write_video(v / f"plain{i}.mp4", 34, (40, 30), seed=i)  # cv2 needs UTF-8
        (v / f"{rel}.mp4").parent.mkdir(parents=True, exist_ok=True)
        plain.rename(v / f"{rel}.mp4")
    (v / "normal" / "broken.mp4").symlink_to(v / "normal" / "gone.mp4")
    (v / "normal" / "loop.mp4").symlink_to("loop.mp4")
    with torch_threads(1):
        rc = extract_main(
            ["--video_dir", str(v), "--out_root", str(root / "f"), "--crops", "5",
             "--random_init", "--random_arch", "tiny", "--no_progress", "--device", "cpu",
             "--workers", "1"]
        )  # fmt: skip
    return root, rc


def test_extraction_keeps_going_past_bad_names(extracted, capsys):
    root, rc = extracted
    rgb = root / "f" / "rgb"
    assert rc == 1  # three videos could not be used, the others are done
    for rel in ("normal/n0", "normal/n1", f"normal/{CAFE}", "abnormal/fight/a0",
                f"abnormal/fight/{BAD}"):  # fmt: skip
        assert np.load(rgb / f"{rel}__5.npy").shape[0] == 2, rel
        assert (root / "f" / "event_thr_10" / f"{rel}.manifest.json").is_file()
    failures = dict(
        line.split("\t", 1)
        for line in (rgb / "extract_failures.txt")
        .read_text(encoding="utf-8", errors="surrogateescape")
        .splitlines()
    )
    assert "broken symbolic link" in failures["normal/broken.mp4"]
    assert "loops" in failures["normal/loop.mp4"]
    assert "255-byte limit" in failures[f"normal/{LONG}.mp4"]
    summary = json.loads((rgb / "extract_summary.json").read_text())
    assert f"normal/{CAFE}.mp4" in summary["done"] and len(summary["done"]) == 5


def test_lists_of_non_utf8_names_are_written_and_read_back(extracted, capsys):
    root, _ = extracted
    rgb = root / "f" / "rgb"
    train, test = root / "train.csv", root / "test.csv"
    rc = generate_file_main(
        ["--dataset", "custom", "--base_path", str(rgb), "--test_fraction", "0.5",
         "--train_save_path", str(train), "--test_save_path", str(test)]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    raw = train.read_bytes() + test.read_bytes()
    assert b"caf\xe9__5.npy" in raw and b"b\xff\xfe__5.npy" in raw  # the names' own bytes
    rows = read_list(train, event_dir="event_thr_10") + read_list(test, event_dir="event_thr_10")
    assert {r.stem for r in rows} == {"n0", "n1", CAFE, "a0", BAD}
    assert all(r.path.is_file() and r.event_path.is_file() for r in rows)


def test_a_latin1_list_is_still_an_encoding_error(tmp_path):
    """Bytes that name no file are not a file name's: the list is in another encoding."""
    bad = tmp_path / "train.csv"
    bad.write_bytes(b"path,label\nx__5.npy,caf\xe9\n")
    with pytest.raises(ListError, match=r"is not UTF-8 text: byte 0xe9 .* \(line 2\)"):
        read_list(bad)
    bad.write_bytes(b"path,label\nmissing_caf\xe9__5.npy,normal\n")
    with pytest.raises(ListError, match=r"is not UTF-8 text: byte 0xe9"):
        read_list(bad)


def test_infer_scores_a_non_utf8_video_next_to_a_plain_one(extracted, tmp_path, capsys):
    from iefvad.cli.infer import main

    root, _ = extracted
    videos = [root / "videos" / "normal" / f"{CAFE}.mp4", root / "videos" / "normal" / "n0.mp4"]
    ckpt = tiny_scoring_checkpoint(tmp_path / "tiny.pth")
    with torch_threads(1), pytest.raises(SystemExit) as e:
        main([*map(str, videos), "--ckpt_path", str(ckpt), "--out_dir", str(tmp_path / "o")])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "caf\\xe9.mp4: 34 frames" in out  # the byte shown escaped, no UnicodeEncodeError
    with open(tmp_path / "o" / f"{CAFE}.csv", newline="") as f:
        assert len(list(csv.reader(f))) == 35
    js = json.loads((tmp_path / "o" / f"{CAFE}.json").read_text())
    assert js["video"] == str(videos[0]) and js["frames"] == 34
    assert (tmp_path / "o" / f"{CAFE}.png").is_file()


def test_opening_a_non_utf8_video_does_not_crash_the_decoder(extracted):
    from iefvad.video.decode import open_video

    root, _ = extracted
    cap, info = open_video(root / "videos" / "normal" / f"{CAFE}.mp4")
    try:
        assert cap.isOpened() and info.frames_reported == 34
        assert cap.read()[0]
    finally:
        cap.release()
