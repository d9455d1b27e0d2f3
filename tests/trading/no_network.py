"""Running code in a fresh interpreter whose sockets cannot be created: the proof that the
decision core does no network I/O (issues 3 and 4; STYLE principle 1)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = textwrap.dedent("""
    import socket

    def refuse(*args, **kwargs):
        raise RuntimeError("network access attempted by the decision core")

    class RefusingSocket(socket.socket):
        # A subclass, not a function, so modules that subclass socket.socket (ssl) still
        # import; only creating a socket fails.
        def __init__(self, *args, **kwargs):
            refuse()

    socket.socket = RefusingSocket
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    socket.socketpair = refuse
""")


def run_without_network(script: str) -> None:
    """Run `script` (which must print `no-io-ok` at its end) with the network disabled."""
    completed = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().endswith("no-io-ok")
