"""``--bind`` addresses, Unix socket permissions and systemd socket activation."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hurtle.binds import BindAddress, bind_sockets, listen_fds, parse_bind
from hurtle.config import Config
from tests.supervisor_utils import run_group

APP = "tests.apps.ops:app"
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets and fds")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8001", BindAddress("tcp", host="127.0.0.1", port=8001)),
        ("localhost", BindAddress("tcp", host="localhost", port=8000)),
        (":9000", BindAddress("tcp", host="", port=9000)),
        ("[::]:8080", BindAddress("tcp", host="::", port=8080)),
        ("[::1]", BindAddress("tcp", host="::1", port=8000)),
        ("unix:/run/app.sock", BindAddress("unix", path="/run/app.sock")),
        ("unix:///run/app.sock", BindAddress("unix", path="/run/app.sock")),
        ("fd://3", BindAddress("fd", fd=3)),
    ],
)
def test_parse_bind(text: str, expected: BindAddress) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("unix:", "no socket path"),
        ("fd://x", "fd://N"),
        ("fd://-1", "not negative"),
        ("[::1", "missing ']'"),
        ("[::1]80", "expected ':PORT'"),
        ("::1:80", "in brackets"),
        ("host:", "no port"),
        ("host:http", "not a number"),
        ("host:70000", "0..65535"),
    ],
)
def test_parse_bind_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_bind(text)
    with pytest.raises(ValueError, match="bind: invalid address"):
        Config("m:a", bind=[text])


def test_listen_fds_only_for_this_process() -> None:
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}
    assert listen_fds(env) == [3, 4]
    assert env == {}  # unset, so that children do not take them for theirs
    assert listen_fds({"LISTEN_PID": "1", "LISTEN_FDS": "2"}) == []
    assert listen_fds({"LISTEN_PID": "x", "LISTEN_FDS": "2"}) == []
    assert listen_fds({"LISTEN_FDS": "2"}) == []


def test_bind_sockets_host_and_port_with_bind_only_when_set(tmp_path: Path) -> None:
    path = str(tmp_path / "a.sock")
    bound = bind_sockets(Config("m:a", bind=[f"unix:{path}"]))
    try:
        assert [s.family for s in bound.sockets] == [socket.AF_UNIX]
    finally:
        bound.close()
    assert not os.path.exists(path)
    bound = bind_sockets(Config("m:a", bind=[f"unix:{path}"], port=0))
    try:
        assert {s.family for s in bound.sockets} == {socket.AF_INET, socket.AF_UNIX}
    finally:
        bound.close()


def _running(child: object) -> list[str]:
    return re.findall(r"running on (\S+)", child.output)  # type: ignore[attr-defined]


def _get(url: str, uds: str | None = None) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=uds) if uds else None
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.get(url)


@posix_only
@pytest.mark.parametrize("workers", [1, 2])
def test_two_binds_at_once(tmp_path: Path, workers: int) -> None:
    path = str(tmp_path / "h.sock")
    args = [APP, "--bind", "127.0.0.1:0", "--bind", f"unix:{path}", "--workers", str(workers)]
    args += ["--uds-permissions", "660"]
    with run_group(args) as child:
        child.wait_for_line(r"running on unix socket")
        assert _get(child.url).text.startswith("pid=")
        assert _get("http://localhost/", uds=path).text.startswith("pid=")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert len(_running(child)) == 2
    assert not os.path.exists(path)


@posix_only
def test_bind_fd_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with run_group([APP, "--bind", f"fd://{sock.fileno()}"], pass_fds=(sock.fileno(),)):
            assert _get(f"http://127.0.0.1:{port}/").status_code == 200


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_bind() -> None:
    with run_group([APP, "--bind", "[::1]:0"]) as child:
        port = re.search(r"running on http://\[::1\]:(\d+)", child.output)
        assert port is not None
        assert _get(f"http://[::1]:{port.group(1)}/").status_code == 200


# Passes a socket as systemd does: on descriptor 3, with LISTEN_PID set to
# the pid of the server itself (exec keeps the pid).
_SYSTEMD = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = sys.argv[2] or str(os.getpid())
os.execv(sys.argv[3], sys.argv[3:])
"""


@contextlib.contextmanager
def _activation_socket(pid: str = "") -> Iterator[tuple[socket.socket, list[str]]]:
    """A listening socket, and a prefix that hands it over as systemd does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock, [sys.executable, "-c", _SYSTEMD, str(sock.fileno()), pid]


@posix_only
@pytest.mark.parametrize("workers", [1, 2])
def test_socket_activation(workers: int) -> None:
    with _activation_socket() as (sock, prefix):
        port = sock.getsockname()[1]
        args = [APP, "--workers", str(workers)]
        with run_group(args, prefix=prefix, pass_fds=(sock.fileno(),)) as child:
            assert child.port == port
            assert _get(f"http://127.0.0.1:{port}/").status_code == 200
            # Nothing else was bound: not the default 127.0.0.1:8000.
            assert _running(child) == [f"http://127.0.0.1:{port}"]


@posix_only
def test_socket_activation_for_another_process_is_ignored() -> None:
    with _activation_socket(pid="1") as (sock, prefix):
        args = [APP, "--port", "0"]
        with run_group(args, prefix=prefix, pass_fds=(sock.fileno(),)) as child:
            assert child.port != sock.getsockname()[1]


@posix_only
def test_uds_with_workers(tmp_path: Path) -> None:
    path = str(tmp_path / "w.sock")
    with run_group([APP, "--uds", path, "--workers", "2"]) as child:
        assert child.uds == path
        child.wait_for_line(r"is ready \(2 of 2\)")
        assert _get("http://localhost/", uds=path).status_code == 200
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
    assert not os.path.exists(path)


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6")
def test_ipv6_any_binds_dual_stack() -> None:
    # Bound, never listening: checks the option without opening a port to
    # other hosts.
    bound = bind_sockets(Config("m:a", bind=["[::]:0"]))
    try:
        assert [s.family for s in bound.sockets] == [socket.AF_INET6]
        assert bound.sockets[0].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    finally:
        bound.close()
