"""Where a server listens: host and port checks, and the warning for anything but loopback.

Shared by ``eventdash web`` (:mod:`tui.web`) and ``eventdash serve`` (:mod:`tui.service`); no
Textual, no aiohttp. Errors name the flag they are given (``--host``, ``--port``, ``--listen``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


class ListenError(ValueError):
    """A bad host or port flag: one line naming the flag, exit 2."""


@dataclass(frozen=True)
class Listen:
    """Where the server listens, and the URL a browser uses to reach it."""

    host: str
    port: int
    public_url: str

    def exposed(self) -> bool:
        """True when anything but this machine can connect: the host resolves to a non-loopback address."""
        return not all(ipaddress.ip_address(address).is_loopback for address in _addresses(self.host))

    def warning(self, exposes: str = "the dashboard with no password") -> str | None:
        """The stderr line for a server others can reach, or None on loopback."""
        if not self.exposed():
            return None
        return (
            f"warning: listening on {self.host}:{self.port}, which is not loopback: anyone who can reach it "
            f"gets {exposes}; put it behind a proxy with authentication, or use 127.0.0.1"
        )


def _addresses(host: str, flag: str = "--host") -> set[str]:
    try:
        return {str(info[4][0]).split("%")[0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError) as exc:
        raise ListenError(f"{flag}: cannot resolve {host!r}: {getattr(exc, 'strerror', None) or exc}") from None


def parse_port(text: str, flag: str = "--port") -> int:
    """A TCP port written in ASCII digits, 1-65535 (``int`` would also take ``'２２'`` or ``' 8_0'``)."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ListenError(f"{flag}: expected a port number 1-65535 in digits 0-9, got {text!r}")
    return int(text)


def parse_host(text: str, flag: str = "--host") -> str:
    """An IP address or a DNS host name that resolves; IPv6 without brackets (``::1``)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not (text.isascii() and len(text) <= 253 and _HOSTNAME.fullmatch(text)):
            raise ListenError(f"{flag}: expected an IP address or a host name, got {text!r}") from None
    _addresses(text, flag)  # refuse a name that does not resolve now, not at the first bind
    return text


