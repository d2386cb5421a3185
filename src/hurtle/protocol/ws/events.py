"""What the WebSocket core hands back: one small slotted object per message or control frame."""

from __future__ import annotations


class Message:
    """A whole data message: ``str`` for text (already UTF-8 validated), ``bytes`` for binary."""

    __slots__ = ("data",)

    def __init__(self, data: str | bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Message
            and type(other.data) is type(self.data)
            and (other.data == self.data)
        )

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"Message({self.data!r})"


class Ping:
    """A ping from the peer; the core has already queued the matching pong (section 5.5.3)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return type(other) is Ping and other.payload == self.payload

    def __hash__(self) -> int:
        return hash(self.payload)

    def __repr__(self) -> str:
        return f"Ping({self.payload!r})"


class Pong:
    """A pong from the peer, answered or unsolicited (section 5.5.3)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return type(other) is Pong and other.payload == self.payload

    def __hash__(self) -> int:
        return hash(self.payload)

    def __repr__(self) -> str:
        return f"Pong({self.payload!r})"


class CloseReceived:
    """The peer's close frame; ``code`` is 1005 when it carried none (section 7.1.5)."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return type(other) is CloseReceived and (other.code, other.reason) == (
            self.code,
            self.reason,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.reason))

    def __repr__(self) -> str:
        return f"CloseReceived({self.code}, {self.reason!r})"


class Failure:
    """The peer broke the protocol: the core has queued a close with ``code``; drop the TCP link.

    Always the last event: the core reads nothing after it (section 7.1.7).
    """

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return type(other) is Failure and (other.code, other.reason) == (self.code, self.reason)

    def __hash__(self) -> int:
        return hash((self.code, self.reason))

    def __repr__(self) -> str:
        return f"Failure({self.code}, {self.reason!r})"


Event = Message | Ping | Pong | CloseReceived | Failure
