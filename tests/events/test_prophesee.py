"""The Prophesee decoders against words built by hand from the published format descriptions
(docs.prophesee.ai, "Data Encoding Formats"), independently of the test encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iefvad.events.readers import open_recording
from iefvad.events.types import Events


def raw(tmp_path: Path, header: str, words: list[int], dtype: str, name: str = "r.raw") -> Path:
    path = tmp_path / name
    path.write_bytes(header.encode() + np.asarray(words, dtype).tobytes())
    return path


def read(path: Path, **kw) -> list[tuple[int, int, int, int]]:
    with open_recording(path, **kw) as rec:
        ev = Events.concat(list(rec))
    return list(zip(ev.t.tolist(), ev.x.tolist(), ev.y.tolist(), ev.p.tolist()))


def evt2_cd(p: int, ts: int, x: int, y: int) -> int:
    return (p << 28) | (ts << 22) | (x << 11) | y


def test_evt2_words(tmp_path: Path) -> None:
    words = [
        evt2_cd(0, 1, 5, 5),  # before any TIME_HIGH: dropped, as Prophesee's decoder does
        (0x8 << 28) | 1,  # TIME_HIGH 1: 64 us
        evt2_cd(1, 5, 100, 200),
        (0xA << 28) | 123,  # EXT_TRIGGER: not a CD event
        evt2_cd(0, 63, 2047, 0),
        (0x8 << 28) | 0x0FFFFFFF,  # the last time base before the 34-bit time wraps
        evt2_cd(1, 2, 3, 4),
        (0x8 << 28) | 0,  # wrapped
        evt2_cd(0, 7, 1, 1),
    ]
    path = raw(tmp_path, "% evt 2.0\n% geometry 2048x2048\n% end\n", words, "<u4")
    assert read(path) == [
        (69, 100, 200, 1),
        (127, 2047, 0, 0),
        ((0x0FFFFFFF << 6) + 2, 3, 4, 1),
        ((1 << 34) + 7, 1, 1, 0),
    ]


def test_evt21_words_and_legacy_halves(tmp_path: Path) -> None:
    def cd(p: int, ts: int, x: int, y: int, valid: int) -> int:
        return (p << 60) | (ts << 54) | (x << 43) | (y << 32) | valid

    words = [(0x8 << 60) | (2 << 32), cd(0, 3, 64, 7, 0b1001), cd(1, 4, 96, 8, 1 << 31)]
    expected = [(131, 64, 7, 0), (131, 67, 7, 0), (132, 127, 8, 1)]
    head = "% format EVT21;endianness={};height=720;width=1280\n% end\n"
    assert read(raw(tmp_path, head.format("little"), words, "<u8", "a.raw")) == expected
    swapped = [((w << 32) | (w >> 32)) & ((1 << 64) - 1) for w in words]
    assert read(raw(tmp_path, head.format("legacy"), swapped, "<u8", "b.raw")) == expected


def test_evt3_words(tmp_path: Path) -> None:
    words = [
        0x2800 | 9,  # an event before any TIME_HIGH: dropped, as Prophesee's decoder does
        0x8001,  # TIME_HIGH 1 -> t = 4096
        0x6005,  # TIME_LOW 5 -> 4101
        0x0007,  # ADDR_Y 7
        0x2800 | 10,  # ADDR_X: ON at x 10
        0x3000 | 100,  # VECT_BASE_X: OFF from x 100
        0x4000 | 0b100000000001,  # VECT_12: x 100 and 111; base -> 112
        0x5000 | 0b1,  # VECT_8: x 112; base -> 120
        0x8001,  # TIME_HIGH repeating the high bits: the low bits stay (4101)
        0x5000 | 0b10,  # VECT_8: x 121
        0x8002,  # TIME_HIGH 2: t = 8192
        0x2000 | 3,  # OFF at x 3
        0xE000,  # OTHERS and CONTINUED words: no CD event
        0xF123,
        0x8FFF,  # TIME_HIGH 0xFFF, then 0: the 24-bit time wraps
        0x8000,
        0x6001,
        0x2800 | 4,
    ]
    path = raw(tmp_path, "% evt 3.0\n% end\n", words, "<u2")
    assert read(path, sensor_size=(720, 1280)) == [
        (4101, 10, 7, 1),
        (4101, 100, 7, 0),
        (4101, 111, 7, 0),
        (4101, 112, 7, 0),
        (4101, 121, 7, 0),
        (8192, 3, 7, 0),
        ((1 << 24) + 1, 4, 7, 1),
    ]


def test_dat_records_and_wrap(tmp_path: Path) -> None:
    def rec(t: int, x: int, y: int, p: int) -> tuple[int, int]:
        return t, x | (y << 14) | (p << 28)

    records = np.array(
        [rec(10, 1, 2, 1), rec(2**32 - 1, 639, 479, 0), rec(5, 3, 4, 1)],
        [("t", "<u4"), ("data", "<u4")],
    )
    path = tmp_path / "r.dat"
    path.write_bytes(b"% Version 2\n% Height 480\n% Width 640\n" + b"\x0c\x08" + records.tobytes())
    with open_recording(path) as rec_:
        assert rec_.sensor_size == (480, 640)
    assert read(path) == [(10, 1, 2, 1), (2**32 - 1, 639, 479, 0), (2**32 + 5, 3, 4, 1)]


def test_header_geometry_forms(tmp_path: Path) -> None:
    word = [0x8000_0000, evt2_cd(1, 0, 1, 1)]
    for head, size in [
        ("% format EVT2;height=480;width=640\n% end\n", (480, 640)),
        ("% evt 2.0\n% geometry 304x240\n% end\n", (240, 304)),
        ("% evt 2.0\n% Width 320\n% Height 320\n", (320, 320)),
        ("% evt 2.0\n", None),
    ]:
        with open_recording(raw(tmp_path, head, word, "<u4")) as rec:
            assert rec.format == "evt2" and rec.sensor_size == size, head


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8])
def test_evt3_state_carries_across_chunks(tmp_path: Path, chunk: int) -> None:
    words = [0x8001, 0x6005, 0x0007, 0x3000 | 100, 0x4FFF, 0x50FF, 0x6006, 0x4001, 0x8002, 0x2801]
    path = raw(tmp_path, "% evt 3.0\n% end\n", words, "<u2")
    assert read(path, chunk_events=chunk) == read(path, chunk_events=1000)
    assert len(read(path)) == 12 + 8 + 1 + 1


@pytest.mark.parametrize("numpy_popcount", [True, False])
def test_set_bits_in_word_then_bit_order(monkeypatch: pytest.MonkeyPatch, numpy_popcount) -> None:
    from iefvad.events.formats import prophesee

    if not numpy_popcount:  # the table path NumPy < 2 takes
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    rng = np.random.default_rng(0)
    valid = rng.integers(0, 2**32, 500, dtype=np.uint64).astype(np.uint32)
    valid[::7] = 0
    valid[1::7] = 1 << 31
    valid[2::7] = 0xFFFFFFFF
    rows, cols = prophesee.set_bits(valid)
    bits = np.unpackbits(
        valid.astype("<u4").view(np.uint8).reshape(-1, 4), axis=1, bitorder="little"
    )
    want_rows, want_cols = np.nonzero(bits)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_array_equal(cols, want_cols)
