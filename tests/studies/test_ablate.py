"""ablate.py: variants, seeds, the table and the plot."""

from __future__ import annotations

import csv
import json

import pytest

from iefvad.cli.ablate import run as run_ablation
from iefvad.cli.entry import ablate_main
from iefvad.errors import UserInputError
from iefvad.studies.ablate import markdown_table, parse_synth, parse_variant

TINY = [
    "--synth",
    "train_normal=4",
    "train_abnormal=4",
    "test_normal=3",
    "test_abnormal=3",
    "dim=16",
    "crops=1",
    "--max_epoch",
    "1",
    "--batch_size",
    "2",
    "--lr",
    "1e-3",
    "--milestones",
    "--heads",
    "2",
    "--refine_steps",
    "1",
    "--no_progress",
]


def test_variant_and_synth_specs_parse_with_types():
    v = parse_variant("student_t:nu=2:mask_padding=false:robust_steps=3")
    assert v.model == {"fusion": "student_t", "nu": 2.0, "mask_padding": False, "robust_steps": 3}
    assert v.label == "student_t:nu=2:mask_padding=false:robust_steps=3" and v.fusion == "student_t"
    with pytest.raises(UserInputError, match="--variants: unknown fusion 'kalmann'"):
        parse_variant("kalmann")
    with pytest.raises(UserInputError, match="'nuu=2' .* is not field=value"):
        parse_variant("student_t:nuu=2")
    with pytest.raises(UserInputError, match="nu='x' is not a valid"):
        parse_variant("student_t:nu=x")
    s = parse_synth(["signal_modality=image", "burst_fraction=0.25", "dim=8"])
    assert (s.signal_modality, s.burst_fraction, s.dim) == ("image", 0.25, 8)
    with pytest.raises(UserInputError, match="--synth: 'foo=1'"):
        parse_synth(["foo=1"])


def test_ablation_writes_table_csv_and_plot_and_reuses_runs(tmp_path):
    out = tmp_path / "abl"
    argv = [*TINY, "--variants", "reference", "concat", "--seeds", "0", "1"]
    summary = run_ablation([*argv, "--out_dir", str(out)])
    assert [r["variant"] for r in summary] == ["reference", "concat"]
    assert all(r["seeds"] == 2 and r["auc_std"] is not None for r in summary)
    assert summary[1]["parameters"] > summary[0]["parameters"]  # concat adds a projection
    runs = list(csv.DictReader(open(out / "runs.csv")))
    assert [(r["variant"], r["seed"]) for r in runs] == [
        ("reference", "0"),
        ("reference", "1"),
        ("concat", "0"),
        ("concat", "1"),
    ]
    assert runs[0]["auc"] != runs[1]["auc"] or runs[0]["ap"] != runs[1]["ap"]  # seeds differ
    md = (out / "ablation.md").read_text()
    assert "Command: `python ablate.py --synth" in md and "| reference | " in md
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table) == 4  # header, rule, two variants
    assert (out / "ablation.png").stat().st_size > 10_000
    meta = json.loads((out / "ablation.json").read_text())
    assert meta["seeds"] == [0, 1] and "CPUs" in meta["machine"]
    # a second call with --reuse reads the finished runs instead of training again
    again = run_ablation([*argv, "--out_dir", str(out), "--reuse", "--no_plot"])
    assert again == summary
    assert "± " in markdown_table(summary)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--fusion", "kalman"], "ablate.py sets --fusion per run"),
        (["--train_list", "x.csv"], "--synth generates its own lists: drop --train_list"),
        (["--variants", "reference", "reference"], "lists a variant twice"),
        (["--resume"], "--resume does not apply to ablate.py"),
    ],
)
def test_ablation_rejects_flags_it_would_otherwise_ignore(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        ablate_main([*TINY, "--out_dir", str(tmp_path), *extra])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_ablation_without_lists_says_what_to_pass(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ablate_main(["--train_list", str(tmp_path / "none.csv"), "--out_dir", str(tmp_path)])
    assert "pass --train_list" in capsys.readouterr().err


def test_ablate_names_its_preset_and_what_it_sets_beyond_the_named_flags(tmp_path):
    """Custom data gets the small preset under --preset auto, and with it feature noise 1 even
    when batch, lr, epochs and lam are given: the documented demo tables were made without it,
    so their commands say --preset paper. The first lines say which was used."""
    from iefvad.cli.ablate import ablation_config, ablation_parser

    argv = ["--dataset", "custom", "--train_list", "t.csv", "--batch_size", "4", "--lr", "1e-3",
            "--max_epoch", "60", "--milestones", "--lam", "0.01"]  # fmt: skip
    auto = ablation_config(ablation_parser().parse_args(argv), argv)
    paper = ablation_config(ablation_parser().parse_args([*argv, "--preset", "paper"]), argv)
    assert auto.preset.startswith("small (--preset auto") and auto.base.feature_noise == 1.0
    assert paper.preset.startswith("paper (") and paper.base.feature_noise == 0.0
    assert (auto.base.batch_size, auto.base.max_epoch) == (paper.base.batch_size, 60)
