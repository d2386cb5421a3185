"""The demo app `examples.tasks` served by the real server, over loopback.

Most tests run it in a background thread through `tests.utils.run_server`; the
last one starts it the way the README does, as a real ``hurtle`` process.
"""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from examples.tasks import MAX_BODY
from tests.utils import run_server, run_server_process

APP = "examples.tasks:app"


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    # One server for the read-mostly tests; tests that count tasks start their own.
    with run_server(APP) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def fresh() -> Iterator[httpx.Client]:
    with run_server(APP) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def test_hello(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    assert response.text.startswith("Hello")


def test_create_list_and_get(fresh: httpx.Client) -> None:
    assert fresh.get("/tasks").json() == []

    created = fresh.post("/tasks", json={"title": "Works"})
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json"
    assert created.json() == {"id": 1, "title": "Works", "done": False}

    second = fresh.post("/tasks", json={"title": "Also works"}).json()
    assert second["id"] == 2

    assert fresh.get("/tasks").json() == [created.json(), second]
    one = fresh.get("/tasks/1")
    assert one.status_code == 200
    assert one.json() == created.json()


def test_unknown_task_is_404(client: httpx.Client) -> None:
    for path in ("/tasks/999999", "/tasks/abc", "/tasks/-1", "/tasks/", "/tasks/1/x"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "error" in response.json()


def test_unknown_path_is_404(client: httpx.Client) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/tasks", "GET, HEAD, POST"),
        ("DELETE", "/tasks", "GET, HEAD, POST"),
        ("POST", "/tasks/1", "GET, HEAD"),
        ("DELETE", "/tasks/1", "GET, HEAD"),
        ("POST", "/", "GET, HEAD"),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: httpx.Client, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'"Works"',
        b"{}",
        b'{"title": 3}',
        b'{"title": "   "}',
        b'{"name": "Works"}',
    ],
)
def test_bad_body_is_400(client: httpx.Client, body: bytes) -> None:
    response = client.post("/tasks", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()


def test_head_has_headers_but_no_body(client: httpx.Client) -> None:
    get = client.get("/tasks")
    head = client.head("/tasks")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


def test_body_streamed_in_pieces(fresh: httpx.Client) -> None:
    payload = json.dumps({"title": "streamed " + "x" * 200_000}).encode()

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(payload), 7_000):
            yield payload[start : start + 7_000]

    response = fresh.post("/tasks", content=pieces(), headers={"content-type": "application/json"})
    assert response.status_code == 201
    assert response.json()["title"].startswith("streamed xxx")


def test_body_at_the_cap_is_accepted(fresh: httpx.Client) -> None:
    prefix = b'{"title": "'
    suffix = b'"}'
    body = prefix + b"y" * (MAX_BODY - len(prefix) - len(suffix)) + suffix
    assert len(body) == MAX_BODY
    response = fresh.post("/tasks", content=body)
    assert response.status_code == 201
    assert len(response.json()["title"]) == MAX_BODY - len(prefix) - len(suffix)


def test_streamed_body_over_the_cap_is_413(client: httpx.Client) -> None:
    def pieces() -> Iterator[bytes]:
        # Chunked, so the app only learns the size by reading.
        yield b'{"title": "'
        for _ in range(16):
            yield b"z" * (MAX_BODY // 16)
        yield b'"}'

    response = client.post("/tasks", content=pieces())
    assert response.status_code == 413
    assert "error" in response.json()


def test_declared_body_over_the_cap_is_413_before_reading(client: httpx.Client) -> None:
    # Raw socket: the client sends only the head and reads the answer; the app must
    # refuse on the declared content-length without waiting for the body.
    url = httpx.URL(str(client.base_url))
    assert url.host is not None and url.port is not None
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(
            b"POST /tasks HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % (MAX_BODY + 1)
        )
        status, _, body = _read_response(sock)
    assert status == 413
    assert b"error" in body


def test_lifespan_off_uses_the_module_store() -> None:
    with run_server(APP, lifespan="off") as server, httpx.Client(base_url=server.url) as client:
        created = client.post("/tasks", json={"title": "no lifespan"})
        assert created.status_code == 201
        task_id = created.json()["id"]
        assert client.get(f"/tasks/{task_id}").json()["title"] == "no lifespan"


def _read_response(sock: socket.socket) -> tuple[int, dict[bytes, bytes], bytes]:
    """Read one response with a content-length body from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the head ended: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers[b"content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the body ended"
        body += chunk
    return int(status_line.split()[1]), headers, body


# -- the README's serve command, as a real process -----------------------------


def test_readme_serve_command_then_curl_post() -> None:
    # `hurtle examples.tasks:app` from the repository root, on a free port.
    with run_server_process([APP, "--port", "0"]) as process:
        # curl -X POST localhost:8000/tasks -H 'content-type: application/json' \
        #      -d '{"title": "Works"}'
        response = httpx.post(
            f"{process.url}/tasks",
            content=b'{"title": "Works"}',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 201, response.text
        assert response.json() == {"id": 1, "title": "Works", "done": False}
        listing: list[dict[str, Any]] = httpx.get(f"{process.url}/tasks").json()
        assert listing == [{"id": 1, "title": "Works", "done": False}]

        process.send_signal(signal.SIGTERM)
        assert process.wait() == 0, process.output
    assert "Tasks API ready" in process.output
    assert "Tasks API stopping with 1 task(s)" in process.output
