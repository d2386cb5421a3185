"""hurtle: a fast, strict ASGI server for Python, built from scratch on asyncio.

Run an app with ``hurtle.run("module:app")`` or ``hurtle module:app`` on the
command line; embed it with ``await hurtle.Server(hurtle.Config(app)).serve()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hurtle.config import Config

if TYPE_CHECKING:
    from hurtle.asgi.http import ClientDisconnected
    from hurtle.main import run
    from hurtle.server import Server

__version__ = "0.1.0"

__all__ = ["ClientDisconnected", "Config", "Server", "__version__", "run"]


def __getattr__(name: str) -> Any:
    # Lazy: `import hurtle` (and so `hurtle --version`, or a worker importing
    # only the config) need not import asyncio, socket and the server.
    if name == "Server":
        from hurtle.server import Server  # noqa: PLC0415

        return Server
    if name == "ClientDisconnected":
        # What send() raises once the client has gone; apps may catch it.
        from hurtle.asgi.http import ClientDisconnected  # noqa: PLC0415

        return ClientDisconnected
    if name == "run":
        from hurtle.main import run  # noqa: PLC0415

        return run
    raise AttributeError(f"module 'hurtle' has no attribute {name!r}")
