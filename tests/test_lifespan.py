"""The lifespan protocol driver, `hurtle.asgi.lifespan.Lifespan`, without sockets."""

from __future__ import annotations

import logging
from typing import Any, Literal

import pytest

from hurtle.asgi.lifespan import Lifespan

Mode = Literal["auto", "on", "off"]

pytestmark = pytest.mark.usefixtures("restore_logging")


class Recorder:
    """A lifespan app scripted by the test: it answers each message as told."""

    def __init__(self, startup: str | None = "complete", shutdown: str | None = "complete"):
        self.startup = startup
        self.shutdown = shutdown
        self.scope: dict[str, Any] | None = None
        self.received: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        message = await receive()
        self.received.append(message["type"])
        if self.startup == "complete":
            scope["state"]["ready"] = True
            await send({"type": "lifespan.startup.complete"})
        elif self.startup == "failed":
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        elif self.startup == "raise":
            raise RuntimeError("startup exploded")
        message = await receive()
        self.received.append(message["type"])
        if self.shutdown == "complete":
            await send({"type": "lifespan.shutdown.complete"})
        elif self.shutdown == "failed":
            await send({"type": "lifespan.shutdown.failed", "message": "cannot flush"})
        elif self.shutdown == "raise":
            raise RuntimeError("shutdown exploded")


async def test_startup_and_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hurtle.error")
    app = Recorder()
    state: dict[str, Any] = {}
    lifespan = Lifespan(app, "auto", state)
    await lifespan.startup()
    assert not lifespan.should_exit
    assert state == {"ready": True}
    assert app.scope == {
        "type": "lifespan",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "state": state,
    }
    await lifespan.shutdown()
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Waiting for application startup.",
        "Application startup complete.",
        "Waiting for application shutdown.",
        "Application shutdown complete.",
    ]


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_startup_failed_message(mode: Mode, caplog: pytest.LogCaptureFixture) -> None:
    lifespan = Lifespan(Recorder(startup="failed"), mode, {})
    await lifespan.startup()
    assert lifespan.should_exit
    assert lifespan.startup_failed
    assert "no database" in caplog.text
    assert "Application startup failed. Exiting." in caplog.text
    await lifespan.shutdown()  # harmless after a failure


async def test_exception_under_auto_means_unsupported(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hurtle.error")
    lifespan = Lifespan(Recorder(startup="raise"), "auto", {})
    await lifespan.startup()
    assert not lifespan.should_exit
    assert lifespan.unsupported
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "ASGI 'lifespan' protocol appears unsupported." in infos
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await lifespan.shutdown()
    assert "Waiting for application shutdown." not in caplog.text


async def test_exception_under_on_is_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    lifespan = Lifespan(Recorder(startup="raise"), "on", {})
    await lifespan.startup()
    assert lifespan.should_exit
    assert "startup exploded" in caplog.text
    assert "Application startup failed. Exiting." in caplog.text


async def test_off_never_calls_the_app() -> None:
    app = Recorder()
    lifespan = Lifespan(app, "off", {})
    await lifespan.startup()
    await lifespan.shutdown()
    assert app.scope is None
    assert not lifespan.should_exit


async def test_app_returning_silently_is_unsupported() -> None:
    async def ignores_lifespan(scope: Any, receive: Any, send: Any) -> None:
        return None

    lifespan = Lifespan(ignores_lifespan, "on", {})
    await lifespan.startup()
    assert not lifespan.should_exit
    assert lifespan.unsupported
    await lifespan.shutdown()


async def test_shutdown_failed_message(caplog: pytest.LogCaptureFixture) -> None:
    lifespan = Lifespan(Recorder(shutdown="failed"), "auto", {})
    await lifespan.startup()
    await lifespan.shutdown()
    assert lifespan.shutdown_failed
    assert "cannot flush" in caplog.text
    assert "Application shutdown failed. Exiting." in caplog.text


async def test_exception_in_shutdown_is_logged_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lifespan = Lifespan(Recorder(shutdown="raise"), "auto", {})
    await lifespan.startup()
    await lifespan.shutdown()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info is not None
    assert "shutdown exploded" in caplog.text


@pytest.mark.parametrize(
    "message",
    [
        {"type": "lifespan.shutdown.complete"},  # answers a question not asked
        {"type": "http.response.start", "status": 200},
        {"type": "lifespan.startup"},  # the server's message, not the app's
        {},
    ],
)
async def test_wrong_message_type_raises(message: dict[str, Any]) -> None:
    errors: list[BaseException] = []

    async def confused(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        try:
            await send(message)
        except RuntimeError as exc:
            errors.append(exc)
            raise

    lifespan = Lifespan(confused, "auto", {})
    await lifespan.startup()
    assert len(errors) == 1
    assert "Unexpected ASGI lifespan message" in str(errors[0])
    # A protocol error is a bug in the app, never read as "unsupported".
    assert not lifespan.unsupported
    assert lifespan.error_occurred


async def test_message_after_completion_raises() -> None:
    errors: list[BaseException] = []

    async def chatty(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        try:
            await send({"type": "lifespan.startup.complete"})
        except RuntimeError as exc:
            errors.append(exc)
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    lifespan = Lifespan(chatty, "on", {})
    await lifespan.startup()
    assert not lifespan.should_exit
    await lifespan.shutdown()
    assert len(errors) == 1


async def test_app_still_running_after_shutdown_is_cancelled() -> None:
    cancelled: list[bool] = []

    async def lingering(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        try:
            await receive()  # never answered
        except BaseException:
            cancelled.append(True)
            raise

    lifespan = Lifespan(lingering, "auto", {})
    await lifespan.startup()
    await lifespan.shutdown()
    assert cancelled == [True]
