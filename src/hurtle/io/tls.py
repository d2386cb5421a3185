"""TLS: the server's `ssl.SSLContext` from the options, and the ASGI ``tls`` extension.

`create_ssl_context` turns the ``ssl_*`` options into a context, or raises
`TLSConfigError` with a message naming the file and the reason, so the server
can log one line and exit with status 1 instead of printing a traceback.

ALPN offers ``h2`` and ``http/1.1`` (``--http auto``, when the ``h2`` package is
importable), only one of them with ``--http h2`` or ``--http h1``.

`tls_extension` builds the ``scope["extensions"]["tls"]`` dict of the asgiref
TLS extension once per connection (not per request).
"""

from __future__ import annotations

import re
import ssl
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hurtle.config import Config

__all__ = ["TLSConfigError", "alpn_protocols", "create_ssl_context", "tls_extension"]

# Mozilla's "intermediate" TLS 1.2 suites: forward secret AEAD ciphers only.
# RFC 9113 9.2.2 forbids HTTP/2 over the older suites (its appendix A list),
# and a client that negotiates one may fail with INADEQUATE_SECURITY.
DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS"

_TLS_VERSIONS = {
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
# The wire numbers of the ASGI extension's ``tls_version`` (RFC 8446 B.1 style).
_TLS_VERSION_NUMBERS = {
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class TLSConfigError(Exception):
    """The TLS options cannot make a working context (missing file, bad key, wrong password)."""


class _ContextInfo:
    """What the ``tls`` extension needs that an `ssl.SSLContext` does not expose."""

    __slots__ = ("cipher_ids", "server_cert")

    def __init__(self, server_cert: str | None, cipher_ids: dict[str, int]) -> None:
        self.server_cert = server_cert
        self.cipher_ids = cipher_ids


# Keyed by context so that servers with different certificates in one
# process (tests) each report their own.
_CONTEXT_INFO: weakref.WeakKeyDictionary[ssl.SSLContext, _ContextInfo] = weakref.WeakKeyDictionary()


def h2_available() -> bool:
    """Whether the ``h2`` package (the ``standard`` extra) is importable."""
    try:
        import h2  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def alpn_protocols(http: str) -> list[str]:
    """The ALPN protocol names offered for ``--http``, the preferred first."""
    if http == "h1":
        return ["http/1.1"]
    if http == "h2":
        return ["h2"]
    return ["h2", "http/1.1"] if h2_available() else ["http/1.1"]


def _read_first_cert(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            match = _PEM_CERT.search(file.read())
    except OSError:
        return None
    return match.group(0) + "\n" if match else None


def create_ssl_context(config: Config) -> ssl.SSLContext:
    """A server context for `config`; `TLSConfigError` with a readable reason on failure."""
    certfile = config.ssl_certfile
    keyfile = config.ssl_keyfile
    if not certfile:
        raise TLSConfigError("--ssl-keyfile needs --ssl-certfile (the certificate chain)")
    if config.ssl_cert_reqs != ssl.CERT_NONE and not config.ssl_ca_certs:
        raise TLSConfigError("--ssl-cert-reqs 1 or 2 needs --ssl-ca-certs to verify clients")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[config.ssl_min_version]
    # RFC 9113 9.2.1: no TLS compression (CRIME) and no renegotiation for HTTP/2.
    context.options |= ssl.OP_NO_COMPRESSION
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    try:
        context.set_ciphers(config.ssl_ciphers or DEFAULT_CIPHERS)
    except ssl.SSLError as exc:
        raise TLSConfigError(f"invalid --ssl-ciphers {config.ssl_ciphers!r}: {exc}") from None
    password = config.ssl_keyfile_password
    try:
        context.load_cert_chain(certfile, keyfile or None, password)
    except FileNotFoundError as exc:
        raise TLSConfigError(f"TLS file not found: {exc.filename}") from None
    except OSError as exc:
        # ssl.SSLError is an OSError: a bad PEM, a key that does not match the
        # certificate, an encrypted key without (or with a wrong) password.
        files = certfile if not keyfile else f"{certfile} / {keyfile}"
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise TLSConfigError(
            f"cannot load the TLS certificate and key ({files}): {reason}"
        ) from None
    if config.ssl_ca_certs:
        try:
            context.load_verify_locations(config.ssl_ca_certs)
        except FileNotFoundError:
            raise TLSConfigError(f"TLS file not found: {config.ssl_ca_certs}") from None
        except OSError as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            raise TLSConfigError(
                f"cannot load --ssl-ca-certs {config.ssl_ca_certs}: {reason}"
            ) from None
    context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    context.set_alpn_protocols(alpn_protocols(config.http))
    cipher_ids = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}
    _CONTEXT_INFO[context] = _ContextInfo(_read_first_cert(certfile), cipher_ids)
    return context


def _rfc4514_name(subject: Any) -> str | None:
    """``getpeercert()["subject"]`` as an RFC 4514 string (most specific RDN first)."""
    if not subject:
        return None
    short = {
        "commonName": "CN",
        "organizationName": "O",
        "organizationalUnitName": "OU",
        "countryName": "C",
        "stateOrProvinceName": "ST",
        "localityName": "L",
        "domainComponent": "DC",
        "userId": "UID",
        "streetAddress": "STREET",
    }
    rdns = []
    for rdn in reversed(subject):
        parts = []
        for key, value in rdn:
            escaped = re.sub(r'([,+"\\<>;])', r"\\\1", str(value))
            parts.append(f"{short.get(key, key)}={escaped}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def tls_extension(transport: Any) -> dict[str, Any]:
    """The asgiref ``tls`` extension for a TLS connection, computed once per connection."""
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    context = transport.get_extra_info("sslcontext")
    info = _CONTEXT_INFO.get(context) if context is not None else None
    extension: dict[str, Any] = {
        "server_cert": info.server_cert if info is not None else None,
        "client_cert_chain": [],
        "client_cert_name": None,
        # A client certificate that fails verification fails the handshake, so
        # an app only ever sees verified (or absent) client certificates.
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }
    if ssl_object is None:
        return extension
    version = ssl_object.version()
    extension["tls_version"] = _TLS_VERSION_NUMBERS.get(version or "")
    cipher = ssl_object.cipher()
    if cipher is not None and info is not None:
        extension["cipher_suite"] = info.cipher_ids.get(cipher[0])
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        chain: list[str] = []
        get_chain = getattr(ssl_object, "get_verified_chain", None)  # Python 3.13+
        if get_chain is not None:
            try:
                chain = [ssl.DER_cert_to_PEM_cert(bytes(cert)) for cert in get_chain()]
            except (ssl.SSLError, TypeError, ValueError):
                chain = []
        extension["client_cert_chain"] = chain or [ssl.DER_cert_to_PEM_cert(der)]
        peer = ssl_object.getpeercert() or {}
        extension["client_cert_name"] = _rfc4514_name(peer.get("subject"))
    return extension
