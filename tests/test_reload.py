"""``--reload``: which files count, both watchers, and reloads of real workers."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from hurtle.config import Config
from hurtle.reload import (
    FileFilter,
    Reloader,
    StatReloader,
    WatchFilesReloader,
    make_reloader,
    watchfiles_available,
)
from tests.supervisor_utils import Client, children, run_group, wait_until


def test_file_filter_defaults(tmp_path: Path) -> None:
    keep = FileFilter([str(tmp_path)])
    assert keep(str(tmp_path / "app.py"))
    assert keep(str(tmp_path / "pkg" / "mod.py"))
    assert not keep(str(tmp_path / "notes.txt"))
    assert not keep(str(tmp_path / "app.pyc"))
    assert not keep(str(tmp_path / ".hidden.py"))
    assert not keep(str(tmp_path / "~backup.py"))
    assert not keep(str(tmp_path / ".git" / "hooks.py"))
    assert not keep(str(tmp_path / "pkg" / "__pycache__" / "mod.py"))
    assert keep.skip_dir(str(tmp_path / ".venv"))
    assert not keep.skip_dir(str(tmp_path / "src"))


def test_file_filter_includes_and_excludes(tmp_path: Path) -> None:
    keep = FileFilter([str(tmp_path)], includes=["*.html", ".env"], excludes=["tests/*", "x_*"])
    assert keep(str(tmp_path / "templates" / "index.html"))
    assert keep(str(tmp_path / ".env"))  # asked for, though '.*' is excluded by default
    assert keep(str(tmp_path / "app.py"))
    assert not keep(str(tmp_path / "tests" / "test_app.py"))
    assert not keep(str(tmp_path / "x_generated.py"))
    assert not keep.skip_dir(str(tmp_path / "tests"))


def _config(tmp_path: Path, **options: object) -> Config:
    return Config("m:app", reload_dirs=[str(tmp_path)], reload_delay=0.05, **options)


def _watch(reloader: Reloader) -> queue.Queue[Sequence[str]]:
    changes: queue.Queue[Sequence[str]] = queue.Queue()
    reloader.start(changes.put)
    return changes


@pytest.mark.parametrize("kind", ["stat", "watchfiles"])
def test_watchers_report_changed_files(tmp_path: Path, kind: str) -> None:
    if kind == "watchfiles" and not watchfiles_available():
        pytest.skip("watchfiles is not installed")
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("y = 1\n")
    cls = StatReloader if kind == "stat" else WatchFilesReloader
    reloader = cls(_config(tmp_path))
    changes = _watch(reloader)
    try:
        if kind == "watchfiles":
            # The native watcher reports only what happens after it is set up.
            wait_until(lambda: False, 0.5)
        (tmp_path / "notes.txt").write_text("ignored\n")
        (tmp_path / "pkg" / "mod.py").write_text("y = 2\n")
        changed = changes.get(timeout=20)
        assert str(tmp_path / "pkg" / "mod.py") in changed
        assert str(tmp_path / "notes.txt") not in changed
        os.remove(tmp_path / "app.py")
        assert str(tmp_path / "app.py") in changes.get(timeout=20)
    finally:
        reloader.stop()


def test_make_reloader_falls_back_to_polling(tmp_path: Path) -> None:
    assert isinstance(make_reloader(_config(tmp_path), force_polling=True), StatReloader)
    expected = WatchFilesReloader if watchfiles_available() else StatReloader
    assert type(make_reloader(_config(tmp_path))) is expected


def test_missing_reload_dir_is_skipped(tmp_path: Path) -> None:
    reloader = StatReloader(_config(tmp_path).replace(reload_dirs=[str(tmp_path / "nope")]))
    assert reloader.dirs == []


APP_SOURCE = """
import os

VERSION = {version!r}


async def app(scope, receive, send):
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": VERSION.encode()}})
"""


def _write_app(directory: Path, version: str, broken: bool = False) -> None:
    text = APP_SOURCE.format(version=version)
    if broken:
        text += "\nthis is not python\n"
    (directory / "reloaded_app.py").write_text(text)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("workers", [1, 2])
def test_reload_on_change_with_workers_fails_no_request(tmp_path: Path, workers: int) -> None:
    _write_app(tmp_path, "v1")
    args = ["reloaded_app:app", "--reload", "--reload-dir", str(tmp_path), "--port", "0"]
    args += ["--workers", str(workers), "--lifespan", "off", "--reload-delay", "0.1"]
    args += ["--no-access-log"]
    with run_group(args, cwd=tmp_path) as child:
        child.wait_for_line(rf"is ready \({workers} of {workers}\)")
        first = set(children(child.proc.pid))
        with Client(child.url) as client:
            assert client.wait_for_responses(3)
            assert client.bodies[-1] == "v1"
            _write_app(tmp_path, "v2")
            assert wait_until(lambda: client.bodies[-1] == "v2")
            child.wait_for_line(r"Detected changes in 'reloaded_app.py'")
            assert wait_until(lambda: not first & set(children(child.proc.pid)))

            # Code that does not import: the running workers go on serving.
            _write_app(tmp_path, "v3", broken=True)
            child.wait_for_line(r"failed to start .* the running workers keep serving")
            assert client.wait_for_responses(5)
            assert client.bodies[-1] == "v2"
            assert wait_until(lambda: len(children(child.proc.pid)) == workers)

            _write_app(tmp_path, "v4")
            assert wait_until(lambda: client.bodies[-1] == "v4")
        assert client.failures == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_reload_waits_for_a_fix_when_the_first_boot_fails(tmp_path: Path) -> None:
    _write_app(tmp_path, "v1", broken=True)
    args = ["reloaded_app:app", "--reload", "--reload-dir", str(tmp_path), "--port", "0"]
    args += ["--lifespan", "off", "--reload-delay", "0.1"]
    with run_group(args, cwd=tmp_path) as child:
        child.wait_for_line(r"Waiting for a change")
        assert child.proc.poll() is None
        _write_app(tmp_path, "v2")
        child.wait_for_line(r"is ready \(1 of 1\)")
        with Client(child.url) as client:
            assert client.wait_for_responses(2)
        assert client.bodies[-1] == "v2"


# A program that serves through the programmatic API; it lives beside the app
# in a directory that is not the working directory, so the workers find the
# app only through the parent's import path (the script's directory).
SERVE_SCRIPT = """
import sys

import hurtle

if __name__ == "__main__":
    hurtle.run(
        "reloaded_app:app",
        reload=True,
        reload_dirs=[sys.argv[1]],
        reload_delay=0.1,
        port=0,
        lifespan="off",
        access_log=False,
    )
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("listen", ["uds", "fd", "api"])
def test_reload_keeps_the_socket_of_uds_fd_and_the_api(tmp_path: Path, listen: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    _write_app(source, "v1")
    args = ["reloaded_app:app", "--reload", "--reload-dir", str(source), "--lifespan", "off"]
    args += ["--reload-delay", "0.1", "--no-access-log", "--app-dir", str(source)]
    script = None
    pass_fds: tuple[int, ...] = ()
    with contextlib.ExitStack() as stack:
        if listen == "uds":
            args += ["--uds", str(tmp_path / "r.sock")]
        elif listen == "fd":
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            args += ["--fd", str(sock.fileno())]
            pass_fds = (sock.fileno(),)
        else:
            (source / "serve.py").write_text(SERVE_SCRIPT)
            script = str(source / "serve.py")
            args = [str(source)]
        child = stack.enter_context(run_group(args, cwd=tmp_path, pass_fds=pass_fds, script=script))
        if listen == "fd":
            assert child.port == sock.getsockname()[1]
        child.wait_for_line(r"is ready \(1 of 1\)")
        url = "http://localhost/" if child.uds else child.url
        first = set(children(child.proc.pid))
        with Client(url, uds=child.uds) as client:
            assert client.wait_for_responses(3)
            assert client.bodies[-1] == "v1"
            _write_app(source, "v2")
            assert wait_until(lambda: client.bodies[-1] == "v2")
            child.wait_for_line(r"Detected changes in '.*reloaded_app.py'")
            assert wait_until(lambda: not first & set(children(child.proc.pid)))
            assert client.wait_for_responses(3)
        # Every request during the reload was answered: none refused or reset.
        assert client.failures == []
        assert child.output.count("running on") == 1
