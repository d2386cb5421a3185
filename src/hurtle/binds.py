"""Where to listen: ``--bind`` addresses and systemd socket activation.

``--bind`` takes gunicorn's spellings, repeatable::

    127.0.0.1:8000    HOST:PORT (a name resolves to every address it has)
    [::]:8000         IPv6 in brackets; '::' alone binds IPv6 and IPv4
    :8000             every interface
    localhost         HOST alone: port 8000
    unix:/run/x.sock  a Unix socket
    fd://3            an already bound socket inherited on descriptor 3

Socket activation (``sd_listen_fds``): when ``LISTEN_PID`` is this process
and ``LISTEN_FDS`` is N, descriptors 3 .. 3+N-1 are listening sockets the
service manager bound; they are served with no option at all. The variables
are removed from the environment once read, so no child process mistakes
them for its own.

`bind_sockets` binds everything a `Config` asks for, once: the single-process
server serves the list, and the supervisor hands it to every worker.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from hurtle.config import Config

__all__ = [
    "BindAddress",
    "BoundSockets",
    "bind_sockets",
    "listen_fds",
    "needs_binding",
    "parse_bind",
]

# sd_listen_fds(3): the first passed descriptor is always 3.
SD_LISTEN_FDS_START = 3

# gunicorn's port when an address names only a host.
DEFAULT_BIND_PORT = 8000


@dataclass(frozen=True)
class BindAddress:
    """One parsed ``--bind`` value."""

    kind: Literal["tcp", "unix", "fd"]
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1


def parse_bind(text: str) -> BindAddress:
    """Parse one ``--bind`` value; `ValueError` names the value and what is wrong."""
    value = text.strip()

    def bad(reason: str) -> ValueError:
        return ValueError(f"bind: invalid address {text!r}: {reason}")

    if not value:
        raise bad("empty")
    if value.startswith("unix:"):
        path = value[len("unix:") :]
        if path.startswith("//"):
            path = path[2:]  # unix:///run/x.sock as well as unix:/run/x.sock
        if not path:
            raise bad("no socket path after 'unix:'")
        return BindAddress("unix", path=path)
    if value.startswith("fd://"):
        try:
            fd = int(value[len("fd://") :])
        except ValueError:
            raise bad("expected fd://N with a number N") from None
        if fd < 0:
            raise bad("a file descriptor is not negative")
        return BindAddress("fd", fd=fd)
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep:
            raise bad("missing ']' after an IPv6 address")
        if rest and not rest.startswith(":"):
            raise bad("expected ':PORT' after ']'")
        port_text = rest[1:] if rest else ""
    elif value.count(":") > 1:
        raise bad("write IPv6 addresses in brackets, like [::1]:8000")
    else:
        host, sep, port_text = value.partition(":")
        if sep and not port_text:
            raise bad("no port after ':'")
    if not port_text:
        return BindAddress("tcp", host=host, port=DEFAULT_BIND_PORT)
    try:
        port = int(port_text)
    except ValueError:
        raise bad(f"port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise bad("port must be in 0..65535")
    return BindAddress("tcp", host=host, port=port)


def listen_fds(environ: MutableMapping[str, str] | None = None, unset: bool = True) -> list[int]:
    """The descriptors passed by systemd socket activation, or ``[]``.

    Only when ``LISTEN_PID`` names this process: the variables may have been
    meant for a parent and inherited by mistake.
    """
    env = os.environ if environ is None else environ
    pid_text = env.get("LISTEN_PID")
    count_text = env.get("LISTEN_FDS")
    if pid_text is None or count_text is None:
        return []
    if unset:
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(name, None)
    try:
        pid = int(pid_text)
        count = int(count_text)
    except ValueError:
        return []
    if pid != os.getpid() or count <= 0:
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))


def _default_host_port(config: Config) -> bool:
    from hurtle.config import Config  # noqa: PLC0415 - config imports us lazily

    defaults = Config("")
    return config.host == defaults.host and config.port == defaults.port


def needs_binding(config: Config, activated: Sequence[int]) -> bool:
    """Whether the addresses go beyond the one that `hurtle.Server` binds itself."""
    return bool(config.bind or activated)


@dataclass
class BoundSockets:
    """Sockets bound for a config, and the Unix socket files to remove after."""

    sockets: list[socket.socket]
    unix_paths: list[tuple[str, tuple[int, int]]]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for path, inode in self.unix_paths:
            # Only our own file: another server may have replaced it since.
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) == inode:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def _addresses(config: Config, activated: Sequence[int]) -> list[BindAddress]:
    addresses = [BindAddress("fd", fd=fd) for fd in activated]
    addresses += [parse_bind(text) for text in config.bind]
    if config.fd is not None:
        addresses.append(BindAddress("fd", fd=config.fd))
    if config.uds is not None:
        addresses.append(BindAddress("unix", path=config.uds))
    # Uvicorn's rule without --bind: --fd, else --uds, else host and port.
    # With --bind or activated sockets, host and port only when set.
    explicit = config.bind or activated
    if not addresses or (explicit and not _default_host_port(config)):
        addresses.append(BindAddress("tcp", host=config.host, port=config.port))
    return addresses


def bind_sockets(
    config: Config, activated: Sequence[int] = (), reuse_port: bool = False
) -> BoundSockets:
    """Bind every address `config` names (plus `activated` descriptors); `OSError` on failure.

    The sockets are bound but not listening. ``reuse_port`` sets SO_REUSEPORT
    on TCP sockets so that workers can bind the same address again.
    """
    from hurtle.server import bind_tcp, bind_unix, socket_from_fd  # noqa: PLC0415

    bound = BoundSockets([], [])
    permissions = int(config.uds_permissions, 8)
    try:
        for address in _addresses(config, activated):
            if address.kind == "fd":
                bound.sockets.append(socket_from_fd(address.fd))
            elif address.kind == "unix":
                sock = bind_unix(address.path)
                bound.sockets.append(sock)
                st = os.stat(address.path)
                bound.unix_paths.append((address.path, (st.st_dev, st.st_ino)))
                os.chmod(address.path, permissions)
            else:
                bound.sockets += bind_tcp(address.host, address.port, reuse_port=reuse_port)
    except BaseException:
        bound.close()
        raise
    return bound
