"""Helpers of the HTTP/2 and TLS tests: certificates and raw HTTP/2 clients over sockets.

- `Certs`: a trustme CA with a server certificate for 127.0.0.1/localhost,
  written to files for ``ssl_certfile``/``ssl_keyfile``.
- `RawH2`: the `h2` library as a client on a real socket (prior knowledge, TLS
  with ALPN ``h2``, or after an ``Upgrade: h2c``); it does not enforce the
  server's stream limit, as an attacker would not.
- `FrameClient`: hand-built frames in, parsed frames out, for the protocol
  violations that `h2` itself refuses to send (h2spec-style checks).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import hpack
import trustme
from h2.connection import ConnectionState
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame, SettingsFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class Certs:
    ca: trustme.CA
    certfile: str
    keyfile: str
    cafile: str

    def client_context(self, alpn: Iterable[str] = ("h2", "http/1.1")) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        context.set_alpn_protocols(list(alpn))
        return context


def make_certs(directory: Path) -> Certs:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile = directory / "cert.pem"
    keyfile = directory / "key.pem"
    cafile = directory / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    return Certs(ca, str(certfile), str(keyfile), str(cafile))


class UnboundedClient(h2.connection.H2Connection):
    """An `h2` client that ignores SETTINGS_MAX_CONCURRENT_STREAMS, as attackers do."""

    @property
    def open_outbound_streams(self) -> int:
        return 0


@dataclass
class Response:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    informational: list[int] = field(default_factory=list)
    reset: int | None = None
    ended: bool = False


class RawH2:
    """A blocking HTTP/2 client on a socket, driven step by step by a test."""

    def __init__(
        self,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
        upgrade: bool = False,
        timeout: float = 10.0,
    ) -> None:
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.timeout = timeout
        self.conn = UnboundedClient(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.events: list[Any] = []
        self.responses: dict[int, Response] = {}
        self.closed = False
        self.goaway: h2.events.ConnectionTerminated | None = None
        #: With `upgrade`: the ``HTTP2-Settings`` value; stream 1 is the HTTP/1.1
        #: request, and nothing is sent until the test calls `flush` after the 101.
        self.upgrade_settings = b""
        if upgrade:
            self.upgrade_settings = self.conn.initiate_upgrade_connection() or b""
            self.responses[1] = Response()
        else:
            self.conn.initiate_connection()
            self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        body: bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
        end: bool = True,
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.responses[sid] = Response()
        self.conn.send_headers(
            sid,
            [
                (":method", method),
                (":scheme", "http"),
                (":authority", "localhost"),
                (":path", path),
                *headers,
            ],
            end_stream=end and body is None,
        )
        if body is not None:
            self.send_body(sid, body, end)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        """Send `body`, waiting for window as needed."""
        view = memoryview(body)
        while view:
            window = min(
                self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                self.flush()
                self.pump(lambda: self.conn.local_flow_control_window(sid) > 0)
                continue
            self.conn.send_data(sid, bytes(view[:window]))
            view = view[window:]
        if end:
            self.conn.end_stream(sid)
        self.flush()

    def pump(self, until: Callable[[], bool], timeout: float | None = None) -> bool:
        """Read and handle events until `until()` or the connection closes; the last answer."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not until():
            if self.closed:
                return until()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer from the server in time")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                continue
            self.handle(self.conn.receive_data(data))
            self.flush()
        return True

    def handle(self, events: list[Any]) -> None:
        for event in events:
            self.events.append(event)
            sid = getattr(event, "stream_id", None)
            response = self.responses.setdefault(sid, Response()) if sid else None
            if isinstance(event, h2.events.ResponseReceived):
                assert response is not None
                headers = list(event.headers)
                response.status = int(dict(headers)[b":status"])
                response.headers = [(bytes(n), bytes(v)) for n, v in headers]
            elif isinstance(event, h2.events.InformationalResponseReceived):
                assert response is not None
                response.informational.append(int(dict(event.headers)[b":status"]))
            elif isinstance(event, h2.events.DataReceived):
                assert response is not None
                response.body += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                assert response is not None
                response.trailers = [(bytes(n), bytes(v)) for n, v in event.headers]
            elif isinstance(event, h2.events.StreamEnded):
                assert response is not None
                response.ended = True
            elif isinstance(event, h2.events.StreamReset):
                assert response is not None
                response.reset = event.error_code
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway = event
                # h2 as a client stops at a GOAWAY; real clients go on reading
                # the streams below its last stream id (RFC 9113 6.8).
                self.conn.state_machine.state = ConnectionState.CLIENT_OPEN

    def response(self, sid: int, timeout: float | None = None) -> Response:
        # setdefault: a pushed stream's response may not have begun yet.
        response = self.responses.setdefault(sid, Response())
        self.pump(lambda: response.ended or response.reset is not None, timeout)
        return response

    def get(self, path: str = "/", **kwargs: Any) -> Response:
        return self.response(self.request(path, **kwargs))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# -- raw frames -------------------------------------------------------------------------


class FrameClient:
    """Send hand-made frames, read the server's frames (for h2spec-style checks)."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None, timeout: float = 5.0) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.timeout = timeout
        self.buffer = b""
        self.encoder = hpack.Encoder()
        self.closed = False

    def handshake(self, settings: dict[int, int] | None = None) -> None:
        """Preface and SETTINGS; read until the server's SETTINGS and the ACK of ours."""
        frame = SettingsFrame(0)
        for key, value in (settings or {}).items():
            frame.settings[key] = value
        self.sock.sendall(PREFACE + frame.serialize())
        got_settings = got_ack = False
        while not (got_settings and got_ack):
            received = self.read_frame()
            assert received is not None, "connection closed during the handshake"
            if isinstance(received, SettingsFrame):
                if "ACK" in received.flags:
                    got_ack = True
                else:
                    got_settings = True
                    self.send(SettingsFrame(0, flags=["ACK"]))

    def send(self, *frames: Frame) -> None:
        self.sock.sendall(b"".join(f.serialize() for f in frames))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def headers_block(self, headers: Iterable[tuple[str, str]]) -> bytes:
        return bytes(self.encoder.encode(list(headers)))

    def read_frame(self) -> Frame | None:
        """The next frame, or None once the server closed the connection."""
        deadline = time.monotonic() + self.timeout
        while True:
            if len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) >= 9 + length:
                    frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
                    self.buffer = self.buffer[9 + length :]
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the server in time")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                return None
            self.buffer += data

    def expect_error(self, code: int, stream_id: int | None = None) -> str:
        """h2spec's rule: a GOAWAY or (for a stream error) RST_STREAM with `code`, or a close.

        Returns which of the three came.
        """
        while True:
            frame = self.read_frame()
            if frame is None:
                return "closed"
            if isinstance(frame, GoAwayFrame):
                assert frame.error_code == code, f"GOAWAY {frame.error_code}, expected {code}"
                return "goaway"
            if isinstance(frame, RstStreamFrame) and frame.stream_id == stream_id:
                assert frame.error_code == code, f"RST_STREAM {frame.error_code}, not {code}"
                return "rst_stream"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
