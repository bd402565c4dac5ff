"""SSH probes in-process (paramiko): a connection per host in a bounded thread pool.

The preflight and ``acmefleet status`` used to run the ``ssh`` client per host and read its
stderr to tell why a login failed. Here the verdicts come from paramiko's exceptions, with
the same inputs the ``ssh`` subprocess was given (``settings.ssh_options``: the inventory's
``ansible_ssh_common_args``, ``ansible_ssh_private_key_file``, strict host key checking, the
connect timeout) and the same known_hosts files ``ssh`` reads: the ``UserKnownHostsFile`` /
``GlobalKnownHostsFile`` given there, else ``~/.ssh/known_hosts{,2}`` and
``/etc/ssh/ssh_known_hosts{,2}``. ``~/.ssh/config`` is not read; options paramiko cannot
honour (a jump host, a proxy command) are refused by name, and ``--probe ssh`` takes the
``ssh`` client instead.

A remote command runs over one channel with a deadline, bounded output and its exit status.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paramiko

from acmefleet.fleet.inventory import FleetHost

DEFAULT_PARALLEL = 32
MAX_OUTPUT = 64 * 1024  # a probe's answer is a few lines; more is refused, not buffered
USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
# ssh options that change where or how ssh connects, which this probe does not implement.
UNSUPPORTED = ("proxyjump", "proxycommand", "hostkeyalias", "hostname", "port", "user")

T = TypeVar("T")

# paramiko's transport threads log every failed connection with a traceback (an unknown
# host, a silent port); the verdict says it once, in words. Attach a handler to the
# "paramiko" logger to see them.
_PARAMIKO_LOG = logging.getLogger("paramiko")
_PARAMIKO_LOG.addHandler(logging.NullHandler())
_PARAMIKO_LOG.propagate = False


class ProbeError(Exception):
    """Why a host could not be probed, as people read it (never a key or a password)."""


class CommandTimeout(ProbeError):
    """The command's answer did not come within the deadline."""


class UnknownHostKey(paramiko.SSHException):
    """The host is not in any known_hosts file (strict checking refuses it)."""


class _StrictPolicy(paramiko.MissingHostKeyPolicy):
    """RejectPolicy with its own exception, so the verdict needs no message parsing."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise UnknownHostKey(hostname)


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """StrictHostKeyChecking=accept-new/no: an unknown key is accepted (in memory only)."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        return None


@dataclass(frozen=True)
class SshSettings:
    """What of ssh's options this probe honours (first value wins, as in ssh)."""

    identity_files: tuple[str, ...] = ()
    user_known_hosts: tuple[str, ...] = USER_KNOWN_HOSTS
    global_known_hosts: tuple[str, ...] = GLOBAL_KNOWN_HOSTS
    strict: str = "yes"  # yes | accept-new | no
    connect_timeout: float = 10.0
    identities_only: bool = False  # IdentitiesOnly=yes: the identity files, no agent or defaults
    unsupported: tuple[str, ...] = ()


def parse_ssh_options(options: Sequence[str]) -> SshSettings:
    """``-i``, ``-o Key=Value`` / ``-oKey=Value`` / ``-o "Key Value"``; others are ignored
    unless they redirect the connection (``-J``, ProxyCommand ...), which are recorded."""
    seen: dict[str, str] = {}
    identities: list[str] = []
    unsupported: list[str] = []
    items = list(options)
    index = 0
    while index < len(items):
        item = items[index]
        value: str | None = None
        if item in ("-o", "-i", "-J", "-F", "-p", "-l") and index + 1 < len(items):
            value = items[index + 1]
            index += 2
        elif item[:2] in ("-o", "-i", "-J", "-F", "-p", "-l") and len(item) > 2:
            value = item[2:]
            item = item[:2]
            index += 1
        else:
            index += 1
            continue
        if item == "-i":
            identities.append(value)
        elif item == "-J":
            unsupported.append("ProxyJump (-J)")
        elif item == "-F":
            unsupported.append("a config file (-F)")
        elif item in ("-p", "-l"):
            unsupported.append(item)
        elif item == "-o":
            key, _, rest = value.replace("=", " ", 1).partition(" ")
            key = key.strip().lower()
            rest = rest.strip().strip('"')
            if key in UNSUPPORTED:
                unsupported.append(key)
            elif key == "identityfile":
                identities.append(rest)
            else:
                seen.setdefault(key, rest)
    timeout = seen.get("connecttimeout")
    strict = seen.get("stricthostkeychecking", "yes").lower()
    return SshSettings(
        identity_files=tuple(identities),
        user_known_hosts=tuple(seen["userknownhostsfile"].split())
        if "userknownhostsfile" in seen
        else USER_KNOWN_HOSTS,
        global_known_hosts=tuple(seen["globalknownhostsfile"].split())
        if "globalknownhostsfile" in seen
        else GLOBAL_KNOWN_HOSTS,
        strict={"off": "no", "false": "no", "ask": "yes", "true": "yes"}.get(strict, strict),
        connect_timeout=float(timeout) if timeout and timeout.isdigit() else 10.0,
        identities_only=seen.get("identitiesonly", "no").lower() == "yes",
        unsupported=tuple(unsupported),
    )


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


def _client(settings: SshSettings) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    known = client.get_host_keys()
    for name in (*settings.global_known_hosts, *settings.user_known_hosts):
        for names, key in _known_hosts(Path(name).expanduser()):
            for hostname in names:  # hashed names (|1|salt|hash) are matched by HostKeys
                known.add(hostname, key.get_name(), key)
    client.set_missing_host_key_policy(
        _StrictPolicy() if settings.strict == "yes" else _AcceptNewPolicy()
    )
    return client


def _known_hosts(path: Path) -> list[tuple[list[str], paramiko.PKey]]:
    """The entries of one known_hosts file; as ssh, a line it cannot read is passed over
    (paramiko's own loader stops the whole file at a bad base64 line), as is a file that
    cannot be read. Markers (@cert-authority, @revoked) are not entries: never trusted."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    entries = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith(("#", "@")):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(text, number)
        except Exception:  # noqa: S112 - InvalidHostKey, UnknownKeyType, SSHException: skipped
            continue
        if entry is not None and entry.key is not None:
            entries.append((list(entry.hostnames), entry.key))
    return entries


def connect(host: FleetHost, settings: SshSettings, deadline: float) -> paramiko.SSHClient:
    """A logged-in client, or ProbeError with the verdict."""
    if settings.unsupported:
        raise ProbeError(
            f"SSH option {', '.join(settings.unsupported)} is not supported by the in-process "
            "probe (use --probe ssh)"
        )
    timeout = max(0.1, min(settings.connect_timeout, deadline - time.monotonic()))
    where = f"connect to host {host.address} port {host.port}"
    # The TCP connection is ours, so ConnectTimeout bounds it and then the banner exchange
    # separately, as in ssh; paramiko's own connect would fold refusals of all addresses
    # into one exception.
    try:
        sock = socket.create_connection((host.address, host.port), timeout=timeout)
    except TimeoutError:
        raise ProbeError(f"unreachable over SSH: {where}: Connection timed out") from None
    except socket.gaierror as exc:
        raise ProbeError(
            f"unreachable over SSH: Could not resolve hostname {host.address}: {exc.strerror}"
        ) from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ProbeError(f"unreachable over SSH: {where}: {reason}") from None
    client = _client(settings)
    # As ssh: an identity file that is not there is passed over (ssh warns), not fatal.
    found = [Path(k).expanduser() for k in settings.identity_files]
    keys: Any = [str(k) for k in found if k.is_file()] or None
    started = time.monotonic()
    try:
        client.connect(
            host.address,
            port=host.port,
            username=host.user,
            sock=sock,
            # a list is accepted ("a filename, or list of filenames"; the stubs say str)
            key_filename=keys,
            # As ssh in batch mode: the agent and the default keys too (unless
            # IdentitiesOnly), never a password.
            allow_agent=not settings.identities_only,
            look_for_keys=not settings.identities_only,
            # the banner must come within ConnectTimeout; the key exchange gets a margin so
            # its own wait never ends before the banner's does
            banner_timeout=timeout,
            timeout=timeout + 2,
            auth_timeout=timeout,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise ProbeError(
            f"host key changed: the host offers a {exc.key.get_name()} key that does not match "
            "known_hosts"
        ) from None
    except UnknownHostKey:
        client.close()
        raise ProbeError("host key unknown (not in known_hosts)") from None
    except (paramiko.SSHException, OSError) as exc:
        transport = client.get_transport()
        # Past the host key, before a login: the keys were refused (or there were none).
        # That is where paramiko stands, whatever the last key's own exception says.
        refused = isinstance(exc, paramiko.AuthenticationException) or (
            transport is not None and transport.is_active() and not transport.is_authenticated()
        )
        client.close()
        sock.close()
        if refused:
            raise ProbeError("SSH login refused (key not authorised)") from None
        if time.monotonic() - started >= timeout:
            # a server that accepts and stays silent; ssh (9.x) words it so too
            raise ProbeError(
                f"unreachable over SSH: Connection to {host.address} port {host.port} timed out"
            ) from None
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ProbeError(f"unreachable over SSH: {where}: {reason}") from None
    return client


def run(client: paramiko.SSHClient, command: str, deadline: float) -> CommandResult:
    """One command over a channel: exit status and output, both within the deadline."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise ProbeError("unreachable over SSH: the connection closed")
    try:
        channel = transport.open_session(timeout=max(0.1, deadline - time.monotonic()))
        with channel:
            channel.exec_command(command)
            out = _read(channel.recv, channel, deadline)
            err = _read(channel.recv_stderr, channel, deadline)
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError
            status = channel.exit_status
    except TimeoutError:
        raise CommandTimeout("the command did not finish in time") from None
    except paramiko.SSHException as exc:
        raise ProbeError(f"unreachable over SSH: {exc}") from None
    return CommandResult(status, out.decode(errors="replace"), err.decode(errors="replace"))


def _read(receive: Callable[[int], bytes], channel: paramiko.Channel, deadline: float) -> bytes:
    data = bytearray()
    while True:
        channel.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = receive(32768)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > MAX_OUTPUT:
            raise ProbeError(f"the answer is longer than {MAX_OUTPUT} bytes")


def run_command(
    host: FleetHost, settings: SshSettings, command: str, timeout: float
) -> CommandResult:
    """Connect, run one command, close; ProbeError with the verdict if that fails."""
    deadline = time.monotonic() + timeout
    client = connect(host, settings, deadline)
    try:
        return run(client, command, deadline)
    except CommandTimeout:
        # the words of the ssh subprocess probe's timeout
        raise ProbeError(f"no SSH answer within {timeout:.0f} s") from None
    finally:
        client.close()


def parallel_map(
    function: Callable[[FleetHost], T], hosts: Sequence[FleetHost], parallel: int
) -> list[T]:
    """``function`` over hosts in a bounded pool; results in the hosts' order."""
    if not hosts:
        return []
    workers = max(1, min(parallel, len(hosts)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssh-probe") as pool:
        return list(pool.map(function, hosts))
