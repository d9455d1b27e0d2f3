"""A free TCP port on the loopback interface, for a server this process is about to start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now. The operating system picks it; another process could
    take it before our server binds, which on a test or bench machine is rare enough to accept."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
