"""Train-time resampling and test-time chunking against the reference's loops."""

from __future__ import annotations

import numpy as np
import pytest

from iefvad.data.features import chunk, resample


def uniform_extract(feat, t_max):
    """VadCLIP tools.uniform_extract (avg=True), verbatim in behaviour."""
    new_feat = np.zeros((t_max, feat.shape[1])).astype(np.float32)
    r = np.linspace(0, len(feat), t_max + 1, dtype=np.int32)
    for i in range(t_max):
        if r[i] != r[i + 1]:
            new_feat[i, :] = np.mean(feat[r[i] : r[i + 1], :], 0)
        else:
            new_feat[i, :] = feat[r[i], :]
    return new_feat


def process_split(feat, length):
    """VadCLIP tools.process_split: int(T/len)+1 chunks (one may be all padding)."""
    clip_num = feat.shape[0]
    if clip_num < length:
        return np.pad(feat, ((0, length - clip_num), (0, 0)))[None]
    n = int(clip_num / length) + 1
    out = np.zeros((n, length, feat.shape[1]), np.float32)
    for i in range(n):
        part = feat[i * length : (i + 1) * length]
        out[i, : len(part)] = part
    return out


@pytest.mark.parametrize("t", [1, 100, 255, 256, 257, 300, 511, 1000, 4097])
def test_resample_matches_reference(t):
    feat = np.random.default_rng(t).standard_normal((t, 6)).astype(np.float32)
    got, length = resample(feat)
    assert got.shape == (256, 6) and got.dtype == np.float32
    assert length == min(t, 256)
    if t > 256:
        np.testing.assert_allclose(got, uniform_extract(feat, 256), rtol=0, atol=2e-6)
    else:
        np.testing.assert_array_equal(got[:t], feat)
        assert not got[t:].any()


@pytest.mark.parametrize("t", [1, 255, 256, 257, 512, 700])
def test_chunk_keeps_the_reference_snippets(t):
    feat = np.random.default_rng(t).standard_normal((t, 4)).astype(np.float32)
    got = chunk(feat)
    ref = process_split(feat, 256)
    assert got.shape[0] == -(-t // 256)
    # same first T snippets once flattened; the reference's extra all-zero chunk (T a multiple
    # of 256) holds no snippet of the video
    np.testing.assert_array_equal(got.reshape(-1, 4)[:t], ref.reshape(-1, 4)[:t])
    assert not got.reshape(-1, 4)[t:].any()


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_load_npy_equals_np_load_from_many_threads(tmp_path, order, dtype):
    """load_npy parses headers under a lock (CPython 3.11 ast race) and reads data itself."""
    from concurrent.futures import ThreadPoolExecutor

    from iefvad.fileio import load_npy

    rng = np.random.default_rng(0)
    paths = []
    for i in range(16):
        a = np.asarray(rng.standard_normal((5 + i, 7)), dtype=dtype, order=order)
        np.save(tmp_path / f"{i}.npy", a)
        paths.append(tmp_path / f"{i}.npy")
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(load_npy, paths * 4))
    for p, a in zip(paths * 4, got):
        want = np.load(p)
        assert a.dtype == want.dtype and a.flags.f_contiguous == want.flags.f_contiguous
        np.testing.assert_array_equal(a, want)


def test_load_npy_reports_a_truncated_file(tmp_path):
    from iefvad.fileio import load_npy

    p = tmp_path / "t.npy"
    np.save(p, np.ones((10, 4), np.float32))
    p.write_bytes(p.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"truncated: .* holds 38 of its 40 values"):
        load_npy(p)
