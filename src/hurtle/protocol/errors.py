"""Protocol errors. Each carries the HTTP status to answer with (like h11's
``error_status_hint``), so the connection layer never has to guess."""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer broke the protocol; the connection answers ``status`` and closes."""

    status: int = 400

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status


class BadRequest(ProtocolError):
    status = 400


class ExpectationFailed(ProtocolError):
    status = 417


class ContentTooLarge(ProtocolError):
    status = 413


class URITooLong(ProtocolError):
    status = 414


class HeaderFieldsTooLarge(ProtocolError):
    status = 431


class MethodNotImplemented(ProtocolError):
    """A method or transfer coding the server does not implement (RFC 9110 15.6.2)."""

    status = 501


class VersionNotSupported(ProtocolError):
    status = 505
