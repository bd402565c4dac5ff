"""The Windows roles on the controller: rendering, argument specs, secrecy, WinRM settings.

No Windows host is reachable here. These tests run ``ansible-playbook`` on localhost with only
the roles' ``render.yml`` entry point (set_fact only, which is what the roles compute before
touching a host), check the argument specs with good and bad variables, look for the EAB
HMAC key in -vvv output, and build pywinrm protocols from the example group_vars without
connecting anywhere.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import winrm
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acmefleet.fleet import winrm_probe
from acmefleet.fleet.inventory import FleetHost
from tests.support.ansible_cli import ansible

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVER = "https://acme1.example.net:8555/acme/private/directory"
HMAC = "fAkEhMaC0123456789abcdefghijklmnopqrstuvwxyzAB"
SHA = "ab" * 32


def _root(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca-bundle.pem"
    path.write_text(_root("acmefleet private root") + _root("acmefleet public root"))
    return path


def common_vars(ca_bundle: Path, **extra: Any) -> dict[str, Any]:
    return {
        "win_acme_server": SERVER,
        "win_acme_ca_bundle": str(ca_bundle),
        "win_acme_names": ["www.example.com", "example.com"],
        "win_acme_email": "ops@example.com",
        "win_acme_artifact_url": "https://artifacts.example.net/win-acme.zip",
        "win_acme_artifact_sha256": SHA,
        "win_acme_eab_kid": "kid-123",
        "win_acme_eab_hmac_key": HMAC,
        **extra,
    }


RENDER = """---
- name: Render a Windows stack on the controller
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Render the stack
      ansible.builtin.include_role:
        name: acmefleet.fleet.%(role)s
        tasks_from: render
    - name: Show what win-acme would log
      ansible.builtin.debug:
        var: win_acme__argv_display
    - name: Dump the rendering for the test
      ansible.builtin.copy:
        content: "{{ dump | to_nice_json }}"
        dest: "%(dest)s"
        mode: "0600"
      no_log: true
      vars:
        dump:
          argv_new_account: "{{ win_acme__argv_new_account }}"
          argv_existing_account: "{{ win_acme__argv_existing_account }}"
          argv_setup_task: "{{ win_acme__argv_setup_task }}"
          display: "{{ win_acme__argv_display }}"
          ps_scripts: "{{ win_acme__ps_scripts }}"
          write_secret: "{{ win_acme__write_secret_parameters }}"
          task_name: "{{ win_acme__task_name }}"
          config_path: "{{ win_acme__config_path }}"
          account_file: "{{ win_acme__account_file }}"
          renewal_file: "{{ win_acme__renewal_file }}"
          renewal_id: "{{ win_acme__renewal_id }}"
          ca_certs: "{{ win_acme__ca_certs }}"
          settings: "{{ win_acme__settings_overrides }}"
          settings_json: "{{ win_acme__settings_preview }}"
          apache_script: "{{ win_acme_apache__script_text | default('') }}"
          apache_include: "{{ win_acme_apache__include_line | default('') }}"
          apache_pem_acl: "{{ win_acme_apache__pem_acl_rendered | default([]) }}"
"""


def render(
    tmp_path: Path, role: str, variables: dict[str, Any], *flags: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    dest = tmp_path / f"{role}.json"
    dest.unlink(missing_ok=True)
    playbook = tmp_path / f"render-{role}.yml"
    playbook.write_text(RENDER % {"role": role, "dest": dest})
    extra = tmp_path / f"vars-{role}.json"
    extra.write_text(json.dumps(variables))
    run = ansible("ansible-playbook", "-i", "localhost,", str(playbook), "-e", f"@{extra}", *flags)
    dumped = json.loads(dest.read_text()) if dest.exists() else {}
    return run, dumped


def test_iis_rendering(tmp_path: Path, ca_bundle: Path) -> None:
    run, out = render(tmp_path, "win_acme_iis", common_vars(ca_bundle, win_acme_iis_site_ids=[1]))
    assert run.returncode == 0, run.stdout + run.stderr
    exe = r"C:\Program Files\win-acme\wacs.exe"
    rid = out["renewal_id"]
    assert out["argv_new_account"] == [
        exe, "--baseuri", SERVER,
        "--source", "iis", "--siteid", "1", "--host", "www.example.com,example.com",
        "--store", "certificatestore", "--installation", "iis",
        "--id", rid, "--friendlyname", "acmefleet www.example.com", "--csr", "ec",
        "--accepttos", "--emailaddress", "ops@example.com",
        "--eab-key-identifier", "kid-123", "--eab-key", HMAC,
        "--closeonfinish",
    ]  # fmt: skip
    assert out["argv_existing_account"] == [
        a for a in out["argv_new_account"] if a not in {"--eab-key-identifier", "kid-123",
                                                        "--eab-key", HMAC}
    ]  # fmt: skip
    assert out["argv_setup_task"] == [exe, "--setuptaskscheduler", "--baseuri", SERVER,
                                      "--closeonfinish"]  # fmt: skip
    clean = "acme1.example.net8555acmeprivatedirectory"
    assert out["task_name"] == f"win-acme renew ({clean})"
    assert out["config_path"] == rf"C:\ProgramData\win-acme\{clean}"
    assert out["account_file"] == rf"C:\ProgramData\win-acme\{clean}\Registration_v2"
    assert out["renewal_file"] == rf"C:\ProgramData\win-acme\{clean}\{rid}.renewal.json"
    assert len(out["ca_certs"]) == 2
    assert all(c.startswith("-----BEGIN CERTIFICATE-----") for c in out["ca_certs"])
    assert out["settings"] == {"ScheduledTask": {"RenewalDays": 55},
                               "Security": {"EncryptConfig": True}}  # fmt: skip
    ps = out["ps_scripts"]
    assert ps["expand_archive"]["parameters"] == {
        "Zip": rf"C:\ProgramData\acmefleet\downloads\win-acme-{SHA[:16]}.zip",
        "Destination": r"C:\Program Files\win-acme",
    }
    assert ps["scheduled_task"]["parameters"] == {"TaskName": out["task_name"]}
    assert (
        "Expand-Archive -LiteralPath $Zip -DestinationPath $Destination -Force"
        in (ps["expand_archive"]["script"])
    )
    assert "Get-ScheduledTask -TaskName $TaskName" in ps["scheduled_task"]["script"]
    # ARI: win-acme's own task repeated every 15 minutes from a per-host offset;
    # acmefleet renew's on-demand task.
    repetition = ps["renewal_repetition"]["parameters"]
    offset = int(repetition.pop("OffsetSeconds"))
    assert repetition == {"TaskName": out["task_name"], "Minutes": 15, "RandomDelayMinutes": 2}
    assert 0 <= offset < 15 * 60
    assert "[CmdletBinding(SupportsShouldProcess)]" in ps["renewal_repetition"]["script"]
    renew_now = ps["renew_now_task"]
    assert renew_now["parameters"] == {
        "TaskName": "acmefleet renew-now (www.example.com)",
        "Execute": exe,
        "Arguments": f'--renew --force --baseuri "{SERVER}" --id "{rid}"',
        "WorkingDirectory": r"C:\Program Files\win-acme",
        "TimeLimitMinutes": 30,
    }
    assert (
        "-UserId 'SYSTEM'" in renew_now["script"]
        and "Register-ScheduledTask" in renew_now["script"]
    )
    # acmefleet renew starts the task the role registered.
    fleet_host = FleetHost(
        "win1", "192.0.2.7", "win_acme_iis", ("www.example.com", "example.com"), "private", "org"
    )
    assert winrm_probe.renew_now_task(fleet_host) == renew_now["parameters"]["TaskName"]
    # Same server and selection, same renewal; another selection, another renewal.
    _, again = render(tmp_path, "win_acme_iis", common_vars(ca_bundle, win_acme_iis_site_ids=[1]))
    assert again["renewal_id"] == rid
    _, other = render(tmp_path, "win_acme_iis", common_vars(ca_bundle, win_acme_iis_site_ids=[2]))
    assert other["renewal_id"] != rid


def test_apache_rendering(tmp_path: Path, ca_bundle: Path) -> None:
    run, out = render(
        tmp_path,
        "win_acme_apache",
        common_vars(ca_bundle, win_acme_names=["wiki.example.com", "www.wiki.example.com"]),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    argv = out["argv_new_account"]
    script = r"C:\ProgramData\acmefleet\Install-ApacheCertificate.ps1"
    assert argv[3:23] == [
        "--source", "manual", "--host", "wiki.example.com,www.wiki.example.com",
        "--validation", "filesystem", "--webroot", r"C:\Apache24\htdocs",
        "--store", "pemfiles", "--pemfilespath", r"C:\ProgramData\acmefleet\apache",
        "--pemfilesname", "wiki.example.com",
        "--installation", "script", "--script", script,
        "--scriptparameters", "-PemFilesName 'wiki.example.com' -StorePath '{StorePath}'",
    ]  # fmt: skip
    text = out["apache_script"]
    assert "[Alias('CommonName')][string]$PemFilesName" in text
    assert "'\\' + $PemFilesName) -replace" in text
    assert "$conf = 'C:\\Apache24\\conf\\extra\\acmefleet-tls.conf'" in text
    assert "$httpd = Join-Path 'C:\\Apache24' 'bin\\httpd.exe'" in text
    assert "$service = 'Apache2.4'" in text
    assert "ServerName wiki.example.com" in text and "ServerAlias www.wiki.example.com" in text
    assert 'SSLCertificateFile "$($pem)-chain.pem"' in text
    assert 'SSLCertificateKeyFile "$($pem)-key.pem"' in text
    assert 'DocumentRoot "C:/Apache24/htdocs"' in text
    assert "& $httpd -t" in text and "Restart-Service -Name $service" in text
    assert "Listen 443" in text
    assert out["apache_include"] == 'IncludeOptional "C:/Apache24/conf/extra/acmefleet-tls.conf"'
    # The account is read from the service on the host: SYSTEM and Administrators only here.
    assert out["apache_pem_acl"] == [
        {"user": "S-1-5-18", "rights": "FullControl"},
        {"user": "S-1-5-32-544", "rights": "FullControl"},
    ]


@pytest.mark.parametrize(
    ("account", "extra"),
    [
        (r"EXAMPLE\svc-apache", [{"user": r"EXAMPLE\svc-apache", "rights": "ReadAndExecute"}]),
        (r"NT SERVICE\Apache2.4", [{"user": r"NT SERVICE\Apache2.4", "rights": "ReadAndExecute"}]),
        ("LocalSystem", []),
        (r"NT AUTHORITY\SYSTEM", []),
    ],
)
def test_apache_key_folder_acl_names_system_administrators_and_the_service_account(
    tmp_path: Path, ca_bundle: Path, account: str, extra: list[dict[str, str]]
) -> None:
    run, out = render(
        tmp_path,
        "win_acme_apache",
        common_vars(
            ca_bundle,
            win_acme_names=["*.wiki.example.com"],
            win_acme_apache_service_account=account,
            win_acme_apache_pem_name="",
        ),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert out["apache_pem_acl"] == [
        {"user": "S-1-5-18", "rights": "FullControl"},
        {"user": "S-1-5-32-544", "rights": "FullControl"},
        *extra,
    ]
    argv = out["argv_new_account"]
    assert argv[argv.index("--pemfilesname") + 1] == "_.wiki.example.com"


def test_settings_json_keeps_numbers_and_booleans_typed(tmp_path: Path, ca_bundle: Path) -> None:
    # win-acme binds settings.json onto typed properties (int RenewalDays, bool EncryptConfig):
    # "55" where an int is due makes it refuse the file.
    extra = {
        "Cache": {"ReuseDays": 0, "DeleteStaleFiles": True},
        "Notification": {"SmtpPort": 587, "SmtpSecure": False, "SmtpServer": "mail.example.net"},
        "ScheduledTask": {"RandomDelay": "04:00:00"},
    }
    run, out = render(
        tmp_path,
        "win_acme_iis",
        common_vars(ca_bundle, win_acme_renewal_days="30", win_acme_settings=extra),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    text = out["settings_json"]
    assert isinstance(text, str) and text.startswith("{\n  ")  # to_nice_json(indent=2)
    settings = json.loads(text)
    assert settings == {
        "ScheduledTask": {"RenewalDays": 30, "RandomDelay": "04:00:00"},
        "Security": {"EncryptConfig": True},
        **{k: v for k, v in extra.items() if k != "ScheduledTask"},
    }
    # The text itself, not only what json.loads makes of it: unquoted numbers and booleans.
    for literal in (
        '"RenewalDays": 30',
        '"EncryptConfig": true',
        '"SmtpPort": 587',
        '"SmtpSecure": false',
        '"ReuseDays": 0',
        '"DeleteStaleFiles": true',
    ):
        assert re.search(re.escape(literal) + r"[,\n]", text), literal  # fmt: skip


def test_secret_store_mode_keeps_the_hmac_off_the_command_line(
    tmp_path: Path, ca_bundle: Path
) -> None:
    run, out = render(
        tmp_path,
        "win_acme_iis",
        common_vars(ca_bundle, win_acme_eab_secret_store=True, win_acme_eab_secret_name="af-1"),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    argv = out["argv_new_account"]
    assert HMAC not in argv
    assert argv[argv.index("--eab-key") + 1] == "vault://json/af-1"
    assert out["write_secret"] == {
        "Path": out["config_path"] + r"\secrets.json",
        "Key": "af-1",
        "Secret": HMAC,
    }
    assert out["ps_scripts"]["remove_secret"]["parameters"] == {
        "Path": out["config_path"] + r"\secrets.json",
        "Key": "af-1",
    }


def test_the_hmac_key_never_shows_even_at_vvv(tmp_path: Path, ca_bundle: Path) -> None:
    run, out = render(tmp_path, "win_acme_apache", common_vars(ca_bundle), "-vvv")
    assert run.returncode == 0, run.stdout + run.stderr
    assert HMAC in out["argv_new_account"]  # the rendering did carry it
    assert HMAC not in run.stdout + run.stderr
    assert "censored" in run.stdout  # the no_log tasks
    assert '"********"' in run.stdout  # the command line as win-acme would log it


@pytest.mark.parametrize(
    ("role", "bad", "message"),
    [
        ("win_acme_iis", {"win_acme_email": None}, "missing required arguments: win_acme_email"),
        (
            "win_acme_iis",
            {"win_acme_key_type": "dsa"},
            "value of win_acme_key_type must be one of: ec, rsa, got: dsa",
        ),
        (
            "win_acme_iis",
            {"win_acme_iis_ssl_port": "https"},
            "argument 'win_acme_iis_ssl_port' is of type str and we were unable to convert to int",
        ),
        (
            "win_acme_apache",
            {"win_acme_apache_listen": "perhaps"},
            "argument 'win_acme_apache_listen' is of type str and we were unable to convert"
            " to bool",
        ),
        ("win_acme_apache", {"win_acme_names": "www.example.com, x"}, None),
    ],
)
def test_argument_specs_refuse_bad_variables(
    tmp_path: Path, ca_bundle: Path, role: str, bad: dict[str, Any], message: str | None
) -> None:
    good, _ = render(tmp_path, role, common_vars(ca_bundle))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Validating arguments against arg spec" in good.stdout
    variables = {k: v for k, v in common_vars(ca_bundle, **bad).items() if v is not None}
    run, out = render(tmp_path, role, variables)
    if message is None:
        # A string where a list is wanted is split by the spec: one name with a space
        # ("x" after ", ") is then refused by the role's own check or the filter.
        assert run.returncode != 0
        assert "win_acme_names" in run.stdout or "without commas" in run.stdout, run.stdout
        return
    assert run.returncode != 0, run.stdout
    assert message in run.stdout.replace("<class 'str'>", "str"), run.stdout
    assert out == {}


def test_enroll_playbook_syntax_with_the_windows_hosts() -> None:
    run = ansible(
        "ansible-playbook",
        "--syntax-check",
        "-i",
        str(ROOT / "inventory/example.fleet.yml"),
        str(ROOT / "playbooks/enroll.yml"),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    graph = ansible("ansible-inventory", "-i", str(ROOT / "inventory/example.fleet.yml"), "--graph")
    assert "@win_acme_iis" in graph.stdout and "win1" in graph.stdout
    assert "@win_acme_apache" in graph.stdout and "win2" in graph.stdout


def _winrm_protocol(group: str, tmp_path: Path) -> tuple[winrm.Protocol, Any]:
    """Resolve the group's variables with Ansible's winrm connection plugin, then build the
    pywinrm Protocol it would use; nothing is contacted."""
    from ansible.playbook.play_context import PlayContext
    from ansible.plugins.loader import connection_loader

    raw = yaml.safe_load((ROOT / "inventory/group_vars" / f"{group}.yml").read_text())
    # The files the example names must exist for pywinrm to build its session.
    (tmp_path / ".acmefleet").mkdir(exist_ok=True)
    for name in ("winrm-ca.pem", "winrm-client.pem", "winrm-client.key"):
        (tmp_path / ".acmefleet" / name).write_text("placeholder\n")
    resolved: dict[str, Any] = {}
    for key, value in raw.items():
        resolved[key] = (
            value.replace("{{ inventory_dir }}", str(tmp_path)).replace(
                "{{ vault_winrm_password }}", "not-a-real-password"
            )
            if isinstance(value, str)
            else value
        )
    assert resolved["ansible_connection"] == "winrm"
    conn = connection_loader.get("winrm", PlayContext(), None)
    # As the task executor does: ansible_winrm_* variables also travel as "_extras".
    extras = {k: v for k, v in resolved.items() if k.startswith("ansible_winrm_")}
    conn.set_options(var_options={**resolved, "ansible_host": "win.example.net", "_extras": extras})
    conn._build_winrm_kwargs()
    endpoint = f"{conn._winrm_scheme}://{conn._winrm_host}:{conn._winrm_port}{conn._winrm_path}"
    protocol = winrm.Protocol(endpoint, transport=conn._winrm_transport[0], **conn._winrm_kwargs)
    return protocol, conn


def test_winrm_ntlm_example_validates_and_encrypts(tmp_path: Path) -> None:
    protocol, _ = _winrm_protocol("win_acme_iis", tmp_path)
    transport = protocol.transport
    assert transport.endpoint == "https://win.example.net:5986/wsman"
    assert transport.auth_method == "ntlm"
    assert transport.server_cert_validation == "validate"
    assert transport.message_encryption == "always"
    assert transport.ca_trust_path == f"{tmp_path}/.acmefleet/winrm-ca.pem"
    # Building the session would send the first NTLM message to set up sealing: record that
    # call instead, so nothing leaves this machine.
    calls: list[str] = []
    transport.setup_encryption = lambda session: calls.append(transport.endpoint)
    session = transport.build_session()
    assert session.verify == f"{tmp_path}/.acmefleet/winrm-ca.pem"
    assert calls == ["https://win.example.net:5986/wsman"]  # message encryption is set up
    assert type(session.auth).__name__ == "HttpNtlmAuth"


def test_winrm_certificate_example_validates_and_uses_the_client_certificate(
    tmp_path: Path,
) -> None:
    protocol, _ = _winrm_protocol("win_acme_apache", tmp_path)
    transport = protocol.transport
    assert transport.endpoint == "https://win.example.net:5986/wsman"
    assert transport.auth_method == "certificate"
    assert transport.server_cert_validation == "validate"
    assert transport.message_encryption == "auto"
    session = transport.build_session()
    assert session.verify == f"{tmp_path}/.acmefleet/winrm-ca.pem"
    assert session.cert == (
        f"{tmp_path}/.acmefleet/winrm-client.pem",
        f"{tmp_path}/.acmefleet/winrm-client.key",
    )
    # Why "auto": pywinrm refuses message encryption with certificate authentication.
    with pytest.raises(winrm.exceptions.WinRMError, match="message encryption"):
        winrm.Protocol(
            transport.endpoint,
            transport="certificate",
            cert_pem=f"{tmp_path}/.acmefleet/winrm-client.pem",
            cert_key_pem=f"{tmp_path}/.acmefleet/winrm-client.key",
            message_encryption="always",
        ).transport.build_session()


def test_share_copy_runs_with_network_only_credentials() -> None:
    """WinRM's double hop: the copy from a share runs as runas with new_credentials.

    The task's become settings go through Ansible's real runas become plugin, which builds the
    parameters of the PowerShell become wrapper that runs on the host.
    """
    from ansible.plugins.loader import become_loader, init_plugin_loader

    tasks = yaml.safe_load((ROOT / "roles/win_acme/tasks/install.yml").read_text())
    copy = next(t for t in tasks if "ansible.windows.win_copy" in t)
    assert copy["ansible.windows.win_copy"]["remote_src"] is True
    assert copy["become"] == "{{ win_acme_artifact_share_user | length > 0 }}"
    assert copy["become_method"] == "ansible.builtin.runas"
    assert copy["become_user"] == "{{ win_acme_artifact_share_user }}"
    assert copy["vars"] == {"ansible_become_password": "{{ win_acme_artifact_share_password }}"}
    # The URL download has no second hop and no become.
    fetch = next(t for t in tasks if "ansible.windows.win_get_url" in t)
    assert "become" not in fetch

    init_plugin_loader()
    runas = become_loader.get("ansible.builtin.runas")
    runas.set_options(
        direct={
            "become_user": r"EXAMPLE\svc-artifacts",
            "become_pass": "share-password",
            "become_flags": copy["become_flags"],
        }
    )
    wrapper, params, secure = runas._build_powershell_wrapper_action()
    assert wrapper == "become_wrapper.ps1"
    # NewCredentials + NetCredentialsOnly: the local identity stays (the remote temp folder
    # and the destination are the WinRM user's), the account is used for the share only.
    assert params == {
        "BecomeUser": r"EXAMPLE\svc-artifacts",
        "LogonType": "NewCredentials",
        "LogonFlags": "NetCredentialsOnly",
    }
    assert secure == {"BecomePassword": "share-password"}  # a secure parameter, not a flag


def test_share_account_variables_pass_the_spec_and_the_password_stays_hidden(
    tmp_path: Path, ca_bundle: Path
) -> None:
    secret = "Sh4rePassw0rd-not-for-logs"
    variables = common_vars(
        ca_bundle,
        win_acme_artifact_url="",
        win_acme_artifact_path=r"\\files.example.net\software\win-acme.zip",
        win_acme_artifact_share_user=r"EXAMPLE\svc-artifacts",
        win_acme_artifact_share_password=secret,
    )
    run, out = render(tmp_path, "win_acme_iis", variables, "-vvv")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Validating arguments against arg spec" in run.stdout
    assert secret not in run.stdout + run.stderr
    assert out["renewal_id"]
