"""``--train_sample pick``: one random snippet per bin of the reference's resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iefvad.data.features import resample_bounds
from iefvad.engine.sampling import pick_positions, pick_rows, store_length


@pytest.mark.parametrize("length", [257, 300, 600, 1000, 4096])
def test_one_position_in_each_bin_of_the_mean(length):
    n = 256
    g = torch.Generator().manual_seed(length)
    pos = pick_positions(torch.tensor([length]), n, g)[0].numpy()
    edges = resample_bounds(length, n)
    assert ((pos >= edges[:-1]) & (pos < edges[1:])).all()
    assert pos.max() < length


def test_short_rows_are_kept_as_stored_and_draws_vary():
    lengths = torch.tensor([5, 8, 2000])
    a = pick_positions(lengths, 8, torch.Generator().manual_seed(0))
    b = pick_positions(lengths, 8, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], torch.arange(8)) and torch.equal(a[1], torch.arange(8))
    assert not torch.equal(a[2], b[2])  # a fresh draw each step
    # every snippet of a long row is reachable
    seen = set()
    g = torch.Generator().manual_seed(3)
    for _ in range(400):
        seen |= set(pick_positions(torch.tensor([24]), 8, g)[0].tolist())
    assert seen == set(range(24))


def test_pick_rows_uses_the_same_snippets_in_both_streams():
    x = torch.arange(2 * 30, dtype=torch.float32).reshape(2, 30, 1).expand(2, 30, 3)
    img, evt, lengths = pick_rows(x, x + 1000, torch.tensor([30, 6]), 10)
    assert img.shape == (2, 10, 3) and lengths.tolist() == [10, 6]
    assert torch.equal(evt, img + 1000)
    assert torch.equal(img[1, :, 0], x[1, :10, 0])  # the short row: as stored (padding after 6)


def test_store_length_fits_the_memory_limit():
    assert store_length([100, 600, 300], 256, 64) == 600
    assert store_length([100, 200], 256, 64) == 256  # never below train_len
    # 1,000 rows of width 768 in 64 MiB: 10 snippets fit, so train_len
    assert store_length([5000] * 1000, 256, 768, 64 << 20) == 256
    assert store_length([5000] * 10, 256, 64, 10 * 8 * 64 * 1000) == 1000


def test_pick_training_reads_full_rows_and_steps_at_train_len(synth_set, tmp_path, monkeypatch):
    import iefvad.engine.train as train_mod
    from iefvad.cli.options import resolve_train, train_parser

    seen = {"bank": set(), "step": set()}
    real_bank, real_loss = train_mod.build_bank, train_mod.ief_vad_loss

    def bank(*a, **k):
        b = real_bank(*a, **k)
        seen["bank"].add(b.image.shape[1])
        return b

    def loss(out, labels, lengths, *a, **k):
        seen["step"].add(int(lengths.max()))
        return real_loss(out, labels, lengths, *a, **k)

    monkeypatch.setattr(train_mod, "build_bank", bank)
    monkeypatch.setattr(train_mod, "ief_vad_loss", loss)
    args = train_parser().parse_args(
        [
            "--dataset", "ucfcrime", "--train_list", str(synth_set.train_csv), "--no_test",
            "--ckpt_dir", str(tmp_path), "--exp_name", "p", "--no_progress", "--batch_size",
            "4", "--max_epoch", "1", "--heads", "2", "--refine_steps", "1", "--embed_dim",
            "32", "--train_len", "16", "--train_sample", "pick",
        ]
    )  # fmt: skip
    cfg = resolve_train(args)[0]
    train_mod.train(cfg)
    longest = max(np.load(r).shape[0] for r in _paths(synth_set.train_csv))
    assert seen == {"bank": {longest}, "step": {16}}


def _paths(csv):
    from iefvad.data.csv_lists import read_list

    return [r.path for r in read_list(csv, event_dir="event_thr_10")]
