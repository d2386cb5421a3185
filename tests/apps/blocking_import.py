"""An app module whose import never returns: a worker hung before its event loop runs."""

import time

time.sleep(3600)


async def app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
    raise AssertionError("never imported")
