"""Loaded by every Python process the tests start (this folder is on PYTHONPATH): blocks and records
any outbound connection to a non-loopback address, so a test that tries to phone home fails."""

import ipaddress
import os
import socket

_LOG = os.environ.get("NETGUARD_LOG")
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths
        return True
    host = address[0]
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host in ("localhost",)


def _refuse(address):
    message = f"netguard: blocked outbound connection to {address!r} (pid {os.getpid()})"
    if _LOG:
        with open(_LOG, "a") as handle:
            handle.write(message + "\n")
    raise ConnectionRefusedError(message)


def _connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
        _refuse(address)
    return _original_connect(self, address)


def _connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
        _refuse(address)
    return _original_connect_ex(self, address)


socket.socket.connect = _connect
socket.socket.connect_ex = _connect_ex
