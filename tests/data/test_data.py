"""The training bank (read once, resampled once) and the batch samplers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iefvad.data.bank import BatchSampler, DeviceBank, build_bank
from iefvad.data.csv_lists import read_list
from iefvad.data.features import resample
from iefvad.datasets.specs import get_spec
from iefvad.errors import UserInputError


def test_bank_rows_equal_per_file_resampling(synth_set, tmp_path):
    spec = get_spec("ucfcrime")
    rows = read_list(synth_set.train_csv, event_dir=spec.event_dir)
    bank = build_bank(rows, spec, progress=False)
    assert bank.image.shape == (len(rows), 256, 32)
    for i in (0, 7, len(rows) - 1):
        img, n = resample(np.load(rows[i].path))
        evt, _ = resample(np.load(rows[i].event_path))
        np.testing.assert_array_equal(bank.image[i], img)
        np.testing.assert_array_equal(bank.event[i], evt)
        assert bank.lengths[i] == n
        assert bank.labels[i] == (0.0 if rows[i].label == "Normal" else 1.0)

    cached = build_bank(rows, spec, cache_dir=tmp_path / "cache", progress=False)
    again = build_bank(rows, spec, cache_dir=tmp_path / "cache", progress=False)
    assert isinstance(again.image, np.memmap)  # second run reads the cache
    np.testing.assert_array_equal(np.asarray(again.event), bank.event)
    np.testing.assert_array_equal(again.lengths, cached.lengths)

    dev = DeviceBank(again, torch.device("cpu"))  # memory-mapped: gathered on the host
    assert not dev.resident
    idx = np.array([5, 2, 9])
    img, evt, lengths, labels = dev.gather(idx)
    np.testing.assert_array_equal(img.numpy(), bank.image[idx])
    np.testing.assert_array_equal(lengths.numpy(), bank.lengths[idx])


@pytest.mark.parametrize("damage", ["meta_json", "truncated_npy", "missing_npy", "wrong_rows"])
def test_a_damaged_cache_entry_is_reported_and_rebuilt(synth_set, tmp_path, damage):
    spec = get_spec("ucfcrime")
    rows = read_list(synth_set.train_csv, event_dir=spec.event_dir)
    fresh = build_bank(rows, spec, progress=False)
    build_bank(rows, spec, cache_dir=tmp_path, progress=False)
    (entry,) = tmp_path.glob("bank-*")
    if damage == "meta_json":
        (entry / "meta.json").write_text('{"rows": 3, "len')
    elif damage == "truncated_npy":
        data = (entry / "image.npy").read_bytes()
        (entry / "image.npy").write_bytes(data[: len(data) // 3])
    elif damage == "missing_npy":
        (entry / "event.npy").unlink()
    else:
        (entry / "meta.json").write_text('{"rows": 2, "lengths": [3, 4]}')
    with pytest.warns(UserWarning, match=rf"--cache_dir entry {entry} is damaged .*rebuilding"):
        again = build_bank(rows, spec, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(np.asarray(again.image), fresh.image)
    np.testing.assert_array_equal(np.asarray(again.event), fresh.event)
    np.testing.assert_array_equal(again.lengths, fresh.lengths)
    reread = build_bank(rows, spec, cache_dir=tmp_path, progress=False)  # the rebuilt entry
    assert isinstance(reread.image, np.memmap)
    np.testing.assert_array_equal(np.asarray(reread.image), fresh.image)


def test_paired_sampler_takes_normal_then_abnormal():
    labels = np.array([0] * 10 + [1] * 7, dtype=np.float32)
    s = BatchSampler(labels, batch_size=3, paired=True, seed=0)
    assert len(s) == 2  # min(10 // 3, 7 // 3)
    batches = list(s.epoch())
    assert len(batches) == 2
    seen = np.concatenate(batches)
    assert len(set(seen.tolist())) == seen.size  # no repeats within an epoch
    for b in batches:
        assert (labels[b[:3]] == 0).all() and (labels[b[3:]] == 1).all()
    # seeded: the same order again
    again = list(BatchSampler(labels, 3, True, seed=0).epoch())
    assert all((a == b).all() for a, b in zip(batches, again))


def test_mixed_sampler_and_too_large_batches():
    labels = np.array([0, 1] * 5, dtype=np.float32)
    s = BatchSampler(labels, batch_size=4, paired=False, seed=1)
    assert len(s) == 2 and all(b.size == 4 for b in s.epoch())
    with pytest.raises(UserInputError, match="needs at least 8 normal and 8 abnormal"):
        BatchSampler(labels, batch_size=8, paired=True, seed=0)
