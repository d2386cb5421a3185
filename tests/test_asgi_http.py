"""The ASGI HTTP cycle (`HTTPCycle`) against a fake `ResponseWriter`.

The cycle owns message order, types, header validation, Content-Length
accounting and the disconnect semantics; the writer records what would have
gone to the wire, so each check can say "nothing invalid reached it".
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from hurtle.asgi.http import (
    ASGI_VERSION,
    ClientDisconnected,
    HTTPCycle,
    decode_path,
    http_scope,
    scope_base,
    validate_headers,
)

ALL_EXTENSIONS = (
    "http.response.pathsend",
    "http.response.early_hint",
    "http.response.zerocopysend",
    "http.response.trailers",
)


class FakeWriter:
    """Records every call the cycle makes; flow control driven by the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.write_paused = False
        self.aborted = False
        self.resumed_reading = 0
        self.continues = 0
        self.sent_files: list[bytes] = []
        self._writable: asyncio.Event | None = None

    def write_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        body: bytes,
        end: bool,
        trailers: bool,
    ) -> None:
        self.calls.append(("head", status, list(headers), content_length, body, end, trailers))

    def write_body(self, data: bytes, end: bool) -> None:
        self.calls.append(("body", data, end))

    def write_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(("trailers", list(trailers)))

    def write_informational(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(("informational", status, list(headers)))

    def write_continue(self) -> None:
        self.continues += 1
        self.calls.append(("continue",))

    async def wait_writable(self) -> None:
        self.calls.append(("wait_writable",))
        if self._writable is None:
            self._writable = asyncio.Event()
        await self._writable.wait()

    def set_writable(self) -> None:
        self.write_paused = False
        if self._writable is not None:
            self._writable.set()

    async def sendfile(self, file: Any, offset: int, count: int) -> None:
        # Like os.sendfile with an offset: the file position is not used.
        data = os.pread(file.fileno(), count, offset)
        self.sent_files.append(data)
        self.calls.append(("sendfile", offset, count))

    def resume_reading(self) -> None:
        self.resumed_reading += 1

    def abort(self) -> None:
        self.aborted = True
        self.calls.append(("abort",))

    @property
    def wire_calls(self) -> list[tuple[Any, ...]]:
        """Calls that would have put bytes on the wire."""
        return [c for c in self.calls if c[0] not in ("abort", "wait_writable")]


def make_scope(
    method: bytes = b"GET",
    path: bytes = b"/",
    extensions: tuple[str, ...] = ALL_EXTENSIONS,
    **kwargs: Any,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "http_version": "1.1",
        "query_string": b"",
        "headers": [(b"host", b"a")],
        "scheme": "http",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "root_path": "",
        "app_state": {},
    }
    params.update(kwargs)
    base = scope_base(
        params["http_version"],
        params["scheme"],
        params["client"],
        params["server"],
        params["root_path"],
    )
    return http_scope(
        base,
        method,
        path,
        params["query_string"],
        params["headers"],
        params["app_state"],
        {name: {} for name in extensions},
    )


def make_cycle(
    request_complete: bool = True,
    expect_continue: bool = False,
    **scope_kwargs: Any,
) -> tuple[HTTPCycle, FakeWriter]:
    writer = FakeWriter()
    cycle = HTTPCycle(make_scope(**scope_kwargs), writer, request_complete, expect_continue)
    return cycle, writer


START = {"type": "http.response.start", "status": 200, "headers": []}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- the normal path ------------------------------------------------------------------


async def test_start_and_body_in_one_write() -> None:
    cycle, writer = make_cycle()
    await cycle.send(
        {"type": "http.response.start", "status": 200, "headers": [(b"Content-Type", b"x/y")]}
    )
    assert writer.calls == []  # the head is held back until the first body message
    assert cycle.response_started and not cycle.response_complete
    await cycle.send({"type": "http.response.body", "body": b"hello"})
    assert writer.calls == [("head", 200, [(b"content-type", b"x/y")], None, b"hello", True, False)]
    assert cycle.response_complete
    assert cycle.status == 200


async def test_streaming_body() -> None:
    cycle, writer = make_cycle()
    await cycle.send(START)
    await cycle.send({"type": "http.response.body", "body": b"a", "more_body": True})
    await cycle.send({"type": "http.response.body", "body": b"", "more_body": True})
    await cycle.send({"type": "http.response.body", "body": b"b", "more_body": True})
    assert not cycle.response_complete
    await cycle.send({"type": "http.response.body"})
    assert writer.calls == [
        ("head", 200, [], None, b"a", False, False),
        ("body", b"b", False),
        ("body", b"", True),
    ]
    assert cycle.response_complete


async def test_bytearray_and_memoryview_bodies_accepted() -> None:
    cycle, writer = make_cycle()
    await cycle.send(START)
    await cycle.send({"type": "http.response.body", "body": bytearray(b"ab"), "more_body": True})
    await cycle.send({"type": "http.response.body", "body": memoryview(b"cd")})
    assert writer.calls[0][4] == b"ab"
    assert writer.calls[1] == ("body", b"cd", True)


async def test_message_mapping_that_is_not_a_dict() -> None:
    cycle, writer = make_cycle()
    await cycle.send(MappingProxyType({"type": "http.response.start", "status": 204}))
    await cycle.send(MappingProxyType({"type": "http.response.body"}))
    assert writer.calls[0][1] == 204


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"status": 200}, "without a 'type'"),
        (MappingProxyType({"status": 200}), "without a 'type'"),
        ({"type": 5, "status": 200}, "without a 'type'"),
        ({"type": "http.response.start"}, "'status' must be an int, got NoneType"),
        (MappingProxyType({"type": "http.response.start"}), "got NoneType"),
        ({"type": "http.response.start", "status": "200"}, "got str"),
        ([("type", "http.response.start")], "must be mappings"),
    ],
)
async def test_malformed_start_messages(message: Any, error: str) -> None:
    cycle, writer = make_cycle()
    with pytest.raises(TypeError, match=error):
        await cycle.send(message)
    assert writer.calls == []


async def test_start_headers_checked_on_every_response() -> None:
    # send() tests the remembered header list itself: an equal list gets the
    # same validated headers, any other list is checked afresh.
    seen = []
    for raw in (
        [(b"Content-Type", b"text/plain"), (b"content-length", b"1")],
        [(b"Content-Type", b"text/plain"), (b"content-length", b"1")],
        [(b"Content-Type", b"text/html"), (b"content-length", b"1")],
        [[b"Content-Type", b"text/html"], [b"content-length", b"1"]],
    ):
        cycle, writer = make_cycle()
        await cycle.send({"type": "http.response.start", "status": 200, "headers": raw})
        await cycle.send({"type": "http.response.body", "body": b"x"})
        seen.append((writer.calls[0][2], writer.calls[0][3]))
    assert seen == [
        ([(b"content-type", b"text/plain")], 1),
        ([(b"content-type", b"text/plain")], 1),
        ([(b"content-type", b"text/html")], 1),
        ([(b"content-type", b"text/html")], 1),
    ]
    cycle, writer = make_cycle()
    bad = [(b"Content-Type", b"text/html\r\nx: y"), (b"content-length", b"1")]
    with pytest.raises(RuntimeError, match="Invalid HTTP header value"):
        await cycle.send({"type": "http.response.start", "status": 200, "headers": bad})
    cycle, writer = make_cycle()
    longer = [(b"Content-Type", b"text/html"), (b"content-length", b"2")]
    await cycle.send({"type": "http.response.start", "status": 200, "headers": longer})
    with pytest.raises(RuntimeError, match="Content-Length"):
        await cycle.send({"type": "http.response.body", "body": b"x"})


# -- message order ----------------------------------------------------------------------


async def test_body_before_start() -> None:
    cycle, writer = make_cycle()
    with pytest.raises(RuntimeError, match=r"http\.response\.start"):
        await cycle.send({"type": "http.response.body", "body": b"x"})
    assert writer.calls == []


async def test_start_twice() -> None:
    cycle, writer = make_cycle()
    await cycle.send(START)
    with pytest.raises(RuntimeError, match=r"http\.response\.body"):
        await cycle.send(START)
    assert writer.calls == []


async def test_start_after_body_started() -> None:
    cycle, _writer = make_cycle()
    await cycle.send(START)
    await cycle.send({"type": "http.response.body", "body": b"x", "more_body": True})
    with pytest.raises(RuntimeError, match=r"http\.response\.body"):
        await cycle.send(START)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "http.response.body", "body": b"x"},
        {"type": "http.response.start", "status": 200},
        {"type": "http.response.trailers", "headers": []},
    ],
)
async def test_anything_after_the_response_is_complete(message: dict[str, Any]) -> None:
    cycle, writer = make_cycle()
    await cycle.send(START)
    await cycle.send({"type": "http.response.body", "body": b"done"})
    before = list(writer.calls)
    with pytest.raises(RuntimeError, match="already completed"):
        await cycle.send(message)
    assert writer.calls == before


@pytest.mark.parametrize("mtype", ["http.response.bogus", "websocket.send", "http.request"])
async def test_unknown_message_type(mtype: str) -> None:
    cycle, writer = make_cycle()
    with pytest.raises(RuntimeError, match=mtype.replace(".", r"\.")):
        await cycle.send({"type": mtype})
    await cycle.send(START)
    with pytest.raises(RuntimeError, match=mtype.replace(".", r"\.")):
        await cycle.send({"type": mtype})
    assert writer.calls == []


async def test_trailers_not_promised() -> None:
    cycle, _writer = make_cycle()
    await cycle.send(START)
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "http.response.trailers", "headers": []})


async def test_body_when_trailers_are_expected() -> None:
    cycle, _writer = make_cycle()
    await cycle.send({**START, "trailers": True})
    await cycle.send({"type": "http.response.body", "body": b"x"})
    with pytest.raises(RuntimeError, match=r"http\.response\.trailers"):
        await cycle.send({"type": "http.response.body", "body": b"y"})


@pytest.mark.parametrize("message", [None, 42, b"http.response.start", ["type"]])
async def test_message_not_a_mapping(message: Any) -> None:
    cycle, _writer = make_cycle()
    with pytest.raises(TypeError):
        await cycle.send(message)


@pytest.mark.parametrize("message", [{}, {"type": None}, {"type": b"http.response.start"}])
async def test_message_without_a_str_type(message: Any) -> None:
    cycle, _writer = make_cycle()
    with pytest.raises(TypeError):
        await cycle.send(message)


# -- types and header validation ---------------------------------------------------------


@pytest.mark.parametrize("body", ["text", 42, [b"a"]])
async def test_non_bytes_body(body: Any) -> None:
    cycle, writer = make_cycle()
    await cycle.send(START)
    with pytest.raises(TypeError):
        await cycle.send({"type": "http.response.body", "body": body})
    assert writer.wire_calls == []


@pytest.mark.parametrize(
    "headers",
    [
        [("content-type", b"text/plain")],
        [(b"content-type", "text/plain")],
        [(b"x", 1)],
        [(1, b"x")],
        [(b"x", b"y", b"z")],
        [(b"x",)],
        [b"xy"],
        42,
    ],
)
async def test_non_bytes_headers(headers: Any) -> None:
    cycle, writer = make_cycle()
    with pytest.raises(TypeError):
        await cycle.send({"type": "http.response.start", "status": 200, "headers": headers})
    assert writer.calls == []


@pytest.mark.parametrize("status", ["200", 200.0, None, b"200"])
async def test_non_int_status(status: Any) -> None:
    cycle, _writer = make_cycle()
    with pytest.raises(TypeError):
        await cycle.send({"type": "http.response.start", "status": status})


@pytest.mark.parametrize("status", [99, 100, 101, 103, 600, 1000, -200])
async def test_status_out_of_range(status: int) -> None:
    cycle, writer = make_cycle()
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "http.response.start", "status": status})
    assert writer.calls == []


@pytest.mark.parametrize(
    "name",
    [b"bad name", b"x:y", b"", b"x\r\ny", b"x\n", b"x\r", b"x\x00", b"caf\xe9", b"(x)", b"x/y"],
)
async def test_invalid_header_name(name: bytes) -> None:
    cycle, writer = make_cycle()
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "http.response.start", "status": 200, "headers": [(name, b"v")]})
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "http.response.body", "body": b"x"})
    assert writer.calls == []


@pytest.mark.parametrize(
    "value",
    [b"a\r\nb", b"a\nb", b"a\rb", b"a\x00b", b"\r\nx-injected: 1", b"a\x7f", b"\x1b[31m", b"\x0c"],
)
async def test_invalid_header_value(value: bytes) -> None:
    cycle, writer = make_cycle()
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "http.response.start", "status": 200, "headers": [(b"x", value)]})
    assert writer.calls == []


async def test_header_value_with_tab_space_and_obs_text_is_fine() -> None:
    cycle, writer = make_cycle()
    value = b"a\tb c \xe9"
    await cycle.send({"type": "http.response.start", "status": 200, "headers": [(b"x", value)]})
    await cycle.send({"type": "http.response.body"})
    assert writer.calls[0][2] == [(b"x", value)]


async def test_header_names_lowercased_order_and_duplicates_kept() -> None:
    cycle, writer = make_cycle()
    headers = [(b"X-B", b"1"), (b"Set-Cookie", b"a"), (b"x-b", b"2"), (b"set-cookie", b"b")]
    await cycle.send({"type": "http.response.start", "status": 200, "headers": headers})
    await cycle.send({"type": "http.response.body"})
    assert writer.calls[0][2] == [
        (b"x-b", b"1"),
        (b"set-cookie", b"a"),
        (b"x-b", b"2"),
        (b"set-cookie", b"b"),
    ]


def _lengths(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [v for n, v in headers if n == b"content-length"]


def test_validate_headers_content_length() -> None:
    # Whether the header stays in the list or the writer re-creates it from
    # the parsed length, there is at most one, and it agrees.
    headers, length = validate_headers([(b"Content-Length", b"12"), (b"X", b"y")])
    assert length == 12
    assert _lengths(headers) in ([], [b"12"])
    assert (b"x", b"y") in headers
    headers, length = validate_headers([(b"content-length", b"3"), (b"content-length", b"3")])
    assert length == 3
    assert _lengths(headers) in ([], [b"3"])
    assert validate_headers(()) == ([], None)
    for bad in (b"abc", b"-1", b"1.5", b"", b"1,2", b"\xd9\xa3"):
        with pytest.raises(RuntimeError):
            validate_headers([(b"content-length", bad)])
    with pytest.raises(RuntimeError):
        validate_headers([(b"content-length", b"3"), (b"content-length", b"4")])


def test_validate_headers_value_cache_never_admits_a_bad_value() -> None:
    # Good values are remembered; a value with a control is checked (and
    # refused) every time, also once the cache is full of good ones.
    good = [(b"x-n", b"v%d" % i) for i in range(700)]
    assert validate_headers(good)[0] == good
    assert validate_headers(good)[0] == good
    for bad in (b"a\r\nset-cookie: x", b"a\x00", b"\x7f", b"a\nb"):
        for _ in range(2):
            with pytest.raises(RuntimeError, match="Invalid HTTP header value"):
                validate_headers([(b"x-a", b"ok"), (b"x-b", bad)])
    for _ in range(2):  # parsed, then remembered
        assert validate_headers([(b"content-length", b" 13 ")]) == ([], 13)
        with pytest.raises(RuntimeError, match="Content-Length"):
            validate_headers([(b"content-length", b"1\n3")])
    long_value = b"y" * 1000
    assert validate_headers([(b"x", long_value)])[0] == [(b"x", long_value)]
    with pytest.raises(TypeError, match="must be bytes"):
        validate_headers([(b"x", "text/plain")])


def test_validate_headers_takes_bytes_like_items_as_bytes() -> None:
    headers, length = validate_headers(
        [
            (bytearray(b"X-A"), bytearray(b"1")),
            (memoryview(b"x-b"), memoryview(b"2")),
            (b"content-length", bytearray(b"5")),
        ]
    )
    assert headers == [(b"x-a", b"1"), (b"x-b", b"2")]
    assert all(type(n) is bytes and type(v) is bytes for n, v in headers)
    assert length == 5
    with pytest.raises(TypeError, match="names must be bytes"):
        validate_headers([("x-a", b"1")])


def test_validate_headers_remembers_a_list_only_by_its_value() -> None:
    raw = [(b"Content-Type", b"text/plain"), (b"content-length", b"13")]
    first = validate_headers(raw)
    assert first == ([(b"content-type", b"text/plain")], 13)
    # An equal list (a new one, as apps build per response) gets the same result.
    assert validate_headers([(b"Content-Type", b"text/plain"), (b"content-length", b"13")]) == first
    # The app changing its list afterwards does not change what was remembered.
    raw[1] = (b"content-length", b"14")
    assert validate_headers(raw) == ([(b"content-type", b"text/plain")], 14)
    assert validate_headers([(b"Content-Type", b"text/plain"), (b"content-length", b"13")]) == first
    # Pairs given as lists can change in place: never remembered, always checked.
    pair = [b"x-a", b"ok"]
    assert validate_headers([pair]) == ([(b"x-a", b"ok")], None)
    pair[1] = b"bad\r\nset-cookie: x"
    with pytest.raises(RuntimeError, match="Invalid HTTP header value"):
        validate_headers([pair])
    # A bad list equal in value to none remembered is refused every time.
    for _ in range(2):
        with pytest.raises(RuntimeError, match="Invalid HTTP header value"):
            validate_headers([(b"x-a", b"a\x00")])
    # A remembered list is no loophole for another sequence type.
    validate_headers([(b"x-b", b"1")])
    assert validate_headers(((b"x-b", b"1"),)) == ([(b"x-b", b"1")], None)
    with pytest.raises(TypeError):
        validate_headers([(b"x-b", b"1", b"extra")])


# -- Content-Length accounting ---------------------------------------------------------------


async def test_longer_than_content_length_in_one_message() -> None:
    cycle, writer = make_cycle()
    await cycle.send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]}
    )
    with pytest.raises(RuntimeError, match="Content-Length"):
        await cycle.send({"type": "http.response.body", "body": b"abcd"})
    assert writer.aborted
    assert writer.wire_calls == []


async def test_longer_than_content_length_while_streaming() -> None:
    cycle, writer = make_cycle()
    await cycle.send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await cycle.send({"type": "http.response.body", "body": b"abc", "more_body": True})
    with pytest.raises(RuntimeError, match="Content-Length"):
        await cycle.send({"type": "http.response.body", "body": b"def", "more_body": True})
    assert writer.aborted
    # The excess never reaches the writer.
    assert len(writer.wire_calls) == 1
    kind, status, _headers, length, body, end, _trailers = writer.wire_calls[0]
    assert (kind, status, length, body, end) == ("head", 200, 5, b"abc", False)
    with pytest.raises((RuntimeError, ClientDisconnected)):
        await cycle.send({"type": "http.response.body", "body": b""})


async def test_shorter_than_content_length_in_one_message() -> None:
    cycle, writer = make_cycle()
    await cycle.send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    with pytest.raises(RuntimeError, match="Content-Length"):
        await cycle.send({"type": "http.response.body", "body": b"abc"})
    assert writer.aborted


async def test_shorter_than_content_length_at_the_end_of_a_stream() -> None:
    cycle, writer = make_cycle()
    await cycle.send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await cycle.send({"type": "http.response.body", "body": b"abc", "more_body": True})
    assert not writer.aborted
    with pytest.raises(RuntimeError, match="Content-Length"):
        await cycle.send({"type": "http.response.body", "body": b""})
    assert writer.aborted
    assert ("body", b"", True) not in writer.calls


async def test_exact_content_length() -> None:
    cycle, writer = make_cycle()
    await cycle.send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]}
    )
    await cycle.send({"type": "http.response.body", "body": b"abc", "more_body": True})
    await cycle.send({"type": "http.response.body", "body": b"def"})
    assert not writer.aborted
    assert writer.calls[0][3] == 6
    assert cycle.response_complete


@pytest.mark.parametrize(("method", "status"), [(b"HEAD", 200), (b"GET", 204), (b"GET", 304)])
async def test_content_length_not_enforced_without_a_body(method: bytes, status: int) -> None:
    cycle, writer = make_cycle(method=method)
    await cycle.send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"100")]}
    )
    await cycle.send({"type": "http.response.body", "body": b""})
    assert not writer.aborted
    assert cycle.response_complete


# -- receive ----------------------------------------------------------------------------------


async def test_receive_streams_the_body_then_disconnect_after_the_response() -> None:
    cycle, _writer = make_cycle(request_complete=False, method=b"POST")
    assert cycle.feed_body(b"ab") is False
    cycle.feed_body(b"cd")
    assert await cycle.receive() == {"type": "http.request", "body": b"abcd", "more_body": True}

    pending = asyncio.ensure_future(cycle.receive())
    await settle()
    assert not pending.done()
    cycle.feed_body(b"ef")
    assert await asyncio.wait_for(pending, 5) == {
        "type": "http.request",
        "body": b"ef",
        "more_body": True,
    }

    cycle.body_complete()
    assert cycle.request_complete
    assert await cycle.receive() == {"type": "http.request", "body": b"", "more_body": False}

    # The request is in, the response is not: receive() waits.
    pending = asyncio.ensure_future(cycle.receive())
    await settle()
    assert not pending.done()
    await cycle.send(START)
    await settle()
    assert not pending.done()
    await cycle.send({"type": "http.response.body", "body": b"ok"})
    assert await asyncio.wait_for(pending, 5) == {"type": "http.disconnect"}
    assert await cycle.receive() == {"type": "http.disconnect"}


async def test_last_body_piece_and_end_together() -> None:
    cycle, _writer = make_cycle(request_complete=False, method=b"POST")
    cycle.feed_body(b"xyz")
    cycle.body_complete()
    assert await cycle.receive() == {"type": "http.request", "body": b"xyz", "more_body": False}


async def test_get_receives_one_empty_request_message() -> None:
    cycle, _writer = make_cycle()
    assert await cycle.receive() == {"type": "http.request", "body": b"", "more_body": False}
    pending = asyncio.ensure_future(cycle.receive())
    await settle()
    assert not pending.done()
    cycle.disconnect()
    assert await asyncio.wait_for(pending, 5) == {"type": "http.disconnect"}


async def test_disconnect_wakes_a_waiting_receive() -> None:
    cycle, _writer = make_cycle(request_complete=False, method=b"POST")
    pending = asyncio.ensure_future(cycle.receive())
    await settle()
    assert not pending.done()
    cycle.disconnect()
    assert await asyncio.wait_for(pending, 5) == {"type": "http.disconnect"}


async def test_send_after_disconnect_raises_client_disconnected() -> None:
    cycle, writer = make_cycle()
    cycle.disconnect()
    assert issubclass(ClientDisconnected, OSError)
    with pytest.raises(ClientDisconnected):
        await cycle.send(START)
    assert await cycle.receive() == {"type": "http.disconnect"}
    assert writer.calls == []


async def test_send_body_after_disconnect_mid_stream() -> None:
    cycle, writer = make_cycle()
    await cycle.send(START)
    await cycle.send({"type": "http.response.body", "body": b"a", "more_body": True})
    cycle.disconnect()
    with pytest.raises(OSError) as info:
        await cycle.send({"type": "http.response.body", "body": b"b", "more_body": True})
    assert isinstance(info.value, ClientDisconnected)
    assert len(writer.wire_calls) == 1


async def test_flow_control_high_water_and_resume() -> None:
    cycle, writer = make_cycle(request_complete=False, method=b"POST")
    chunk = b"x" * 16384
    pause = [cycle.feed_body(chunk) for _ in range(5)]
    assert pause[:4] == [False] * 4
    assert pause[4] is True  # over HTTPCycle.HIGH_WATER: the adapter stops reading
    assert writer.resumed_reading == 0
    message = await cycle.receive()
    assert message["body"] == chunk * 5
    assert writer.resumed_reading == 1


async def test_send_waits_while_the_writer_is_paused() -> None:
    cycle, writer = make_cycle()
    await cycle.send(START)
    writer.write_paused = True
    sending = asyncio.ensure_future(
        cycle.send({"type": "http.response.body", "body": b"a", "more_body": True})
    )
    await settle()
    assert not sending.done()
    assert ("wait_writable",) in writer.calls
    writer.set_writable()
    await asyncio.wait_for(sending, 5)
    await cycle.send({"type": "http.response.body"})
    assert cycle.response_complete


async def test_disconnect_while_waiting_to_write() -> None:
    cycle, writer = make_cycle()
    await cycle.send(START)
    writer.write_paused = True
    sending = asyncio.ensure_future(
        cycle.send({"type": "http.response.body", "body": b"a", "more_body": True})
    )
    await settle()
    cycle.disconnect()
    writer.set_writable()
    with pytest.raises(ClientDisconnected):
        await asyncio.wait_for(sending, 5)


# -- 100-continue ---------------------------------------------------------------------------


async def test_continue_sent_when_the_app_first_receives() -> None:
    cycle, writer = make_cycle(request_complete=False, expect_continue=True, method=b"POST")
    assert writer.continues == 0
    pending = asyncio.ensure_future(cycle.receive())
    await settle()
    assert writer.continues == 1
    cycle.feed_body(b"abc")
    cycle.body_complete()
    assert await asyncio.wait_for(pending, 5) == {
        "type": "http.request",
        "body": b"abc",
        "more_body": False,
    }
    assert writer.continues == 1


async def test_no_continue_when_the_app_answers_without_reading() -> None:
    cycle, writer = make_cycle(request_complete=False, expect_continue=True, method=b"POST")
    await cycle.send({"type": "http.response.start", "status": 417})
    await cycle.send({"type": "http.response.body"})
    assert await cycle.receive() == {"type": "http.disconnect"}
    assert writer.continues == 0


async def test_no_continue_when_the_app_started_its_response() -> None:
    cycle, writer = make_cycle(request_complete=False, expect_continue=True, method=b"POST")
    await cycle.send(START)
    pending = asyncio.ensure_future(cycle.receive())
    await settle()
    assert writer.continues == 0
    cycle.disconnect()
    await asyncio.wait_for(pending, 5)


# -- running the app --------------------------------------------------------------------------


async def test_app_exception_before_start_gives_500(caplog: pytest.LogCaptureFixture) -> None:
    cycle, writer = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="hurtle.error"):
        await cycle.run(app)
    assert len(writer.calls) == 1
    kind, status, _headers, length, body, end, _trailers = writer.calls[0]
    assert (kind, status, end) == ("head", 500, True)
    assert length == len(body) and body
    assert cycle.status == 500
    assert cycle.response_complete
    assert not writer.aborted
    assert any(r.exc_info and "ASGI application" in r.getMessage() for r in caplog.records)


async def test_app_exception_after_start_before_body_gives_500() -> None:
    cycle, writer = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({**START, "headers": [(b"x-app", b"1")]})
        raise ValueError("boom")

    await cycle.run(app)
    assert writer.calls[0][:2] == ("head", 500)
    assert (b"x-app", b"1") not in writer.calls[0][2]
    assert not writer.aborted


async def test_app_exception_after_body_started_aborts() -> None:
    cycle, writer = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("boom")

    await cycle.run(app)
    assert writer.aborted
    assert [c[0] for c in writer.wire_calls] == ["head"]
    assert writer.calls[0][1] == 200


async def test_app_returning_without_a_response_gives_500() -> None:
    cycle, writer = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    await cycle.run(app)
    assert writer.calls[0][:2] == ("head", 500)
    assert cycle.response_complete


async def test_app_returning_after_start_only_gives_500() -> None:
    cycle, writer = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)

    await cycle.run(app)
    assert writer.calls[0][:2] == ("head", 500)


async def test_app_returning_mid_stream_aborts() -> None:
    cycle, writer = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    await cycle.run(app)
    assert writer.aborted


async def test_app_returning_a_value_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    cycle, writer = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> int:
        await send(START)
        await send({"type": "http.response.body"})
        return 42

    with caplog.at_level(logging.ERROR, logger="hurtle.error"):
        await cycle.run(app)
    assert writer.calls[0][1] == 200
    assert any("42" in r.getMessage() for r in caplog.records)


async def test_app_letting_client_disconnected_escape_is_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cycle, writer = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        cycle.disconnect()
        await send(START)

    with caplog.at_level(logging.ERROR, logger="hurtle.error"):
        await cycle.run(app)
    assert writer.calls == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_app_error_from_a_bad_header_gives_500() -> None:
    cycle, writer = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb")]})

    await cycle.run(app)
    assert len(writer.calls) == 1
    assert writer.calls[0][:2] == ("head", 500)
    assert all(b"\r" not in v and b"\n" not in v for _, v in writer.calls[0][2])


async def test_cancelled_app_aborts() -> None:
    cycle, writer = make_cycle()
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    task = asyncio.ensure_future(cycle.run(app))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert writer.aborted


# -- extensions -----------------------------------------------------------------------------


async def test_early_hint() -> None:
    cycle, writer = make_cycle()
    await cycle.send(
        {"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload; as=style"]}
    )
    assert writer.calls == [
        ("informational", 103, [(b"link", b"</style.css>; rel=preload; as=style")])
    ]
    await cycle.send(START)
    await cycle.send({"type": "http.response.body"})


async def test_early_hint_ignored_without_the_extension() -> None:
    cycle, writer = make_cycle(extensions=())
    await cycle.send({"type": "http.response.early_hint", "links": [b"</a>"]})
    assert writer.calls == []


async def test_early_hint_bad_links() -> None:
    cycle, writer = make_cycle()
    with pytest.raises(TypeError):
        await cycle.send({"type": "http.response.early_hint", "links": b"</a>"})
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "http.response.early_hint", "links": [b"</a>\r\nx: y"]})
    assert writer.calls == []


async def test_trailers() -> None:
    cycle, writer = make_cycle()
    await cycle.send({**START, "trailers": True})
    await cycle.send({"type": "http.response.body", "body": b"data"})
    assert not cycle.response_complete
    assert writer.calls == [("head", 200, [], None, b"data", True, True)]
    await cycle.send(
        {"type": "http.response.trailers", "headers": [(b"X-A", b"1")], "more_trailers": True}
    )
    assert not cycle.response_complete
    await cycle.send({"type": "http.response.trailers", "headers": [(b"x-b", b"2")]})
    assert writer.calls[-1] == ("trailers", [(b"x-a", b"1"), (b"x-b", b"2")])
    assert cycle.response_complete


async def test_invalid_trailer_header() -> None:
    cycle, writer = make_cycle()
    await cycle.send({**START, "trailers": True})
    await cycle.send({"type": "http.response.body", "body": b"data"})
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "http.response.trailers", "headers": [(b"x", b"\r\n")]})
    assert [c[0] for c in writer.calls] == ["head"]


async def test_pathsend(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"0123456789")
    cycle, writer = make_cycle()
    await cycle.send(START)
    await cycle.send({"type": "http.response.pathsend", "path": str(path)})
    assert writer.calls[0] == ("head", 200, [], 10, b"", False, False)
    assert writer.sent_files == [b"0123456789"]
    assert writer.calls[-1] == ("body", b"", True)
    assert cycle.response_complete


async def test_pathsend_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    cycle, writer = make_cycle()
    await cycle.send(START)
    await cycle.send({"type": "http.response.pathsend", "path": str(path)})
    assert writer.calls == [("head", 200, [], 0, b"", True, False)]
    assert cycle.response_complete


async def test_pathsend_bad_paths(tmp_path: Path) -> None:
    cycle, writer = make_cycle()
    await cycle.send(START)
    with pytest.raises(TypeError):
        await cycle.send({"type": "http.response.pathsend", "path": tmp_path / "x"})
    with pytest.raises(RuntimeError):
        await cycle.send({"type": "http.response.pathsend", "path": "relative/file"})
    with pytest.raises(FileNotFoundError):
        await cycle.send({"type": "http.response.pathsend", "path": str(tmp_path / "missing")})
    assert writer.calls == []


async def test_pathsend_content_length_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"0123456789")
    cycle, writer = make_cycle()
    await cycle.send({**START, "headers": [(b"content-length", b"5")]})
    with pytest.raises(RuntimeError, match="Content-Length"):
        await cycle.send({"type": "http.response.pathsend", "path": str(path)})
    assert writer.aborted
    assert writer.wire_calls == []


async def test_zerocopysend(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"0123456789")
    cycle, writer = make_cycle()
    await cycle.send(START)
    with open(path, "rb") as file:  # noqa: ASYNC230
        await cycle.send(
            {
                "type": "http.response.zerocopysend",
                "file": file,
                "offset": 2,
                "count": 3,
                "more_body": True,
            }
        )
        await cycle.send({"type": "http.response.zerocopysend", "file": file.fileno(), "offset": 5})
    assert writer.sent_files == [b"234", b"56789"]
    assert writer.calls[0][:2] == ("head", 200)
    assert writer.calls[-1] == ("body", b"", True)
    assert cycle.response_complete


async def test_zerocopysend_advances_the_file_position(tmp_path: Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"0123456789")
    cycle, writer = make_cycle()
    await cycle.send(START)
    with open(path, "rb") as file:  # noqa: ASYNC230
        file.seek(4)
        await cycle.send(
            {"type": "http.response.zerocopysend", "file": file, "count": 2, "more_body": True}
        )
        assert os.lseek(file.fileno(), 0, os.SEEK_CUR) == 6
        await cycle.send({"type": "http.response.zerocopysend", "file": file})
    assert writer.sent_files == [b"45", b"6789"]


async def test_zerocopysend_bad_file() -> None:
    cycle, _writer = make_cycle()
    await cycle.send(START)
    with pytest.raises(TypeError):
        await cycle.send({"type": "http.response.zerocopysend", "file": "name.txt"})


# -- the scope -----------------------------------------------------------------------------


def test_http_scope_fields() -> None:
    state = {"db": object()}
    scope = make_scope(
        b"POST",
        b"/caf%C3%A9/a%20b%2Fc",
        query_string=b"x=%20",
        headers=[(b"host", b"a"), (b"x", b"1"), (b"x", b"2")],
        app_state=state,
    )
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["asgi"] == ASGI_VERSION
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/café/a b/c"
    assert scope["raw_path"] == b"/caf%C3%A9/a%20b%2Fc"
    assert scope["query_string"] == b"x=%20"
    assert scope["root_path"] == ""
    assert scope["headers"] == [(b"host", b"a"), (b"x", b"1"), (b"x", b"2")]
    assert scope["client"] == ("127.0.0.1", 50000)
    assert scope["server"] == ("127.0.0.1", 8000)
    assert scope["state"] == state
    assert scope["state"] is not state  # a shallow copy per request
    assert scope["state"]["db"] is state["db"]
    assert set(scope["extensions"]) == set(ALL_EXTENSIONS)


def test_http_scope_has_every_field_and_no_placeholder() -> None:
    # scope_base copies a template whose per-request fields are placeholders
    # (None): http_scope must replace every one of them.
    scope = make_scope(b"GET", b"/")
    assert set(scope) == {
        "type", "asgi", "http_version", "server", "client", "scheme", "method",
        "root_path", "path", "raw_path", "query_string", "headers", "state", "extensions",
    }  # fmt: skip
    assert None not in (scope["headers"], scope["state"], scope["extensions"])
    assert scope["state"] == {} and type(scope["extensions"]) is dict


def test_http_scope_root_path() -> None:
    scope = make_scope(path=b"/items/1", root_path="/api")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/1"
    assert scope["raw_path"] == b"/api/items/1"


def test_http_scope_unusual_method() -> None:
    assert make_scope(b"PURGE")["method"] == "PURGE"


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"/", "/"),
        (b"/a%2fb", "/a/b"),
        (b"/%E2%82%AC", "/€"),
        (b"/100%", "/100%"),
        (b"/%zz", "/%zz"),
    ],
)
def test_decode_path(raw: bytes, path: str) -> None:
    assert decode_path(raw) == path
