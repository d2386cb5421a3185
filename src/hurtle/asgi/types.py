"""ASGI scopes and messages as typed dictionaries.

Each message is a `TypedDict` with a `Literal` ``type`` tag, so ``mypy``
narrows a union of messages on ``message["type"] == ...`` without casts (the
approach of uvicorn's ``_types.py``). Apps may hand the server any `Mapping`;
these types describe what the server builds and what a well-behaved app sends.

References: the ASGI specification, "HTTP & WebSocket" and "Lifespan" pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    # Only the type checker needs it: with postponed annotations the name is
    # never evaluated at run time, so Python 3.10 needs no typing_extensions.
    from typing_extensions import NotRequired

__all__ = [
    "ASGIApp",
    "ASGIReceiveCallable",
    "ASGISendCallable",
    "ASGIVersions",
    "HTTPDisconnectEvent",
    "HTTPRequestEvent",
    "HTTPResponseBodyEvent",
    "HTTPResponseEarlyHintEvent",
    "HTTPResponsePathsendEvent",
    "HTTPResponseStartEvent",
    "HTTPResponseTrailersEvent",
    "HTTPScope",
    "LifespanScope",
    "LifespanShutdownCompleteEvent",
    "LifespanShutdownEvent",
    "LifespanShutdownFailedEvent",
    "LifespanStartupCompleteEvent",
    "LifespanStartupEvent",
    "LifespanStartupFailedEvent",
    "Message",
    "Receive",
    "Scope",
    "Send",
]


class ASGIVersions(TypedDict):
    version: Literal["3.0"]
    spec_version: str


# -- scopes --------------------------------------------------------------------


class HTTPScope(TypedDict):
    type: Literal["http"]
    asgi: ASGIVersions
    http_version: str
    method: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: Iterable[tuple[bytes, bytes]]
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    state: NotRequired[dict[str, Any]]
    extensions: NotRequired[dict[str, dict[object, object]]]


class LifespanScope(TypedDict):
    type: Literal["lifespan"]
    asgi: ASGIVersions
    state: NotRequired[dict[str, Any]]


# -- HTTP messages -------------------------------------------------------------


class HTTPRequestEvent(TypedDict):
    type: Literal["http.request"]
    body: bytes
    more_body: bool


class HTTPDisconnectEvent(TypedDict):
    type: Literal["http.disconnect"]


class HTTPResponseStartEvent(TypedDict):
    type: Literal["http.response.start"]
    status: int
    headers: NotRequired[Iterable[tuple[bytes, bytes]]]
    trailers: NotRequired[bool]


class HTTPResponseBodyEvent(TypedDict):
    type: Literal["http.response.body"]
    body: bytes
    more_body: NotRequired[bool]


class HTTPResponseTrailersEvent(TypedDict):
    type: Literal["http.response.trailers"]
    headers: Iterable[tuple[bytes, bytes]]
    more_trailers: NotRequired[bool]


class HTTPResponsePathsendEvent(TypedDict):
    """The ``http.response.pathsend`` extension: send a file by path."""

    type: Literal["http.response.pathsend"]
    path: str


class HTTPResponseEarlyHintEvent(TypedDict):
    """The ``http.response.early_hint`` extension (RFC 8297, status 103)."""

    type: Literal["http.response.early_hint"]
    links: list[bytes]


# -- lifespan messages ---------------------------------------------------------


class LifespanStartupEvent(TypedDict):
    type: Literal["lifespan.startup"]


class LifespanShutdownEvent(TypedDict):
    type: Literal["lifespan.shutdown"]


class LifespanStartupCompleteEvent(TypedDict):
    type: Literal["lifespan.startup.complete"]


class LifespanStartupFailedEvent(TypedDict):
    type: Literal["lifespan.startup.failed"]
    message: NotRequired[str]


class LifespanShutdownCompleteEvent(TypedDict):
    type: Literal["lifespan.shutdown.complete"]


class LifespanShutdownFailedEvent(TypedDict):
    type: Literal["lifespan.shutdown.failed"]
    message: NotRequired[str]


# -- unions and callables ------------------------------------------------------

HTTPReceiveMessage = HTTPRequestEvent | HTTPDisconnectEvent
HTTPSendMessage = (
    HTTPResponseStartEvent
    | HTTPResponseBodyEvent
    | HTTPResponseTrailersEvent
    | HTTPResponsePathsendEvent
    | HTTPResponseEarlyHintEvent
)
LifespanReceiveMessage = LifespanStartupEvent | LifespanShutdownEvent
LifespanSendMessage = (
    LifespanStartupCompleteEvent
    | LifespanStartupFailedEvent
    | LifespanShutdownCompleteEvent
    | LifespanShutdownFailedEvent
)

# What the server hands the app and takes back stays loosely typed at the
# boundary: apps pass plain dicts (or any mapping), and a scope may gain keys
# from extensions. The precise types above are for the server's own code.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIReceiveCallable = Receive
ASGISendCallable = Send
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
