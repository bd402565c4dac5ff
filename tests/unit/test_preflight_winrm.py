"""The Windows preflight and status over WinRM (pywinrm), without a Windows host.

No Windows host runs here, so the WSMan and PowerShell parts are checked on paper: the
parsers read the answers as Microsoft documents them (an IdentifyResponse as Windows sends
it, ConvertTo-Json of our own scripts' objects), the settings are built as Ansible's winrm
connection builds them, and the network verdicts are real: a port nothing listens on, and
a listener that accepts and never answers.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import socket
import time
from pathlib import Path

import pytest

from acmefleet.fleet import winrm_probe
from acmefleet.fleet.inventory import FleetHost
from acmefleet.fleet.preflight import preflight
from acmefleet.fleet.renew import renew_host
from acmefleet.fleet.winrm_probe import HostFacts, WinrmContext

# As Windows Server 2012 R2 answered an authenticated Identify (a captured exchange).
IDENTIFY_RESPONSE = (
    '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
    "<s:Header></s:Header><s:Body><wsmid:IdentifyResponse "
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<wsmid:ProtocolVersion>http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
    "</wsmid:ProtocolVersion><wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>"
    "<wsmid:ProductVersion>OS: 6.3.9600 SP: 0.0 Stack: 3.0</wsmid:ProductVersion>"
    "<wsmid:SecurityProfiles><wsmid:SecurityProfileName>"
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/basic"
    "</wsmid:SecurityProfileName></wsmid:SecurityProfiles></wsmid:IdentifyResponse>"
    "</s:Body></s:Envelope>"
)


def windows_host(name: str, port: int, **variables: object) -> FleetHost:
    return FleetHost(
        name=name,
        address="127.0.0.1",
        stack="win_acme_iis",
        names=(f"{name}.example.net",),
        endpoint="private",
        org="example",
        variables={
            "ansible_port": port,
            "ansible_connection": "winrm",
            "ansible_user": "EXAMPLE\\svc-ansible",
            "ansible_password": "not-a-real-password",
            "ansible_winrm_transport": "ntlm",
            **variables,
        },
    )


def test_identify_response_is_read() -> None:
    identity = winrm_probe.parse_identify(IDENTIFY_RESPONSE.encode())
    assert identity.vendor == "Microsoft Corporation"
    assert identity.product_version == "OS: 6.3.9600 SP: 0.0 Stack: 3.0"
    assert identity.protocol_version == "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
    with pytest.raises(winrm_probe.WinrmProblem, match="no IdentifyResponse"):
        winrm_probe.parse_identify(b"<s:Envelope xmlns:s='x'><s:Body/></s:Envelope>")
    with pytest.raises(winrm_probe.WinrmProblem, match="not XML"):
        winrm_probe.parse_identify(b"<html")


@pytest.mark.parametrize(
    ("answer", "ok", "problem"),
    [
        (
            b'{"powershell":"5.1.20348.2849","caption":"Microsoft Windows Server 2022 Standard",'
            b'"version":"10.0.20348","admin":true}\r\n',
            True,
            None,
        ),
        (
            b'{"powershell":"4.0","caption":"Microsoft Windows Server 2012 R2 Standard",'
            b'"version":"6.3.9600","admin":true}',
            False,
            "PowerShell 4.0 (5.1 or later needed)",
        ),
        (
            b'{"powershell":"5.1.17763.1","caption":"Microsoft Windows Server 2019 Datacenter",'
            b'"version":"10.0.17763","admin":false}',
            False,
            "EXAMPLE\\svc-ansible is not an administrator",
        ),
    ],
)
def test_powershell_facts_give_the_verdict(answer: bytes, ok: bool, problem: str | None) -> None:
    verdict = winrm_probe.judge(winrm_probe.parse_facts(answer), "EXAMPLE\\svc-ansible")
    assert (verdict.ok, verdict.problem) == (ok, problem)
    assert verdict.os is not None and verdict.os.startswith("Microsoft Windows Server")


def test_a_non_json_answer_is_a_problem_not_a_crash() -> None:
    with pytest.raises(winrm_probe.WinrmProblem, match="JSON"):
        winrm_probe.parse_facts(b"#< CLIXML\r\n<Objs/>")
    assert not winrm_probe.judge(HostFacts("5.1", "", "", True), None).ok


def test_the_renewal_task_state() -> None:
    # ConvertTo-Json -InputObject @(...): a list, also of one task, and [] for none
    one = (
        b'[{"name":"win-acme renew (acme.example.net-8555_acme_private_directory)",'
        b'"state":"Ready","last_run":"2026-12-05T03:00:01.0000000+00:00","last_result":0,'
        b'"next_run":"2026-12-06T09:00:00.0000000+00:00"}]'
    )
    tasks = winrm_probe.parse_tasks(one)
    assert tasks[0].state == "Ready" and tasks[0].last_result == 0
    assert winrm_probe.renewal_state(tasks) == "enabled"
    disabled = one.replace(b'"Ready"', b'"Disabled"')
    assert winrm_probe.renewal_state(winrm_probe.parse_tasks(disabled)) == "disabled"
    assert winrm_probe.renewal_state(winrm_probe.parse_tasks(b"[]")) == "disabled"


def test_settings_follow_ansibles_winrm_connection(tmp_path: Path) -> None:
    host = windows_host(
        "win1",
        5986,
        ansible_winrm_scheme="https",
        ansible_winrm_server_cert_validation="validate",
        ansible_winrm_ca_trust_path="{{ inventory_dir }}/.acmefleet/winrm-ca.pem",
        ansible_winrm_message_encryption="always",
    )
    settings = winrm_probe.settings_for(host, WinrmContext(tmp_path))
    assert settings.endpoint == "https://127.0.0.1:5986/wsman"
    assert settings.transport == "ntlm"
    assert settings.options == {
        "server_cert_validation": "validate",
        "ca_trust_path": f"{tmp_path}/.acmefleet/winrm-ca.pem",
        "message_encryption": "always",
    }
    assert "not-a-real-password" not in repr(settings)
    plain = winrm_probe.settings_for(windows_host("win2", 5985), WinrmContext())
    assert plain.endpoint == "http://127.0.0.1:5985/wsman"


def test_a_vaulted_password_leaves_only_the_listener_check() -> None:
    """A template only Ansible renders (a vault): the listener is checked, as before."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        host = windows_host(
            "win1",
            listener.getsockname()[1],
            ansible_password="{{ vault_winrm_password }}",
            vault_winrm_password={"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n6162"},
        )
        verdict = preflight([host], ssh_options=[], timeout=5)["win1"]
    assert verdict.ok
    assert verdict.os == (
        "windows (listener only: ansible_password is a template only Ansible renders)"
    )


def test_a_closed_port_and_a_silent_listener_fail_with_their_reason() -> None:
    with socket.socket() as silent, socket.socket() as closed:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts into the backlog, never answers: no TLS, no HTTP
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        up = windows_host("win-silent", silent.getsockname()[1])
        down = windows_host("win-down", closed.getsockname()[1])
        started = time.monotonic()
        results = preflight([up, down], ssh_options=[], timeout=3)
        took = time.monotonic() - started
    port = down.variables["ansible_port"]
    assert results["win-down"].problem == f"WinRM port {port} does not answer: Connection refused"
    assert not results["win-silent"].ok
    assert results["win-silent"].problem == (
        f"WinRM port {up.variables['ansible_port']}: no answer in time"
    ), results["win-silent"]
    assert took < 10
    for result in results.values():
        assert "not-a-real-password" not in (result.problem or "")


def test_renew_starts_the_roles_task_and_says_why_it_could_not() -> None:
    """``acmefleet renew`` on Windows: roles/win_acme's on-demand task, started over WinRM
    and waited for (tests/integration/test_win_acme_role.py renders the same name). The
    name travels base64-encoded, so no quote in it can end a literal."""
    host = dataclasses.replace(windows_host("win1", 5986), names=("*.it\u2019s.example.net",))
    task = winrm_probe.renew_now_task(host)
    assert task == "acmefleet renew-now (_.it\u2019s.example.net)"
    script = winrm_probe.start_task_script(task, 840)
    encoded = re.search(r"FromBase64String\('([A-Za-z0-9+/=]+)'\)", script)
    assert encoded is not None and base64.b64decode(encoded[1]).decode() == task
    assert "it\u2019s" not in script
    assert "Start-ScheduledTask -InputObject $task" in script
    assert "AddSeconds(840)" in script and "exit 124" in script
    assert "exit $info.LastTaskResult" in script
    # A setting only Ansible can render: refused here, with the reason.
    vaulted = dataclasses.replace(
        host, variables={**host.variables, "ansible_password": "{{ vault_password }}"}
    )
    assert winrm_probe.force_renewal(vaulted, WinrmContext(), 3) == (
        "ansible_password is a template only Ansible renders: cannot renew here"
    )


def test_renew_of_a_host_whose_winrm_is_down_fails_with_the_reason() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        host = windows_host("win-down", closed.getsockname()[1])
        outcome = renew_host(host, 1, [], None, "paramiko", WinrmContext())
    assert outcome.status == "failed"
    port = host.variables["ansible_port"]
    assert outcome.error == (
        "acmefleet renew-now (win-down.example.net): "
        f"WinRM port {port} does not answer: Connection refused"
    )
    assert "not-a-real-password" not in outcome.error
