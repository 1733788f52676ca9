"""The network guard itself: outbound non-loopback connections fail, in this process and in children."""

import socket
import subprocess
import sys

import pytest


def test_non_loopback_connection_is_refused_in_process(tmp_path, monkeypatch):
    with pytest.raises(ConnectionRefusedError, match="netguard"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never routable
    # The attempt was recorded; clear it so this deliberate one does not fail the session.
    import os

    log = os.environ["NETGUARD_LOG"]
    assert "192.0.2.1" in open(log).read()
    open(log, "w").close()


def test_child_processes_are_guarded(tmp_path):
    code = "import socket\ntry:\n socket.create_connection(('192.0.2.1', 80), timeout=1)\nexcept ConnectionRefusedError as e:\n print('refused', e)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
    assert "refused netguard" in out
    import os

    open(os.environ["NETGUARD_LOG"], "w").close()


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname(), timeout=1)
    client.close()
    server.close()
