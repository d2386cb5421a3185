"""`hurtle.run`: the programmatic entry point, Uvicorn's ``uvicorn.run``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from hurtle.config import Config

__all__ = ["run"]

logger = logging.getLogger("hurtle.error")


def run(app: Any, **options: Any) -> None:
    """Serve `app` (an ASGI app or ``"module:attr"``) until a signal stops it.

    `options` are the fields of `hurtle.Config` (``host``, ``port``,
    ``lifespan``...). Logging is configured from them first. Returns after a
    graceful stop; raises `SystemExit` with status 1 when the app cannot be
    loaded (or a socket cannot be bound) and 3 when lifespan startup fails.
    A ready `Config` may be passed as `app` with no options.
    """
    if isinstance(app, Config):
        if options:
            raise TypeError("pass either a Config or options, not both")
        config = app
    else:
        config = Config(app, **options)
    serve_config(config)


def serve_config(config: Config, reread: Callable[[], Config] | None = None) -> None:
    """Configure logging from `config`, then serve: one process, or a supervisor.

    ``--reload`` or more than one worker starts `hurtle.supervisor`; extra
    addresses (``--bind``, socket activation) are bound here, once. `reread`
    reads the configuration again (the command line's file and environment):
    a supervisor calls it on SIGHUP.
    """
    # Imported on use: `import hurtle` stays light for workers and tools.
    from hurtle.binds import bind_sockets, listen_fds, needs_binding  # noqa: PLC0415
    from hurtle.logging import LogConfigError, configure_logging  # noqa: PLC0415
    from hurtle.server import Server  # noqa: PLC0415
    from hurtle.supervisor import effective_workers  # noqa: PLC0415

    try:
        configure_logging(config)
    except LogConfigError as exc:
        logger.error("%s", exc)
        raise SystemExit(1) from None
    activated = listen_fds()
    workers = effective_workers(config)
    if config.reload or workers > 1:
        if not isinstance(config.app, str):
            logger.error(
                "You must pass the application as an import string to enable 'reload' or "
                "'workers': the workers import it themselves."
            )
            raise SystemExit(1)
        from hurtle.reload import make_reloader  # noqa: PLC0415
        from hurtle.supervisor import supervise  # noqa: PLC0415

        code = supervise(
            config,
            workers,
            activated,
            reloader_factory=make_reloader if config.reload else None,
            reread_config=reread,
        )
        if code:
            raise SystemExit(code)
        return
    server = Server(config)
    if not needs_binding(config, activated):
        # Ctrl+C before the server installed its signal handlers (while the
        # app was importing) stops quietly, as a signal does later.
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        return
    try:
        bound = bind_sockets(config, activated)
    except OSError as exc:
        logger.error("%s", exc)
        raise SystemExit(1) from None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=bound.sockets)
    finally:
        bound.close()
