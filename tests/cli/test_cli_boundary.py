"""Every script's entry goes through one error boundary (iefvad.cli.entry.run_entry): bad input is
one ``error:`` line and exit status 2, Ctrl-C is 130, a bug keeps its traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from iefvad.cli import entry as cli  # not `from ... import test_main`: pytest would collect it
from iefvad.cli.demo import main as demo_main
from iefvad.cli.extract import main as extract_main
from iefvad.cli.infer import main as infer_main
from iefvad.cli.lists import generate_file_main, generate_gt_main
from iefvad.errors import UserInputError

ROOT = Path(__file__).resolve().parents[2]
MISSING = "missing_input"  # every entry is given a file or folder of this name that is absent


def status(call: Callable[[], object]) -> int:
    """Exit status of an in-process entry point: returned, or raised as SystemExit."""
    try:
        code = call()
    except SystemExit as e:
        code = e.code
    return 0 if code is None else int(code)


# name -> (call with a missing input, the function that does the work there, to break it)
ENTRIES: dict[str, tuple[Callable[[Path], object], str]] = {
    "main.py": (
        lambda d: cli.train_main(["--train_list", f"{d}/{MISSING}.csv"]),
        "iefvad.engine.train.train",
    ),
    "test.py": (
        lambda d: cli.test_main(["--ckpt_path", f"{d}/{MISSING}.pth"]),
        "iefvad.engine.report.run_test",
    ),
    "test2.py": (
        lambda d: cli.explore_main(["--ckpt_path", f"{d}/{MISSING}.pth"]),
        "iefvad.studies.explore.run_explore",
    ),
    "ablate.py": (
        lambda d: cli.ablate_main(["--train_list", f"{d}/{MISSING}.csv", "--out_dir", str(d)]),
        "iefvad.studies.ablate.run_ablation",
    ),
    "infer.py": (
        lambda d: infer_main([f"{d}/v.mp4", "--ckpt_path", f"{d}/{MISSING}.pth"]),
        "iefvad.inference.run.run_infer",
    ),
    "extracting/extract.py": (
        lambda d: extract_main(["--video_dir", f"{d}/{MISSING}", "--save_dir", f"{d}/f"]),
        "iefvad.cli.extract._run",
    ),
    "extracting/xd_gen_img.py": (
        lambda d: extract_main(
            ["--video_dir", f"{d}/{MISSING}", "--save_dir", f"{d}/f"],
            dataset="xd",
            modality="image",
            compat=True,
        ),
        "iefvad.cli.extract._run",
    ),
    "list/generate_file.py": (
        lambda d: generate_file_main(
            ["--dataset", "custom", "--base_path", f"{d}/{MISSING}"], list_dir=d
        ),
        "iefvad.cli.lists.custom_lists",
    ),
    "list/xd_generate_gt.py": (
        lambda d: generate_gt_main(["--csv_path", f"{d}/{MISSING}.csv"], "xd", d),
        "iefvad.cli.lists.generate_gt",
    ),
    "python -m iefvad.cli.demo": (
        lambda d: demo_main(["--quick", "--out", str(d), "--clip_ckpt", f"{d}/{MISSING}.pt"]),
        "iefvad.studies.demo.run_demo",
    ),
}


@pytest.fixture(autouse=True)
def _no_traceback_env(monkeypatch, tmp_path):
    monkeypatch.delenv("IEFVAD_TRACEBACK", raising=False)
    monkeypatch.chdir(tmp_path)  # defaults (results/, demo_out/) land in the test's folder


@pytest.mark.parametrize("entry", ENTRIES)
def test_missing_input_is_one_error_line_and_status_2(entry, tmp_path, capsys):
    call, _ = ENTRIES[entry]
    assert status(lambda: call(tmp_path)) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and MISSING in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_bug_keeps_its_traceback_and_ctrl_c_is_130(entry, tmp_path, capsys, monkeypatch):
    call, target = ENTRIES[entry]
    (tmp_path / f"{MISSING}.pth").write_bytes(b"")  # never read: the work itself is replaced
    (tmp_path / f"{MISSING}.pt").write_bytes(b"")
    module, name = target.rsplit(".", 1)

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("planted bug")

    monkeypatch.setattr(f"{module}.{name}", bug)
    with pytest.raises(RuntimeError, match="planted bug"):
        call(tmp_path)
    assert "error:" not in capsys.readouterr().err

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(f"{module}.{name}", ctrl_c)
    assert status(lambda: call(tmp_path)) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted"


@pytest.mark.parametrize("entry", ["test.py", "list/xd_generate_gt.py", "extracting/extract.py"])
def test_iefvad_traceback_shows_the_traceback_of_user_errors(entry, tmp_path, monkeypatch):
    monkeypatch.setenv("IEFVAD_TRACEBACK", "1")
    with pytest.raises(UserInputError, match=MISSING):
        ENTRIES[entry][0](tmp_path)


def test_a_file_where_a_folder_goes_names_the_file(tmp_path, capsys):
    for i, folder in enumerate(("normal", "abnormal/fight", "normal", "abnormal/fight")):
        p = tmp_path / "rgb" / folder / f"v{i}__0.npy"
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, np.zeros((2, 4), np.float32))
    (tmp_path / "taken").write_text("a file, not a folder")
    train_csv = tmp_path / "taken" / "train.csv"
    argv = ["--dataset", "custom", "--base_path", str(tmp_path / "rgb"), "--test_fraction", "0.5",
            "--test_crop", "0", "--train_save_path", str(train_csv)]  # fmt: skip
    assert generate_file_main(argv, list_dir=tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'taken'}") and err.count("\n") == 1, err
    assert "Traceback" not in err


def _raise(e: BaseException) -> Callable[[], None]:
    def fn() -> None:
        raise e

    return fn


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "a/b.csv"),
         "error: a/b.csv: No such file or directory (check the path; it is relative to "),
        (PermissionError(errno.EACCES, "Permission denied", "/data/x.npy"),
         "error: /data/x.npy: Permission denied (no permission"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/data"),
         "error: /data: Is a directory (this is a folder; pass a file)"),
        (OSError(errno.EROFS, "Read-only file system", "/ro/metrics.json"),
         "error: /ro/metrics.json: Read-only file system (the filesystem is read-only"),
        (OSError(errno.ENOSPC, "No space left on device"),
         "error: No space left on device (the disk is full"),
        (OSError(errno.ENOSPC, "No space left on device", "/a/.tmp", None, "/a/x.pth"),
         "error: /a/.tmp -> /a/x.pth: No space left on device"),
    ],
)  # fmt: skip
def test_os_errors_of_user_paths_name_the_file_and_a_fix(error, expected, capsys):
    assert cli.run_entry(_raise(error)) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1, err


def test_other_os_errors_and_bare_value_errors_are_bugs():
    for e in (ConnectionResetError(errno.ECONNRESET, "reset"), OSError("no errno"), ValueError()):
        with pytest.raises(type(e)):
            cli.run_entry(_raise(e))


def test_status_passes_through_and_argparse_exits_as_before(capsys):
    assert cli.run_entry(lambda: 1) == 1 and cli.run_entry(lambda: {"auc": 1.0}) == 0
    assert cli.run_entry(lambda: True) == 0  # a bool is a result, not a status
    with pytest.raises(SystemExit) as e:
        cli.test_main(["--no_such_flag"])
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.slow
def test_scripts_in_a_subprocess(tmp_path):
    """The real scripts: a user error, the same with IEFVAD_TRACEBACK=1, a bug, Ctrl-C."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("IEFVAD_TRACEBACK", None)
    script = str(ROOT / "list" / "xd_generate_gt.py")
    argv = [script, "--csv_path", str(tmp_path / "absent.csv")]

    def run(*cmd: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *cmd], env={**env, **extra}, cwd=tmp_path,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    p = run(*argv)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("error: list file ") and "absent.csv" in p.stderr
    p = run(*argv, IEFVAD_TRACEBACK="1")
    assert p.returncode == 1 and "Traceback" in p.stderr and "absent.csv" in p.stderr
    patch = (
        "import runpy, sys, iefvad.cli.lists as m\n"
        "def boom(*a, **k):\n    raise {exc}\n"
        "m.generate_gt = boom\nsys.argv = {argv!r}\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    p = run("-c", patch.format(exc="RuntimeError('planted bug')", argv=argv))
    assert p.returncode == 1 and "Traceback" in p.stderr and "planted bug" in p.stderr
    p = run("-c", patch.format(exc="KeyboardInterrupt", argv=argv))
    assert p.returncode == 130 and p.stderr == "interrupted\n", p.stderr
