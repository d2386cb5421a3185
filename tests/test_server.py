"""The server end to end: binding, lifespan, signals, limits, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hurtle.asgi.lifespan import Lifespan
from hurtle.config import Config
from hurtle.server import Server, bind_unix, parse_env_file, run_in_new_loop
from tests.apps import basic
from tests.utils import run_server, run_server_process, wait_for

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and sockets")


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")


class _Request(threading.Thread):
    """A GET in a background thread, so the test can act while it is in flight."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.timeout = timeout
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.response = httpx.get(self.url, timeout=self.timeout)
        except BaseException as exc:
            self.error = exc


# -- binding -------------------------------------------------------------------


def test_port_zero_logs_the_real_port() -> None:
    with run_server_process(["tests.apps.basic:app"]) as child:
        assert child.port is not None and child.port != 0
        assert child.host == "127.0.0.1"
        assert httpx.get(child.url, timeout=10).text == "hello"
        assert f"hurtle running on http://127.0.0.1:{child.port} (Press CTRL+C to quit)" in (
            child.output
        )


def test_in_thread_server_reports_its_port() -> None:
    with run_server(basic.app) as running:
        assert running.port == running.server.bound_ports()[0]
        assert running.url == f"http://127.0.0.1:{running.port}"
        assert httpx.get(running.url, timeout=10).text == "hello"
    assert running.server.exit_code == 0


def test_uvloop() -> None:
    pytest.importorskip("uvloop")
    with run_server(basic.app, loop="uvloop") as running:
        assert httpx.get(running.url, timeout=10).text == "hello"


@needs_ipv6
def test_ipv6_loopback() -> None:
    with run_server(basic.app, host="::1") as running:
        assert running.url == f"http://[::1]:{running.port}"
        assert httpx.get(running.url, timeout=10).text == "hello"


@needs_ipv6
def test_dual_stack_wildcard_accepts_ipv4_and_ipv6() -> None:
    with run_server(basic.app, host="::") as running:
        for host in ("127.0.0.1", "[::1]"):
            url = f"http://{host}:{running.port}"
            assert httpx.get(url, timeout=10).text == "hello"


@needs_ipv6
def test_ipv6_log_line_uses_brackets() -> None:
    with run_server_process(["tests.apps.basic:app", "--host", "::1"]) as child:
        assert child.host == "[::1]"
        assert httpx.get(f"http://[::1]:{child.port}", timeout=10).text == "hello"


@posix_only
def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "hurtle.sock")
    with run_server(basic.app, uds=path) as running:
        assert running.port is None
        assert os.stat(path).st_mode & 0o777 == 0o666
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport, timeout=10) as client:
            assert client.get("http://localhost/").text == "hello"
    assert not os.path.exists(path), "the socket file is removed on exit"


@posix_only
def test_unix_socket_replaces_a_stale_socket_file(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays; nobody listens: what a crash leaves behind
    assert os.path.exists(path)
    with run_server(basic.app, uds=path):
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport, timeout=10) as client:
            assert client.get("http://localhost/").text == "hello"


@posix_only
def test_unix_socket_in_use_is_an_error(tmp_path: Path) -> None:
    path = str(tmp_path / "busy.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as busy:
        busy.bind(path)
        busy.listen(1)
        with pytest.raises(OSError, match="in use"):
            bind_unix(path)
        assert os.path.exists(path)


@posix_only
def test_unix_socket_path_that_is_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "file.sock"
    path.write_text("not a socket")
    with pytest.raises(OSError, match="not a socket"):
        bind_unix(str(path))
    assert path.read_text() == "not a socket"


def test_fd() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with run_server(basic.app, fd=sock.fileno()) as running:
            assert running.port == port
            assert httpx.get(f"http://127.0.0.1:{port}", timeout=10).text == "hello"
        # The server served a duplicate: the caller's descriptor is still open.
        assert sock.fileno() != -1
        assert sock.getsockname()[1] == port


@posix_only
def test_fd_from_the_command_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.set_inheritable(True)
        fd = sock.fileno()
        port = sock.getsockname()[1]
        args = ["tests.apps.basic:app", "--fd", str(fd)]
        with run_server_process(args, pass_fds=(fd,)) as child:
            assert child.port == port
            assert httpx.get(child.url, timeout=10).text == "hello"


def test_fd_that_is_not_a_socket_exits_1(tmp_path: Path) -> None:
    with open(tmp_path / "plain", "w") as file:
        server = Server(Config(basic.app, fd=file.fileno(), loop="asyncio"))
        with pytest.raises(SystemExit) as info:
            server.run()
    assert info.value.code == 1


@pytest.mark.usefixtures("restore_logging")
def test_unresolvable_host_exits_1(caplog: pytest.LogCaptureFixture) -> None:
    server = Server(Config(basic.app, host="no-such-host.invalid", port=0, loop="asyncio"))
    with pytest.raises(SystemExit) as info:
        server.run()
    assert info.value.code == 1
    assert "cannot resolve host" in caplog.text


def test_localhost_binds_every_address_on_one_port() -> None:
    with run_server(basic.app, host="localhost") as running:
        ports = set(running.server.bound_ports())
        assert len(ports) == 1
        assert httpx.get(f"http://127.0.0.1:{ports.pop()}", timeout=10).text == "hello"


def test_serve_given_sockets() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = Server(Config(basic.app, loop="asyncio"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: server.started, 20)
        assert server.bound_ports() == [port]
        assert httpx.get(f"http://127.0.0.1:{port}", timeout=10).text == "hello"
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive()
    assert sock.fileno() == -1, "the server owns (and closes) the sockets it is given"


def test_port_in_use_exits_1() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        with run_server_process(
            ["tests.apps.basic:app", "--port", port], wait_ready=False
        ) as child:
            assert child.wait() == 1
        assert "error while attempting to bind on address" in child.output
        assert "running on" not in child.output


# -- app loading ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("tests.apps.nosuchmodule:app", 'Could not import module "tests.apps.nosuchmodule"'),
        ("tests.apps.basic:nosuchattr", 'Attribute "nosuchattr" not found'),
        ("tests.apps.basic", "must be in format"),
    ],
)
def test_app_load_errors_exit_1(app: str, message: str) -> None:
    with run_server_process([app], wait_ready=False) as child:
        assert child.wait() == 1
    assert message in child.output
    assert "Traceback" not in child.output
    error_lines = [line for line in child.lines if line.startswith("ERROR")]
    assert len(error_lines) == 1, child.output


def test_factory() -> None:
    with run_server_process(["tests.apps.basic:factory", "--factory"]) as child:
        assert httpx.get(child.url, timeout=10).text == "hello"


def test_factory_not_callable_exits_1() -> None:
    with run_server_process(
        ["tests.apps.basic:not_callable", "--factory"], wait_ready=False
    ) as child:
        assert child.wait() == 1
    assert "factory is not callable" in child.output


def test_load_error_in_process_sets_exit_code() -> None:
    server = Server(Config("tests.apps.basic:nosuchattr", loop="asyncio"))
    run_in_new_loop(server.serve())
    assert server.exit_code == 1
    assert not server.started


def test_run_raises_system_exit_on_load_error() -> None:
    server = Server(Config("tests.apps.basic:nosuchattr", loop="asyncio"))
    with pytest.raises(SystemExit) as info:
        server.run()
    assert info.value.code == 1


# -- lifespan ------------------------------------------------------------------


def test_lifespan_state_reaches_request_scopes() -> None:
    with run_server(basic.state) as running:
        assert httpx.get(running.url, timeout=10).text == "hi from lifespan"


def test_lifespan_startup_failure_exits_3_without_serving() -> None:
    with run_server_process(["tests.apps.basic:startup_fails"], wait_ready=False) as child:
        assert child.wait() == 3
    assert "database is down" in child.output
    assert "Application startup failed. Exiting." in child.output
    assert "running on" not in child.output


def test_lifespan_exception_under_on_exits_3() -> None:
    args = ["tests.apps.basic:startup_raises", "--lifespan", "on"]
    with run_server_process(args, wait_ready=False) as child:
        assert child.wait() == 3
    assert "boom in startup" in child.output
    assert "running on" not in child.output


def test_lifespan_exception_under_auto_serves_without_lifespan() -> None:
    with run_server_process(["tests.apps.basic:startup_raises"]) as child:
        assert httpx.get(child.url, timeout=10).text == "served without lifespan"
    assert "ASGI 'lifespan' protocol appears unsupported." in child.output


def test_lifespan_off_never_calls_the_app_with_lifespan() -> None:
    with run_server_process(["tests.apps.basic:startup_fails", "--lifespan", "off"]) as child:
        assert httpx.get(child.url, timeout=10).text == "should never be served"
    assert "Waiting for application startup" not in child.output


def test_lifespan_startup_failure_in_process() -> None:
    server = Server(Config(basic.startup_fails, loop="asyncio", port=0))
    run_in_new_loop(server.serve())
    assert server.exit_code == 3
    assert not server.started
    assert server.servers == []


# -- shutdown ------------------------------------------------------------------


@posix_only
def test_sigterm_lets_the_request_in_flight_finish() -> None:
    with run_server_process(["tests.apps.basic:slow"]) as child:
        request = _Request(child.url + "/?1.0")
        request.start()
        child.wait_for_line("slow request started")
        child.send_signal(signal.SIGTERM)
        assert child.wait() == 0
        request.join(30)
    assert request.error is None, request.error
    assert request.response is not None
    assert request.response.status_code == 200
    assert request.response.text == "slow done"
    assert "Shutting down" in child.output
    assert "Finished server process" in child.output


@posix_only
def test_second_sigint_forces_exit() -> None:
    with run_server_process(["tests.apps.basic:slow"]) as child:
        request = _Request(child.url + "/?60")
        request.start()
        child.wait_for_line("slow request started")
        child.send_signal(signal.SIGINT)
        child.wait_for_line("Waiting for connections to close")
        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        child.wait(20)
        assert time.monotonic() - started < 15
        request.join(30)
    assert request.response is None, "the forced request never completes"


@posix_only
def test_second_signal_ends_a_hanging_lifespan_startup() -> None:
    args = ["tests.apps.basic:startup_hangs"]
    with run_server_process(args, wait_ready=False) as child:
        child.wait_for_line("startup is hanging")
        # Two signals sent back to back can merge into one delivery, so keep
        # signalling until the process is gone: the first asks, a later one forces.
        deadline = time.monotonic() + 20
        while child.proc.poll() is None and time.monotonic() < deadline:
            child.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(0.5)
        assert child.wait(5) == 0
    assert "running on" not in child.output


@posix_only
def test_second_signal_ends_a_hanging_lifespan_shutdown() -> None:
    with run_server_process(["tests.apps.basic:shutdown_hangs"]) as child:
        child.send_signal(signal.SIGTERM)
        child.wait_for_line("shutdown is hanging")
        child.send_signal(signal.SIGTERM)
        assert child.wait(20) == 0


def test_signal_during_startup_skips_serving() -> None:
    server = Server(Config(basic.state, loop="asyncio", port=0))
    original_startup = Lifespan.startup

    async def startup_then_signal(self: Lifespan) -> None:
        await original_startup(self)
        server.should_exit = True

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Lifespan, "startup", startup_then_signal)
        run_in_new_loop(server.serve())
    assert server.exit_code == 0
    assert not server.started
    assert server.servers == []


@posix_only
def test_sigint_on_an_idle_server_exits_0() -> None:
    with run_server_process(["tests.apps.basic:state"]) as child:
        child.send_signal(signal.SIGINT)
        assert child.wait() == 0
    assert "Application shutdown complete." in child.output


def test_idle_keep_alive_connections_do_not_delay_shutdown() -> None:
    with httpx.Client(timeout=10) as client:
        with run_server(basic.app, timeout_graceful_shutdown=60) as running:
            assert client.get(running.url).text == "hello"
            assert running.server.state.connections, "the connection is kept alive"
            started = time.monotonic()
        assert time.monotonic() - started < 10


def test_graceful_timeout_cancels_the_request_in_flight() -> None:
    with run_server(basic.slow, timeout_graceful_shutdown=0.2) as running:
        request = _Request(running.url + "/?60")
        request.start()
        assert wait_for(lambda: running.server.state.tasks, 20)
        started = time.monotonic()
    assert time.monotonic() - started < 15
    request.join(30)
    assert request.response is None
    assert running.server.state.tasks == set()
    assert running.server.state.connections == set()


def test_limit_max_requests_stops_the_server() -> None:
    with run_server_process(["tests.apps.basic:app", "--limit-max-requests", "2"]) as child:
        with httpx.Client(timeout=10) as client:
            assert client.get(child.url).text == "hello"
            assert client.get(child.url).text == "hello"
        assert child.wait() == 0
    assert "Maximum request limit of 2 exceeded" in child.output


def test_should_exit_from_another_thread_stops_serve() -> None:
    server = Server(Config(basic.app, loop="asyncio", port=0))
    result: list[Any] = []

    async def main() -> None:
        task = asyncio.ensure_future(server.serve())
        while not server.started:  # noqa: ASYNC110 - started is a plain flag
            await asyncio.sleep(0.01)
        threading.Timer(0.05, lambda: setattr(server, "should_exit", True)).start()
        await asyncio.wait_for(task, 20)
        result.append(server.exit_code)

    run_in_new_loop(main())
    assert result == [0]


# -- environment files ---------------------------------------------------------


def test_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# settings\nexport HURTLE_TEST_GREETING='hello from env'\n")
    args = ["tests.apps.basic:env", "--env-file", str(env_file)]
    with run_server_process(args) as child:
        assert httpx.get(child.url + "/HURTLE_TEST_GREETING", timeout=10).text == ("hello from env")


def test_env_file_does_not_override_the_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HURTLE_TEST_GREETING=from file\n")
    args = ["tests.apps.basic:env", "--env-file", str(env_file)]
    with run_server_process(args, env={"HURTLE_TEST_GREETING": "from env"}) as child:
        assert httpx.get(child.url + "/HURTLE_TEST_GREETING", timeout=10).text == "from env"


def test_missing_env_file_exits_1(tmp_path: Path) -> None:
    args = ["tests.apps.basic:app", "--env-file", str(tmp_path / "missing.env")]
    with run_server_process(args, wait_ready=False) as child:
        assert child.wait() == 1
    assert "Cannot read the environment file" in child.output


def test_parse_env_file() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "PLAIN=value",
            "SPACED = spaced value  ",
            "export EXPORTED=1",
            "SINGLE='it is # literal \\n'",
            'DOUBLE="line\\nbreak \\"quoted\\" \\\\"',
            "INLINE=value # a comment",
            "HASH=a#b",
            "EMPTY=",
            "EQUALS=a=b",
            "no equals sign",
        ]
    )
    assert parse_env_file(text) == {
        "PLAIN": "value",
        "SPACED": "spaced value",
        "EXPORTED": "1",
        "SINGLE": "it is # literal \\n",
        "DOUBLE": 'line\nbreak "quoted" \\',
        "INLINE": "value",
        "HASH": "a#b",
        "EMPTY": "",
        "EQUALS": "a=b",
    }


def test_unclosed_quote_is_kept_as_written() -> None:
    assert parse_env_file("A='open\n") == {"A": "'open"}


# -- misc ----------------------------------------------------------------------


def test_import_hurtle_is_light() -> None:
    # `import hurtle` must not pull in the server or the connection code.
    code = "import sys, hurtle; print('hurtle.server' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out[0] == "False"


def test_uvloop_requested_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    server = Server(Config(basic.app, loop="uvloop"))
    with pytest.raises(SystemExit) as info:
        server.run()
    assert info.value.code == 1


def test_bound_ports_before_start_is_empty() -> None:
    server = Server(Config(basic.app))
    assert server.bound_ports() == []
    assert server.bound_addresses() == []
