"""What ``followup serve`` checks before it says "serving on": the dashboard password for the address, and the port."""
from __future__ import annotations

import errno
import ipaddress
import socket

from ..errors import FollowupError, InputError
from .options import PASSWORD_ENV, ServiceOptions

__all__ = ["check_password", "listen", "password_line", "is_loopback", "DEFAULT_PASSWORD", "MIN_PASSWORD"]

DEFAULT_PASSWORD = "followup"  # what `make run` sets when FOLLOWUP_DASHBOARD_PASSWORD is unset
MIN_PASSWORD = 12


def is_loopback(host: str) -> bool:
    """True when only this machine can reach ``host`` (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public address


def check_password(host: str, options: ServiceOptions) -> None:
    """Refuse a non-loopback ``host`` when the dashboard password is the default one or too short."""
    password = options.dashboard_password
    if password is None or is_loopback(host):
        return
    if password == DEFAULT_PASSWORD or len(password) < MIN_PASSWORD:
        problem = "is the default 'followup'" if password == DEFAULT_PASSWORD else f"is shorter than {MIN_PASSWORD} characters"
        raise InputError(
            f"the dashboard password (from {options.password_source}) {problem}, and --host {host} is reachable "
            f"from other machines; set a longer one with `export {PASSWORD_ENV}=...` or "
            f"`service: {{dashboard_password: ${{{PASSWORD_ENV}}}}}` in settings.yaml, or serve on --host 127.0.0.1")


def password_line(options: ServiceOptions) -> str:
    """Where the dashboard password comes from (never the password itself)."""
    if options.password_source is None:
        return (f"dashboard password: none set, dashboard login only with an API key "
                f"(set {PASSWORD_ENV} or service.dashboard_password)")
    return f"dashboard password: from {options.password_source}"


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``; a busy port is one line that suggests another."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise InputError(f"--host {host}: not an address this machine can listen on ({err.strerror})") from err
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise FollowupError(f"port {port} on {host} is already in use; stop what holds it or pick another "
                                f"with --port {port + 1 if port < 65535 else 8080}") from err
        raise FollowupError(f"cannot listen on {host}:{port}: {err.strerror}") from err
    sock.set_inheritable(True)
    return sock
