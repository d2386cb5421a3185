"""The ASGI lifespan protocol (spec version 2.0), run once per server process.

Order of events (ASGI "Lifespan Protocol"):

    server -> app   lifespan.startup
    app -> server   lifespan.startup.complete | lifespan.startup.failed
    ... the server serves requests ...
    server -> app   lifespan.shutdown
    app -> server   lifespan.shutdown.complete | lifespan.shutdown.failed

Rules kept here:

- ``lifespan="off"``: never call the app with a lifespan scope.
- ``lifespan="auto"``: an app that raises before sending any lifespan message
  does not speak the protocol; serve it without (one info line). An app that
  returns without sending anything is treated the same way, silently.
- ``lifespan="on"``: that exception is a startup failure.
- ``lifespan.startup.failed`` always is a startup failure: the server exits
  with status 3 without serving.
- A message out of order, or of an unknown type, raises `RuntimeError` in the
  app's ``send``: the app has a bug, and saying so beats guessing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

from hurtle.asgi.types import Message

__all__ = ["Lifespan"]

logger = logging.getLogger("hurtle.error")

_Phase = Literal["idle", "startup", "started", "shutdown", "stopped"]

# What the app may send in each phase; anything else is a protocol error.
_ALLOWED: dict[_Phase, tuple[str, ...]] = {
    "idle": (),
    "startup": ("lifespan.startup.complete", "lifespan.startup.failed"),
    "started": (),
    "shutdown": ("lifespan.shutdown.complete", "lifespan.shutdown.failed"),
    "stopped": (),
}


class Lifespan:
    """Drives the app's lifespan task: call `startup`, serve, then `shutdown`.

    After `startup`, ``should_exit`` says the app failed to start and the
    server must exit (status 3) without serving. ``state`` is the dict every
    request scope receives a shallow copy of.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        mode: Literal["auto", "on", "off"],
        state: dict[str, Any],
    ) -> None:
        self.app = app
        self.mode = mode
        self.state = state
        self.should_exit = False
        self.startup_failed = False
        self.shutdown_failed = False
        # True once the app is known not to speak lifespan (auto mode).
        self.unsupported = mode == "off"
        self.error_occurred = False
        self._phase: _Phase = "idle"
        self._sent_any = False
        self._protocol_error = False
        self._receive_queue: asyncio.Queue[Message] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the app's answer."""
        if self.mode == "off":
            return
        logger.info("Waiting for application startup.")
        self._phase = "startup"
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._receive_queue.put({"type": "lifespan.startup"})
        await self._startup_done.wait()
        if self.startup_failed or (self.error_occurred and self.mode == "on"):
            logger.error("Application startup failed. Exiting.")
            self.should_exit = True
        elif not self.unsupported:
            logger.info("Application startup complete.")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app's answer."""
        if self.unsupported or self.error_occurred or self._task is None:
            await self.cancel()
            return
        logger.info("Waiting for application shutdown.")
        self._phase = "shutdown"
        await self._receive_queue.put({"type": "lifespan.shutdown"})
        await self._shutdown_done.wait()
        if self.shutdown_failed or (self.error_occurred and self.mode == "on"):
            logger.error("Application shutdown failed. Exiting.")
        else:
            logger.info("Application shutdown complete.")
        await self.cancel()

    async def cancel(self) -> None:
        """End the app's lifespan task if it still runs (also after a forced exit)."""
        # The spec lets the app return (or keep running) after its last
        # message; a task still running here is cancelled so it cannot leak
        # past the server's loop.
        task = self._task
        if task is None:
            return
        if not task.done():
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # we ourselves are being cancelled

    async def _main(self) -> None:
        scope: dict[str, Any] = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.error_occurred = True
            if self.startup_failed or self.shutdown_failed:
                return  # already reported through the failed message
            if self.mode == "auto" and not self._sent_any and not self._protocol_error:
                self.unsupported = True
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                logger.error("Exception in 'lifespan' protocol", exc_info=exc)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: not ours to swallow
        else:
            if not self._sent_any:
                # Returned without a word: the app ignores lifespan scopes.
                self.unsupported = True
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def receive(self) -> Message:
        return await self._receive_queue.get()

    async def send(self, message: Message) -> None:
        message_type = message.get("type") if hasattr(message, "get") else None
        if message_type not in _ALLOWED[self._phase]:
            self._protocol_error = True
            raise RuntimeError(
                f"Unexpected ASGI lifespan message {message_type!r} "
                f"(lifespan phase: {self._phase})."
            )
        self._sent_any = True
        if message_type == "lifespan.startup.complete":
            self._phase = "started"
            self._startup_done.set()
        elif message_type == "lifespan.startup.failed":
            self._phase = "started"
            self.startup_failed = True
            self._log_failure(message)
            self._startup_done.set()
        elif message_type == "lifespan.shutdown.complete":
            self._phase = "stopped"
            self._shutdown_done.set()
        else:  # lifespan.shutdown.failed
            self._phase = "stopped"
            self.shutdown_failed = True
            self._log_failure(message)
            self._shutdown_done.set()

    @staticmethod
    def _log_failure(message: Message) -> None:
        text = message.get("message")
        if text:
            logger.error("%s", text)
