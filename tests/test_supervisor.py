"""Worker processes under a supervisor: real processes, real signals, loopback only."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading

import httpx
import pytest

from hurtle.config import Config
from hurtle.main import run
from hurtle.supervisor import _config_from_json, _config_to_json, effective_workers
from tests.apps.ops import app
from tests.supervisor_utils import Client, children, process_gone, run_group, wait_until

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc to find the workers"
)

APP = "tests.apps.ops:app"


def _get(url: str) -> httpx.Response:
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10) as client:
        return client.get(url)


def _ready(child: object, count: int) -> None:
    child.wait_for_line(rf"is ready \({count} of {count}\)")  # type: ignore[attr-defined]


def test_config_travels_to_the_worker_intact() -> None:
    config = Config(
        APP,
        headers=[("x-a", "1")],
        bind=["127.0.0.1:0"],
        reload_dirs=["src"],
        log_config={"version": 1},
        workers=3,
    )
    assert _config_from_json(_config_to_json(config)) == config.replace(
        headers=[("x-a", "1")], bind=["127.0.0.1:0"], reload_dirs=["src"]
    )


def test_effective_workers() -> None:
    assert effective_workers(Config(APP), {}) == 1
    assert effective_workers(Config(APP), {"WEB_CONCURRENCY": "4"}) == 4
    assert effective_workers(Config(APP, workers=2), {"WEB_CONCURRENCY": "4"}) == 2
    assert effective_workers(Config(APP), {"WEB_CONCURRENCY": "x"}) == 1


def test_workers_serve_and_stop_on_sigterm() -> None:
    with run_group([APP, "--workers", "2", "--port", "0"]) as child:
        _ready(child, 2)
        workers = children(child.proc.pid)
        assert len(workers) == 2
        assert _get(child.url).text in {f"pid={pid}" for pid in workers}
        assert child.output.count("running on") == 1  # the parent's line only
        child.send_signal(signal.SIGTERM)
        assert child.wait() == 0
        assert all(process_gone(pid) for pid in workers)
    assert child.output.count("Finished server process") == 2


def test_sigint_stops_gracefully_after_in_flight_requests() -> None:
    with run_group([APP, "--workers", "2", "--port", "0"]) as child:
        _ready(child, 2)
        result: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: result.append(_get(child.url + "/sleep?1")))
        thread.start()
        child.wait_for_line(r"request in flight")
        # Ctrl+C as a terminal sends it: to the whole process group.
        os.killpg(child.proc.pid, signal.SIGINT)
        thread.join(15)
        assert child.wait() == 0
    assert result and result[0].status_code == 200
    assert "Forcing" not in child.output


def test_killed_worker_is_replaced_while_a_client_keeps_getting_200() -> None:
    with run_group([APP, "--workers", "2", "--port", "0"]) as child:
        _ready(child, 2)
        first = children(child.proc.pid)
        with Client(child.url) as client:
            assert client.wait_for_responses(5)
            victim = first[0]
            os.kill(victim, signal.SIGKILL)
            child.wait_for_line(rf"Worker process \[{victim}\] died \(signal SIGKILL\)")
            assert wait_until(lambda: len(children(child.proc.pid)) == 2)
            replacement = (set(children(child.proc.pid)) - set(first)).pop()
            child.wait_for_line(rf"Worker process \[{replacement}\] is ready")
            assert client.wait_for_responses(20)
        # The one request in flight on the killed worker may fail; no other.
        assert len(client.failures) <= 1, client.failures
        assert victim not in children(child.proc.pid)


def test_sighup_rolling_restart_fails_no_request() -> None:
    with run_group([APP, "--workers", "2", "--port", "0"]) as child:
        _ready(child, 2)
        old = set(children(child.proc.pid))
        with Client(child.url) as client, Client(child.url) as client2:
            assert client.wait_for_responses(5)
            child.send_signal(signal.SIGHUP)
            for pid in old:
                child.wait_for_line(rf"Worker process \[{pid}\] stopped")
            new = set(children(child.proc.pid))
            assert len(new) == 2 and not new & old
            assert client.wait_for_responses(10)
            assert client2.wait_for_responses(10)
        assert client.failures == [] and client2.failures == []
        served_by = client.pids() | client2.pids()
        assert served_by & {f"pid={pid}" for pid in new}


def test_max_requests_recycles_workers_without_failures() -> None:
    args = [APP, "--workers", "2", "--port", "0", "--limit-max-requests", "5"]
    args += ["--limit-max-requests-jitter", "3", "--no-access-log"]
    with run_group(args) as child:
        _ready(child, 2)
        with Client(child.url) as client:
            assert wait_until(lambda: len(client.pids()) >= 4, 60)
        assert client.failures == []
        assert "asked to retire" in child.output
        assert "Maximum request limit of" in child.output
        assert wait_until(lambda: len(children(child.proc.pid)) == 2)


def test_startup_failure_stops_the_parent_with_the_worker_status() -> None:
    args = ["tests.apps.ops:failing_startup", "--workers", "2", "--port", "0"]
    with run_group(args, wait_ready=False) as child:
        assert child.wait() == 3
    assert "failed to boot (exit code 3)" in child.output


def test_import_error_stops_the_parent_with_status_1() -> None:
    args = ["tests.apps.nosuchmodule:app", "--workers", "2", "--port", "0"]
    with run_group(args, wait_ready=False) as child:
        assert child.wait() == 1
    assert "failed to boot (exit code 1)" in child.output


def test_hung_worker_is_killed_and_replaced() -> None:
    args = [APP, "--workers", "2", "--port", "0", "--timeout-worker-healthcheck", "1.5"]
    with run_group(args) as child:
        _ready(child, 2)
        with pytest.raises(httpx.HTTPError):
            _get(child.url + "/block?60")
        child.wait_for_line(r"sent no heartbeat for 2 s; killing it")
        assert wait_until(lambda: len(children(child.proc.pid)) == 2)
        assert _get(child.url).status_code == 200


def test_ttin_adds_and_ttou_removes_a_worker() -> None:
    with run_group([APP, "--workers", "2", "--port", "0"]) as child:
        _ready(child, 2)
        child.send_signal(signal.SIGTTIN)
        child.wait_for_line(r"is ready \(3 of 3\)")
        assert wait_until(lambda: len(children(child.proc.pid)) == 3)
        child.send_signal(signal.SIGTTOU)
        child.wait_for_line(r"Removing a worker: 2 now")
        assert wait_until(lambda: len(children(child.proc.pid)) == 2)
        assert _get(child.url).status_code == 200


def test_reuse_port_workers_bind_their_own_sockets() -> None:
    with run_group([APP, "--workers", "2", "--port", "0", "--reuse-port"]) as child:
        _ready(child, 2)
        assert _get(child.url).status_code == 200


def test_workers_leave_when_the_parent_is_killed() -> None:
    with run_group([APP, "--workers", "2", "--port", "0"]) as child:
        _ready(child, 2)
        workers = children(child.proc.pid)
        child.proc.kill()
        child.proc.wait(10)
        assert wait_until(lambda: all(process_gone(pid) for pid in workers), 15)


def test_sigusr1_reopens_log_files(tmp_path: object) -> None:
    log = os.path.join(str(tmp_path), "hurtle.log")
    log_config = os.path.join(str(tmp_path), "logging.json")
    with open(log_config, "w") as file:
        json.dump(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"file": {"class": "logging.FileHandler", "filename": log}},
                "loggers": {
                    "hurtle.error": {"handlers": ["file"], "level": "INFO"},
                    "hurtle.access": {"handlers": ["file"], "level": "INFO"},
                },
            },
            file,
        )
    args = [APP, "--workers", "2", "--port", "0", "--log-config", log_config]
    with run_group(args, wait_ready=False) as child:
        assert wait_until(lambda: _read(log).count("is ready") == 2)
        port = re.search(r"running on http://127\.0\.0\.1:(\d+)", _read(log))
        assert port is not None
        url = f"http://127.0.0.1:{port.group(1)}"
        # What logrotate does: move the file away, then ask for a reopen.
        os.rename(log, log + ".1")
        assert _get(url).status_code == 200
        assert wait_until(lambda: '"GET / HTTP/1.1" 200' in _read(log + ".1"))
        child.send_signal(signal.SIGUSR1)
        # The supervisor and the workers write to a new file at the old path.
        assert wait_until(lambda: os.path.exists(log))
        assert wait_until(lambda: _get(url).status_code == 200 and '"GET / HTTP' in _read(log))
        child.send_signal(signal.SIGTERM)
        assert child.wait() == 0
        assert "Stopping parent process" in _read(log)


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read()
    except FileNotFoundError:
        return ""


# Keeps the loggers that later tests read with caplog as they were.
_QUIET_LOGGING = {"version": 1, "disable_existing_loggers": False}


def test_app_object_with_workers_is_refused(restore_logging: None) -> None:
    with pytest.raises(SystemExit) as info:
        run(app, workers=2, port=0, log_config=_QUIET_LOGGING)
    assert info.value.code == 1


def test_memory_limit_recycles_workers_without_failures() -> None:
    # Every process is above 1 MiB: each worker retires about a second after
    # it is ready, and its replacement is always up first.
    args = [APP, "--workers", "2", "--port", "0", "--limit-max-memory", "1", "--no-access-log"]
    with run_group(args) as child:
        with Client(child.url) as client:
            child.wait_for_line(r"Memory limit of 1 MiB exceeded \(\d+ MiB\)")
            child.wait_for_line(r"Worker process \[\d+\] stopped")
            assert client.wait_for_responses(5)
        assert client.failures == []


def test_memory_limit_stops_a_single_process() -> None:
    args = [APP, "--port", "0", "--limit-max-memory", "1"]
    with run_group(args) as child:
        assert child.wait() == 0
    assert "Memory limit of 1 MiB exceeded" in child.output


def test_options_that_cannot_reach_the_workers_are_refused(restore_logging: None) -> None:
    with pytest.raises(SystemExit) as info:
        run(APP, workers=2, port=0, log_config={**_QUIET_LOGGING, "x": object()})
    assert info.value.code == 1


def test_tls_with_workers(tmp_path: object) -> None:
    from tests.h2_helpers import make_certs  # noqa: PLC0415 - needs trustme

    certs = make_certs(tmp_path)  # type: ignore[arg-type]
    args = [APP, "--workers", "2", "--port", "0"]
    args += ["--ssl-certfile", certs.certfile, "--ssl-keyfile", certs.keyfile]
    with run_group(args, wait_ready=False) as child:
        port = int(child.wait_for_line(r"running on https://127\.0\.0\.1:(\d+)").group(1))
        _ready(child, 2)
        response = httpx.get(f"https://localhost:{port}/", verify=certs.client_context())
        assert response.text.startswith("pid=")


@pytest.mark.parametrize(
    "app_name", ["tests.apps.ops:hanging_startup", "tests.apps.blocking_import:app"]
)
def test_first_boot_hung_in_startup_stops_the_parent(app_name: str) -> None:
    args = [app_name, "--workers", "2", "--port", "0", "--timeout-worker-startup", "1"]
    with run_group(args, wait_ready=False) as child:
        assert child.wait() == 1
        workers_left = children(child.proc.pid)
    assert workers_left == []
    assert "is not ready after 1 s; killing it" in child.output
    assert "failed to boot (not ready within 1 s, see --timeout-worker-startup)" in child.output


def test_replacement_hung_in_startup_is_killed_and_retried(tmp_path: object) -> None:
    marker = os.path.join(str(tmp_path), "hang")
    args = ["tests.apps.ops:hanging_startup", "--workers", "2", "--port", "0"]
    args += ["--timeout-worker-startup", "1"]
    with run_group(args, env={"OPS_HANG_MARKER": marker}) as child:
        _ready(child, 2)
        open(marker, "w").close()  # from now on, a new worker hangs in startup
        victim = children(child.proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        child.wait_for_line(r"is not ready after 1 s; killing it")
        child.wait_for_line(r"failed to start \(not ready within 1 s.*\); retrying in 0\.5 s")
        # The other worker serves all along.
        assert _get(child.url).status_code == 200
        os.remove(marker)
        # The first boot printed one "2 of 2"; the replacement prints another.
        assert wait_until(lambda: child.output.count("is ready (2 of 2)") == 2)
        assert len(children(child.proc.pid)) == 2


def _generation(url: str) -> str | None:
    return _get(url).headers.get("x-generation")


def test_sighup_rereads_the_config_file(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "hurtle.toml")
    with open(path, "w") as file:
        file.write(f'app = "{APP}"\nworkers = 2\nheaders = {{x-generation = "1"}}\n')
    with run_group(["--config", path, "--port", "0", "--no-access-log"]) as child:
        _ready(child, 2)
        old = set(children(child.proc.pid))
        assert _generation(child.url) == "1"
        with open(path, "w") as file:
            file.write(
                f'app = "{APP}"\nworkers = 3\nheaders = {{x-generation = "2"}}\nbacklog = 7\n'
            )
        with Client(child.url) as client:
            assert client.wait_for_responses(3)
            child.send_signal(signal.SIGHUP)
            child.wait_for_line(r"SIGHUP: configuration changed: .*workers 2 -> 3")
            child.wait_for_line(r"SIGHUP: backlog changed \(2048 -> 7\) but .* stop and start")
            for pid in old:
                child.wait_for_line(rf"Worker process \[{pid}\] stopped")
            assert wait_until(lambda: len(children(child.proc.pid)) == 3)
            assert client.wait_for_responses(5)
        assert client.failures == []
        assert _generation(child.url) == "2"

        # A broken file: logged, and the workers keep running as they were.
        with open(path, "w") as file:
            file.write(f'app = "{APP}"\nworkrs = 1\n')
        new = set(children(child.proc.pid))
        child.send_signal(signal.SIGHUP)
        child.wait_for_line(r"SIGHUP: the configuration cannot be used \(.*'workrs'")
        assert set(children(child.proc.pid)) == new
        assert _generation(child.url) == "2"


def test_second_sigterm_forces_the_workers() -> None:
    args = [APP, "--workers", "2", "--port", "0", "--timeout-graceful-shutdown", "60"]
    with run_group(args) as child:
        _ready(child, 2)
        thread = threading.Thread(target=lambda: _get_or_error(child.url + "/sleep?60"))
        thread.start()
        child.wait_for_line(r"request in flight")
        child.send_signal(signal.SIGTERM)
        child.wait_for_line(r"Stopping 2 worker")
        child.send_signal(signal.SIGTERM)
        child.wait_for_line(r"Forcing the workers to stop")
        # Well within the 60 s that the in-flight request would have had.
        assert child.wait(20) == 0
        thread.join(15)


def _get_or_error(url: str) -> None:
    # The forced stop cuts the request: that is the point.
    with contextlib.suppress(httpx.HTTPError):
        _get(url)


def test_reread_applies_worker_options_and_keeps_socket_options() -> None:
    from hurtle.binds import BoundSockets  # noqa: PLC0415
    from hurtle.supervisor import Supervisor  # noqa: PLC0415

    current = [Config(APP, workers=2, port=0)]
    supervisor = Supervisor(current[0], BoundSockets([], []), 2, reread_config=lambda: current[0])
    try:
        supervisor.target = 4  # two SIGTTINs
        current[0] = Config("other:app", workers=2, port=9, timeout_keep_alive=9)
        assert supervisor._reread()
        config = supervisor.config
        assert (config.app, config.timeout_keep_alive, config.port) == ("other:app", 9.0, 0)
        assert supervisor.target == 4  # the configured count did not change
        current[0] = Config("other:app", workers=3)
        assert supervisor._reread()
        assert supervisor.target == 3

        def broken() -> Config:
            raise ValueError("bad")

        supervisor.reread_config = broken
        assert not supervisor._reread()
        assert supervisor.config.workers == 3
    finally:
        os.close(supervisor._wake_r)
        os.close(supervisor._wake_w)
