"""TLS: options, the ``tls`` scope extension, client certificates, startup errors, timeouts."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from hurtle.config import Config
from hurtle.io.tls import TLSConfigError, alpn_protocols, create_ssl_context
from tests.h2_helpers import Certs
from tests.utils import run_server, run_server_process

pytestmark = pytest.mark.timeout(60)


def scope_app(scopes: list[dict[str, Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["scheme"].encode()})

    return app


@pytest.mark.parametrize("http2", [False, True])
def test_https_scope_and_tls_extension(certs: Certs, http2: bool) -> None:
    scopes: list[dict[str, Any]] = []
    with (
        run_server(scope_app(scopes), ssl_certfile=certs.certfile, ssl_keyfile=certs.keyfile) as s,
        httpx.Client(http2=http2, verify=certs.client_context()) as client,
    ):
        response = client.get(f"https://localhost:{s.port}/")
    assert response.text == "https"
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    tls = scopes[0]["extensions"]["tls"]
    first_cert = Path(certs.certfile).read_text().split("-----END CERTIFICATE-----")[0]
    assert tls["server_cert"] == first_cert + "-----END CERTIFICATE-----\n"
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int) and 0 < tls["cipher_suite"] <= 0xFFFF


def test_client_certificate_required(certs: Certs, tmp_path: Path) -> None:
    client_cert = certs.ca.issue_cert("alice@example.com", common_name="alice")
    scopes: list[dict[str, Any]] = []
    options = {
        "ssl_certfile": certs.certfile,
        "ssl_keyfile": certs.keyfile,
        "ssl_ca_certs": certs.cafile,
        "ssl_cert_reqs": 2,
    }
    with run_server(scope_app(scopes), **options) as s:
        context = certs.client_context(["http/1.1"])
        client_cert.configure_cert(context)
        with httpx.Client(verify=context) as client:
            assert client.get(f"https://localhost:{s.port}/").status_code == 200
        # Without a certificate, the handshake fails.
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(f"https://localhost:{s.port}/", verify=certs.client_context(["http/1.1"]))
    tls = scopes[0]["extensions"]["tls"]
    assert tls["client_cert_name"] is not None and "CN=alice" in tls["client_cert_name"]
    assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")


def test_minimum_version_tls13(certs: Certs) -> None:
    with run_server(
        scope_app([]),
        ssl_certfile=certs.certfile,
        ssl_keyfile=certs.keyfile,
        ssl_min_version="TLSv1.3",
    ) as s:
        old = certs.client_context(["http/1.1"])
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((httpx.ConnectError, httpx.ReadError)):
            httpx.get(f"https://localhost:{s.port}/", verify=old)
        assert httpx.get(f"https://localhost:{s.port}/", verify=certs.client_context()).text == (
            "https"
        )


def test_handshake_timeout_closes_silent_clients(certs: Certs) -> None:
    with run_server(
        scope_app([]),
        ssl_certfile=certs.certfile,
        ssl_keyfile=certs.keyfile,
        ssl_handshake_timeout=0.3,
    ) as s:
        assert s.port is not None
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
            start = time.monotonic()
            assert sock.recv(1024) == b""  # closed without a byte of handshake
            assert time.monotonic() - start < 3


def test_alpn_offers() -> None:
    assert alpn_protocols("auto") == ["h2", "http/1.1"]
    assert alpn_protocols("h1") == ["http/1.1"]
    assert alpn_protocols("h2") == ["h2"]


def test_http_h1_alpn_is_http11_only(certs: Certs) -> None:
    with (
        run_server(
            scope_app([]), ssl_certfile=certs.certfile, ssl_keyfile=certs.keyfile, http="h1"
        ) as s,
        httpx.Client(http2=True, verify=certs.client_context()) as client,
    ):
        assert client.get(f"https://localhost:{s.port}/").http_version == "HTTP/1.1"


def test_encrypted_key_with_password(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    certfile = tmp_path / "cert.pem"
    keyfile = tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    config = Config("x:y", ssl_certfile=str(certfile), ssl_keyfile=str(keyfile))
    with pytest.raises(TLSConfigError):
        create_ssl_context(config.replace(ssl_keyfile_password="wrong"))
    assert isinstance(
        create_ssl_context(config.replace(ssl_keyfile_password="secret")), ssl.SSLContext
    )


@pytest.mark.parametrize("problem", ["missing", "garbage", "mismatch", "ciphers", "no-ca"])
def test_bad_tls_files_exit_1_with_a_clear_error(
    problem: str, certs: Certs, tmp_path: Path
) -> None:
    args: list[str] = []
    certfile, keyfile = certs.certfile, certs.keyfile
    extra: list[str] = []
    expected = "TLS configuration error"
    if problem == "missing":
        certfile = str(tmp_path / "nope.pem")
        expected = "not found"
    elif problem == "garbage":
        garbage = tmp_path / "garbage.pem"
        garbage.write_text("not a certificate\n")
        certfile = str(garbage)
    elif problem == "mismatch":
        other = trustme.CA().issue_cert("localhost")
        other_key = tmp_path / "other.pem"
        other.private_key_pem.write_to_path(str(other_key))
        keyfile = str(other_key)
    elif problem == "ciphers":
        extra = ["--ssl-ciphers", "NOT-A-CIPHER"]
    else:
        extra = ["--ssl-cert-reqs", "2"]
    config = Config(
        "x:y",
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        ssl_ciphers=extra[1] if problem == "ciphers" else None,
        ssl_cert_reqs=2 if problem == "no-ca" else 0,
    )
    with pytest.raises(TLSConfigError):
        create_ssl_context(config)
    app = args[0] if args else "tests.test_tls:plain_app"
    with run_server_process(
        [app, "--ssl-certfile", certfile, "--ssl-keyfile", keyfile, *extra], wait_ready=False
    ) as proc:
        code = proc.wait()
    assert code == 1
    assert expected in proc.output
    assert "Traceback" not in proc.output


async def plain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_https_logged_in_the_running_line(certs: Certs) -> None:
    with run_server_process(
        [
            "tests.test_tls:plain_app",
            "--ssl-certfile",
            certs.certfile,
            "--ssl-keyfile",
            certs.keyfile,
        ],
        wait_ready=False,
    ) as proc:
        match = proc.wait_for_line(r"running on https://127\.0\.0\.1:(\d+)")
        port = int(match.group(1))
        response = httpx.get(f"https://localhost:{port}/", verify=certs.client_context())
        assert response.text == "ok"
