"""The C unmasking routine (websockets.speedups, when installed) and the pure-Python
one must agree byte for byte, at every offset and length around the chunk size."""

from __future__ import annotations

import random

import pytest

from hurtle.protocol.ws import frames


def _reference(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("length", [1, 3, 4, 125, 16383, 16384, 16385, 70001])
@pytest.mark.parametrize("start", [0, 2, 14])
def test_unmask_paths_agree(length: int, start: int) -> None:
    rng = random.Random(length * 31 + start)
    mask = rng.randbytes(4)
    buf = rng.randbytes(start) + rng.randbytes(length) + rng.randbytes(7)
    expected = _reference(buf[start : start + length], mask)
    assert frames.py_unmask_range(buf, start, start + length, mask) == expected
    assert frames.unmask_range(buf, start, start + length, mask) == expected
    assert frames.apply_mask(buf[start : start + length], mask) == expected


def test_c_routine_is_used_when_installed() -> None:
    # The dev and standard extras install websockets: the fast path must be on.
    from websockets.speedups import apply_mask  # noqa: PLC0415

    assert frames._c_apply_mask is apply_mask
