"""The head parser's one-pass field check agrees with the block grammar."""

from __future__ import annotations

import random
import time

import pytest

from hurtle.protocol.errors import BadRequest
from hurtle.protocol.events import Request
from hurtle.protocol.h1 import RequestParser, abnf

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


def test_plain_field_line_takes_exactly_the_valid_blocks_written_name_colon_sp_value() -> None:
    # The parser's fast path uses FIELD_LINE_PLAIN and leaves a block to
    # FIELD_LINE whenever the counts differ: that must happen for every invalid
    # block and for every valid block with a line not written "name: value"
    # (one SP, a value without whitespace at either end), and only then.
    rng = random.Random(3)
    head = b"GET / HTTP/1.1\r\n"
    plain = 0
    for _ in range(20000):
        block = _random_block(rng)
        if rng.random() < 0.5:  # as clients write them: exercise the plain form
            block = b"\r\n".join(line.replace(b":", b": ", 1) for line in block.split(b"\r\n"))
        buf = head + block
        lines = buf.count(b"\n", len(head), len(buf))
        fields = abnf.FIELD_LINE.findall(buf, len(head), len(buf))
        plain_fields = abnf.FIELD_LINE_PLAIN.findall(buf, len(head), len(buf))
        valid = len(fields) == lines
        written_plain = (
            valid
            and b"".join(name + b": " + value + b"\r\n" for name, value in fields) == block
            and all(value for _, value in fields)
        )
        assert (len(plain_fields) == lines) == written_plain, block
        if len(plain_fields) == lines:
            plain += 1
            assert plain_fields == fields, block
    assert plain > 1000


def test_request_head_is_the_request_line_of_http_1() -> None:
    rng = random.Random(4)
    alphabet = [b"G", b"E", b"T", b" ", b"/", b"a", b"H", b"P", b"1", b"2", b".", b"\t", b"\x80"]
    for _ in range(20000):
        method = rng.choice([b"GET", b"POST", b"G@T", b"", b"M" * rng.randint(1, 3)])
        target = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) or b"/"
        version = rng.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.x", b"http/1.1"])
        line = method + b" " + target + b" " + version
        match = abnf.REQUEST_LINE.fullmatch(line)
        head = abnf.REQUEST_HEAD.match(line + b"\r\nHost: a\r\n\r\n")
        if match is None or match.group(3) != b"1":
            assert head is None, line
        else:
            assert head is not None, line
            assert head.groups() == (match.group(1), match.group(2), match.group(4))
            assert head.end() == len(line) + 2


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (b" " * 60000, True),
        (b" " * 60000 + b"\x01", False),
        (b"\t " * 30000 + b"\x01", False),
        (b"a" + b" " * 60000 + b"\x01", False),
        (b"a " * 30000, True),
        (b" a" * 30000 + b"\x00", False),
    ],
)
def test_field_lines_fail_or_match_in_linear_time(value: bytes, valid: bool) -> None:
    # A value class that also took whitespace let the engine try every split
    # of a run of spaces between the OWS and the value: a 32 KB line took 19 s
    # to refuse. Linear time is milliseconds here; quadratic is minutes.
    buf = b"GET / HTTP/1.1\r\nHost: h\r\nX:" + value + b"\r\n\r\n"
    start = time.perf_counter()
    for pattern in (abnf.FIELD_LINE, abnf.FIELD_LINE_PLAIN):
        fields = pattern.findall(buf, 16, len(buf) - 2)
        assert (len(fields) == 2) == (valid and pattern is abnf.FIELD_LINE)
    parser = RequestParser(max_head=len(buf))
    parser.receive_data(buf)
    try:
        event = parser.next_event()
    except BadRequest:
        assert not valid
    else:
        assert valid
        assert isinstance(event, Request)
        assert event.headers[1] == (b"x", value.strip(b" \t"))
    assert time.perf_counter() - start < 2.0
