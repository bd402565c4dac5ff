"""Windows hosts over WinRM in-process (pywinrm): preflight and the renewal task's state.

The preflight sends a WS-Management Identify (DSP0226 §11; MS-WSMV's Identify) through a
pywinrm ``Protocol`` built from the inventory's WinRM settings, the way Ansible's ``winrm``
connection builds it (``ansible_winrm_transport``, ``..._server_cert_validation``,
``..._ca_trust_path``, ``..._cert_pem``/``..._cert_key_pem``, ``..._message_encryption``,
``ansible_winrm_scheme``/``ansible_port``/``ansible_winrm_path``), then runs one PowerShell
check (PowerShell version, OS caption, whether the login is an administrator). ``status``
reads win-acme's scheduled task (``Get-ScheduledTask`` / ``Get-ScheduledTaskInfo``);
``renew`` starts the on-demand task roles/win_acme registered (``force_renewal``).

Verified on paper only: no Windows host runs here. The pywinrm calls follow pywinrm
0.5's source (``Protocol.send_message``, ``open_shell``/``run_command``/
``get_command_output``), the cmdlets Microsoft's documentation; the unit tests check the
parsing of their documented output and the verdicts for a closed port and a silent one.

The inventory's values may be templates Ansible renders (``{{ inventory_dir }}``, a vaulted
password). A plain ``{{ name }}`` of another variable or ``inventory_dir`` is resolved here;
when a setting stays a template (a vault), only the listener is checked, as before, and
the verdict says so.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acmefleet.fleet.inventory import FleetHost

WINRM_HTTPS_PORT = 5986
WINRM_HTTP_PORT = 5985
IDENTIFY = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"
)
MIN_POWERSHELL = (5, 1)  # the roles' modules (ansible.windows) need Windows PowerShell 5.1
MAX_OUTPUT = 64 * 1024
TASK_TIMED_OUT = 124  # start_task_script's exit status when the run did not end in time

# One JSON line: what the preflight needs to know, nothing it does not.
CHECK_SCRIPT = """$ErrorActionPreference = 'Stop'
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$me = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
[pscustomobject]@{
  powershell = $PSVersionTable.PSVersion.ToString()
  caption = [string]$os.Caption
  version = [string]$os.Version
  admin = $me.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
} | ConvertTo-Json -Compress
"""

# win-acme's renewal task is "win-acme renew (<clean base URI>)" (roles/win_acme); the
# status does not know the base URI, so every such task is reported. Dates as ISO 8601
# text: ConvertTo-Json of a DateTime in PowerShell 5.1 is "\\/Date(ms)\\/".
TASK_SCRIPT = """$ErrorActionPreference = 'Stop'
$tasks = @(Get-ScheduledTask | Where-Object { $_.TaskName -like 'win-acme renew (*)' })
ConvertTo-Json -Compress -InputObject @($tasks | ForEach-Object {
  $info = Get-ScheduledTaskInfo -InputObject $_
  [pscustomobject]@{
    name = $_.TaskName
    state = [string]$_.State
    last_run = if ($info.LastRunTime) { $info.LastRunTime.ToString('o') } else { '' }
    last_result = [int64]$info.LastTaskResult
    next_run = if ($info.NextRunTime) { $info.NextRunTime.ToString('o') } else { '' }
  }
})
"""

_TEMPLATE = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class WinrmContext:
    """What resolves the inventory's plain templates: its directory and its ``all`` vars."""

    inventory_dir: Path | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WinrmSettings:
    endpoint: str
    port: int
    transport: str
    username: str | None
    password: str | None = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    unresolved: tuple[str, ...] = ()


@dataclass(frozen=True)
class WinrmVerdict:
    ok: bool
    problem: str | None = None
    os: str | None = None


@dataclass(frozen=True)
class Identity:
    vendor: str
    product_version: str
    protocol_version: str


@dataclass(frozen=True)
class HostFacts:
    powershell: str
    caption: str
    version: str
    admin: bool


@dataclass(frozen=True)
class RenewalTask:
    name: str
    state: str  # Ready, Running, Queued, Disabled, Unknown (Get-ScheduledTask's StateEnum)
    last_run: str
    last_result: int
    next_run: str


class WinrmProblem(Exception):
    """A verdict as people read it (never a password)."""


def _resolve(value: Any, host: Mapping[str, Any], context: WinrmContext) -> tuple[Any, bool]:
    """(value, resolved): ``{{ inventory_dir }}`` and ``{{ other_var }}`` prefixes only."""
    if not isinstance(value, str) or "{{" not in value:
        return value, True
    for _ in range(5):  # a variable may name another; a loop is not followed forever
        match = _TEMPLATE.match(value)
        if match is None:
            return value, False
        name = match.group(1)
        if name == "inventory_dir" and context.inventory_dir is not None:
            replacement: Any = str(context.inventory_dir)
        elif name in host and name not in ("ansible_password",):
            replacement = host[name]
        elif name in context.variables:
            replacement = context.variables[name]
        else:
            return value, False
        if not isinstance(replacement, str):
            return value, False  # a vaulted value ({"__ansible_vault": ...}) or a structure
        value = replacement + value[match.end() :]
        if "{{" not in value:
            return value, True
    return value, False


def settings_for(host: FleetHost, context: WinrmContext) -> WinrmSettings:
    """Ansible's winrm connection defaults: https on 5986, /wsman, transport ssl (basic)."""
    variables: Mapping[str, Any] = host.variables
    unresolved: list[str] = []

    def get(name: str, default: Any = None) -> Any:
        if name not in variables:
            return default
        value, ok = _resolve(variables[name], variables, context)
        if not ok:
            unresolved.append(name)
            return None
        return value

    port = int(get("ansible_port", WINRM_HTTPS_PORT) or WINRM_HTTPS_PORT)
    scheme = get("ansible_winrm_scheme") or ("http" if port == WINRM_HTTP_PORT else "https")
    path = str(get("ansible_winrm_path", "/wsman")).lstrip("/")
    transport = get("ansible_winrm_transport", "ssl")
    if isinstance(transport, list):  # Ansible accepts a list and takes the first it can use
        transport = transport[0] if transport else "ssl"
    options: dict[str, Any] = {}
    for key, option in (
        ("ansible_winrm_server_cert_validation", "server_cert_validation"),
        ("ansible_winrm_ca_trust_path", "ca_trust_path"),
        ("ansible_winrm_cert_pem", "cert_pem"),
        ("ansible_winrm_cert_key_pem", "cert_key_pem"),
        ("ansible_winrm_message_encryption", "message_encryption"),
    ):
        value = get(key)
        if value is not None:
            options[option] = value
    password = get("ansible_password", get("ansible_winrm_password"))
    return WinrmSettings(
        endpoint=f"{scheme}://{host.address}:{port}/{path}",
        port=port,
        transport=str(transport),
        username=get("ansible_user", get("ansible_winrm_user")),
        password=password,
        options=options,
        unresolved=tuple(unresolved),
    )


def parse_identify(body: bytes | str) -> Identity:
    """The IdentifyResponse: ProductVendor, ProductVersion ("OS: 10.0.20348 SP: 0.0 Stack:
    3.0" from Windows), ProtocolVersion."""
    try:
        # The same parser pywinrm reads every answer with; expat (>= 2.4.1) refuses the
        # entity amplification S314 is about.
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError as exc:
        raise WinrmProblem(f"WinRM: the Identify answer is not XML ({exc})") from None
    # By local name: Windows answers in DSP8012's http:// namespace, Microsoft's pages
    # print it as https://.
    found = next((n for n in root.iter() if _local(n.tag) == "IdentifyResponse"), None)
    if found is None:
        raise WinrmProblem("WinRM: no IdentifyResponse in the answer")

    def text(name: str) -> str:
        node = next((n for n in found if _local(n.tag) == name), None)
        return (node.text or "").strip() if node is not None else ""

    return Identity(text("ProductVendor"), text("ProductVersion"), text("ProtocolVersion"))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _json(stdout: bytes) -> Any:
    text = stdout.decode("utf-8", errors="replace").strip()
    try:
        return json.loads(text.splitlines()[-1] if text else "")
    except (json.JSONDecodeError, IndexError):
        raise WinrmProblem("PowerShell did not answer with JSON") from None


def parse_facts(stdout: bytes) -> HostFacts:
    data = _json(stdout)
    if not isinstance(data, dict):
        raise WinrmProblem("PowerShell did not answer with JSON")
    return HostFacts(
        powershell=str(data.get("powershell", "")),
        caption=str(data.get("caption", "")),
        version=str(data.get("version", "")),
        admin=data.get("admin") is True,
    )


def judge(facts: HostFacts, user: str | None) -> WinrmVerdict:
    os_text = f"{facts.caption} ({facts.version})".strip()
    try:
        version = tuple(int(p) for p in facts.powershell.split(".")[:2])
    except ValueError:
        version = (0, 0)
    if "Windows" not in facts.caption:
        return WinrmVerdict(False, f"unsupported OS {facts.caption!r} (Windows only)", os_text)
    if version < MIN_POWERSHELL:
        return WinrmVerdict(False, f"PowerShell {facts.powershell} (5.1 or later needed)", os_text)
    if not facts.admin:
        return WinrmVerdict(False, f"{user or 'the WinRM login'} is not an administrator", os_text)
    return WinrmVerdict(True, None, os_text)


def parse_tasks(stdout: bytes) -> list[RenewalTask]:
    data = _json(stdout)
    rows = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    return [
        RenewalTask(
            str(r.get("name", "")),
            str(r.get("state", "")),
            str(r.get("last_run", "")),
            int(r.get("last_result") or 0),
            str(r.get("next_run", "")),
        )
        for r in rows
        if isinstance(r, dict)
    ]


def renewal_state(tasks: list[RenewalTask]) -> str:
    """enabled / disabled, as status reports a systemd timer: no task at all is disabled."""
    if any(t.state in ("Ready", "Running", "Queued") for t in tasks):
        return "enabled"
    return "disabled"


class WinrmSession:
    """One pywinrm Protocol per host; every call maps its failure to a WinrmProblem."""

    def __init__(self, settings: WinrmSettings, timeout: float) -> None:
        import winrm.exceptions
        from winrm.protocol import Protocol

        self.settings = settings
        read = max(2, int(timeout))
        try:
            self.protocol = Protocol(
                settings.endpoint,
                transport=settings.transport,  # type: ignore[arg-type]  # from the inventory
                username=settings.username,
                password=settings.password,
                read_timeout_sec=read,
                operation_timeout_sec=read - 1,
                **settings.options,
            )
        except (winrm.exceptions.WinRMError, ValueError) as exc:
            raise WinrmProblem(f"WinRM settings: {exc}") from None

    def identify(self) -> Identity:
        return parse_identify(self._call(self.protocol.send_message, IDENTIFY))

    def powershell(self, script: str) -> bytes:
        out, status = self._powershell(script)
        if status != 0:
            raise WinrmProblem(f"PowerShell exited with {status}")
        if len(out) > MAX_OUTPUT:
            raise WinrmProblem(f"the answer is longer than {MAX_OUTPUT} bytes")
        return out

    def powershell_status(self, script: str) -> int:
        """Run ``script`` for its exit status only (its output is not kept)."""
        return self._powershell(script)[1]

    def _powershell(self, script: str) -> tuple[bytes, int]:
        encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
        shell = self._call(self.protocol.open_shell)
        try:
            command = self._call(
                self.protocol.run_command,
                shell,
                f"powershell -NoProfile -NonInteractive -EncodedCommand {encoded}",
            )
            out, _err, status = self._call(self.protocol.get_command_output, shell, command)
            self._call(self.protocol.cleanup_command, shell, command)
        finally:
            with contextlib.suppress(Exception):  # the answer is in; closing is best effort
                self.protocol.close_shell(shell)
        return bytes(out), int(status)

    def _call(self, function: Any, *args: Any) -> Any:
        import requests
        import winrm.exceptions as wx

        port = self.settings.port
        try:
            return function(*args)
        except wx.InvalidCredentialsError:
            raise WinrmProblem("WinRM login refused (credentials rejected)") from None
        except wx.WSManFaultError as exc:
            raise WinrmProblem(f"WinRM fault: {exc.reason}") from None
        except wx.WinRMTransportError as exc:
            raise WinrmProblem(f"WinRM: HTTP {exc.code}") from None
        except wx.WinRMOperationTimeoutError:
            raise WinrmProblem("WinRM: the operation timed out") from None
        except wx.WinRMError as exc:
            raise WinrmProblem(f"WinRM: {exc}") from None
        except requests.exceptions.SSLError:
            raise WinrmProblem(
                f"WinRM port {port}: TLS failed (certificate not trusted, or not TLS)"
            ) from None
        except requests.exceptions.ConnectTimeout:
            raise WinrmProblem(f"WinRM port {port} does not answer: timed out") from None
        except requests.exceptions.ReadTimeout:
            raise WinrmProblem(f"WinRM port {port}: no answer in time") from None
        except requests.exceptions.ConnectionError as exc:
            raise WinrmProblem(f"WinRM port {port} does not answer: {_reason(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise WinrmProblem(f"WinRM port {port}: {exc.__class__.__name__}") from None


def _reason(exc: BaseException) -> str:
    """The OS's words for a failed connection, found in the exception chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        for arg in getattr(seen, "args", ()):
            if isinstance(arg, BaseException) and arg is not seen:
                found = _reason(arg)
                if found != "no answer":
                    return found
        seen = seen.__cause__ or seen.__context__
    return "Connection refused" if "refused" in str(exc).lower() else "no answer"


def listener_only(host: FleetHost, port: int, timeout: float, why: str) -> WinrmVerdict:
    try:
        with socket.create_connection((host.address, port), timeout=min(timeout, 5.0)):
            pass
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        return WinrmVerdict(False, f"WinRM port {port} does not answer: {reason}")
    return WinrmVerdict(True, None, f"windows (listener only: {why})")


def preflight(host: FleetHost, context: WinrmContext, timeout: float) -> WinrmVerdict:
    settings = settings_for(host, context)
    if settings.unresolved:
        why = f"{', '.join(settings.unresolved)} is a template only Ansible renders"
        return listener_only(host, settings.port, timeout, why)
    try:
        session = WinrmSession(settings, timeout)
        session.identify()
        return judge(parse_facts(session.powershell(CHECK_SCRIPT)), settings.username)
    except WinrmProblem as exc:
        return WinrmVerdict(False, str(exc))


def renewal(host: FleetHost, context: WinrmContext, timeout: float) -> str:
    """The win-acme task's state for ``status``: enabled / disabled / unknown."""
    settings = settings_for(host, context)
    if settings.unresolved:
        return "unknown"
    try:
        return renewal_state(parse_tasks(WinrmSession(settings, timeout).powershell(TASK_SCRIPT)))
    except WinrmProblem:
        return "unknown"


def renew_now_task(host: FleetHost) -> str:
    """The on-demand task roles/win_acme registered for the host's certificate."""
    return f"acmefleet renew-now ({host.names[0].replace('*', '_')})"


def start_task_script(task: str, wait_seconds: int) -> str:
    """PowerShell that starts ``task``, waits for its run to end (at most ``wait_seconds``,
    then stops it and exits 124) and exits with the run's result. The name travels
    base64-encoded: no quoting of it can go wrong."""
    encoded = base64.b64encode(task.encode()).decode("ascii")
    return f"""$ErrorActionPreference = 'Stop'
$name = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('{encoded}'))
$task = Get-ScheduledTask -TaskName $name -TaskPath '\\'
$before = (Get-ScheduledTaskInfo -InputObject $task).LastRunTime
Start-ScheduledTask -InputObject $task
$deadline = (Get-Date).AddSeconds({wait_seconds})
do {{
  Start-Sleep -Seconds 2
  $task = Get-ScheduledTask -TaskName $name -TaskPath '\\'
  $info = Get-ScheduledTaskInfo -InputObject $task
}} while (([string]$task.State -eq 'Running' -or $info.LastRunTime -eq $before) -and
          (Get-Date) -lt $deadline)
if ([string]$task.State -eq 'Running' -or $info.LastRunTime -eq $before) {{
  Stop-ScheduledTask -InputObject $task
  exit 124
}}
exit $info.LastTaskResult
"""


def force_renewal(host: FleetHost, context: WinrmContext, timeout: float) -> str | None:
    """``acmefleet renew`` on a Windows host: the on-demand task roles/win_acme registered
    (``wacs.exe --renew --force --id`` as SYSTEM) started over WinRM and waited for. Why it
    failed (None: win-acme's run ended with 0)."""
    settings = settings_for(host, context)
    if settings.unresolved:
        why = ", ".join(settings.unresolved)
        return f"{why} is a template only Ansible renders: cannot renew here"
    task = renew_now_task(host)
    wait = max(10, int(timeout) - 60)  # the script ends before WinRM's own read timeout
    try:
        status = WinrmSession(settings, timeout).powershell_status(start_task_script(task, wait))
    except WinrmProblem as exc:
        return f"{task}: {exc}"
    if status == 0:
        return None
    if status == TASK_TIMED_OUT:
        return f"{task}: still running after {wait} s, stopped"
    log = "%ProgramData%\\win-acme\\<server>\\Log"
    return f"{task}: win-acme's run ended with {status} (its log: {log})"
