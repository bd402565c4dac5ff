"""The preflight of a Windows host: its WinRM listener must accept a connection.

A real listening socket on loopback stands for the host's WinRM port, and a port nothing
listens on for a host whose listener is down.
"""

from __future__ import annotations

import socket

from acmefleet.fleet.inventory import FleetHost
from acmefleet.fleet.preflight import preflight


def windows_host(name: str, port: int) -> FleetHost:
    return FleetHost(
        name=name,
        address="127.0.0.1",
        stack="win_acme_iis",
        names=(f"{name}.example.net",),
        endpoint="private",
        org="example",
        variables={"ansible_port": port, "ansible_connection": "winrm"},
    )


def test_windows_hosts_pass_when_winrm_answers_and_fail_when_it_does_not() -> None:
    with socket.socket() as listener, socket.socket() as closed:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        up = windows_host("win-up", listener.getsockname()[1])
        down = windows_host("win-down", closed.getsockname()[1])
        results = preflight([up, down], ssh_options=[], timeout=5)
    assert results["win-up"].ok and results["win-up"].os == "windows"
    assert not results["win-down"].ok
    problem = results["win-down"].problem or ""
    assert problem.startswith(f"WinRM port {down.variables['ansible_port']} does not answer")
