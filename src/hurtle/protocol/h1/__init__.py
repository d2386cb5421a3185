"""HTTP/1.0 and HTTP/1.1 (RFC 9112), sans-IO."""

from hurtle.protocol.h1.connection import (
    CONTINUE_RESPONSE,
    H1Connection,
    error_response,
    status_line,
)
from hurtle.protocol.h1.parser import RequestParser

__all__ = ["CONTINUE_RESPONSE", "H1Connection", "RequestParser", "error_response", "status_line"]
