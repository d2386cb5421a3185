"""The head parser's one-pass field check agrees with the block grammar."""

from __future__ import annotations

import random

from hurtle.protocol.h1 import abnf

_NAME_BYTES = [b"a", b"X", b"-", b"!", b" ", b"\t", b"\x00", b"\r", b"\n"]
_VALUE_BYTES = [b"v", b" ", b"\t", b"\x80", b"\xff", b"~", b":", b"\r", b"\n", b"\x01", b"\x7f"]


def _random_block(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randint(1, 4)):
        name = b"".join(
            rng.choice(_NAME_BYTES) if rng.random() < 0.1 else b"a"
            for _ in range(rng.randint(0, 3))
        )
        value = b"".join(
            rng.choice(_VALUE_BYTES) if rng.random() < 0.3 else b"v"
            for _ in range(rng.randint(0, 5))
        )
        lines.append(name + b":" + value + b"\r\n")
    return b"".join(lines)


def test_field_line_count_matches_header_block_grammar() -> None:
    rng = random.Random(2)
    head = b"GET / HTTP/1.1\r\n"
    valid = 0
    for _ in range(20000):
        block = _random_block(rng)
        buf = head + block
        fields = abnf.FIELD_LINE.findall(buf, len(head), len(buf))
        one_pass_ok = len(fields) == buf.count(b"\n", len(head), len(buf))
        assert one_pass_ok == (abnf.HEADER_BLOCK.fullmatch(block) is not None), block
        if one_pass_ok:
            valid += 1
            assert fields == abnf.HEADER_FIELD.findall(block), block
    assert valid > 1000
