"""Remote network perspectives for tests: ``acmefleet validator`` agents, each in its own
network namespace, reached from the host (where the ACME server runs) over a veth pair.

Every namespace gets ``10.<net>.<index>.2/30`` on its end and the host ``10.<net>.<index>.1``
on the other; ``<net>`` and the names carry a random tag so parallel runs do not collide.
Everything is torn down on exit, also when a test fails (``Perspectives`` is a context
manager; each step it took is undone in reverse).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.acmefleet_server import ACMEFLEET
from tests.support.procs import die_with_parent, terminate_group

AGENT_PORT = 8600
IP = "/usr/sbin/ip"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class PerspectivesCA:
    """A CA that signs agents' and the server's mutual-TLS certificates."""

    def __init__(self, directory: Path, label: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(f"{label} perspectives CA")
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / f"{label}-ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, dns_name: str, *, client: bool, server: bool) -> tuple[Path, Path]:
        """(certificate, key 0600) for ``dns_name`` with the chosen extended key usages."""
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] * client + [
            ExtendedKeyUsageOID.SERVER_AUTH
        ] * server
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(dns_name))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_path = self.directory / f"{dns_name}.pem"
        key_path = self.directory / f"{dns_name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.touch(mode=0o600)
        key_path.chmod(0o600)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, timeout=30)


@dataclass
class Namespace:
    """One network namespace, joined to the host by a veth pair."""

    name: str
    host_if: str
    inner_if: str
    network: ipaddress.IPv4Network

    @property
    def host_address(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def address(self) -> str:
        return str(self.network.network_address + 2)

    def create(self, stack: contextlib.ExitStack) -> None:
        _ip("netns", "add", self.name)
        stack.callback(_quietly, IP, "netns", "delete", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.inner_if)
        # Deleting one end deletes the pair (and the namespace's end goes with it anyway).
        stack.callback(_quietly, IP, "link", "delete", self.host_if)
        _ip("link", "set", self.inner_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        inside = ["netns", "exec", self.name, IP]
        _ip(*inside, "addr", "add", f"{self.address}/30", "dev", self.inner_if)
        _ip(*inside, "link", "set", self.inner_if, "up")
        _ip(*inside, "link", "set", "lo", "up")

    def command(self, *args: str) -> list[str]:
        return [IP, "netns", "exec", self.name, *args]


def _quietly(*command: str) -> None:
    subprocess.run(list(command), check=False, capture_output=True, timeout=30)


@dataclass
class AgentSettings:
    resolver: str  # "ADDRESS:PORT" this agent asks
    cert: Path
    key: Path
    timeout_seconds: float = 3.0


class AgentProcess:
    """``acmefleet validator run`` inside a namespace."""

    def __init__(self, namespace: Namespace, workdir: Path, index: int) -> None:
        self.namespace = namespace
        self.workdir = workdir
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.settings: AgentSettings | None = None
        self.log_path = workdir / f"agent-{index}.log"

    def start(self, settings: AgentSettings, client_ca: Path, client_identity: str) -> None:
        self.stop()
        self.settings = settings
        config = self.workdir / f"agent-{self.index}.toml"
        config.write_text(
            "[agent]\n"
            f'listen = "{self.namespace.address}:{AGENT_PORT}"\n'
            f'cert_file = "{settings.cert}"\n'
            f'key_file = "{settings.key}"\n'
            f'client_ca_file = "{client_ca}"\n'
            f'client_identity = "{client_identity}"\n'
            "max_concurrent_checks = 8\n"
            "[validation]\n"
            f'dns_resolvers = ["{settings.resolver}"]\n'
            f"timeout_seconds = {settings.timeout_seconds}\n"
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.namespace.command(
                    ACMEFLEET, "validator", "run", "--config", str(config), "--log-level", "info"
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - no agent left if pytest dies
                env=os.environ.copy(),
            )
        self.wait_listening()

    def wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent {self.index} exited: {self.log_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.namespace.address, AGENT_PORT), timeout=1),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"agent {self.index} did not listen: {self.log_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            terminate_group(self.proc)
            self.proc = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Perspectives:
    """``count`` namespaces with an agent each, and the mutual-TLS material for both sides."""

    SERVER_IDENTITY = "acme-server.mpic.test"

    def __init__(self, workdir: Path, count: int = 3) -> None:
        self.workdir = workdir
        self.tag = secrets.token_hex(3)
        net = 100 + secrets.randbelow(100)
        self.namespaces = [
            Namespace(
                f"acmefleet-mpic-{self.tag}-{i}",
                f"afm{self.tag}{i}h",
                f"afm{self.tag}{i}n",
                ipaddress.IPv4Network(f"10.{net}.{i}.0/30"),
            )
            for i in range(1, count + 1)
        ]
        self.ca = PerspectivesCA(workdir / "pki", "agents")
        self.server_cert, self.server_key = self.ca.issue(
            self.SERVER_IDENTITY, client=True, server=False
        )
        self.agents: list[AgentProcess] = []
        self._stack = contextlib.ExitStack()

    def identity(self, index: int) -> str:
        return f"agent-{index + 1}.mpic.test"

    def agent_cert(self, index: int, identity: str | None = None) -> tuple[Path, Path]:
        return self.ca.issue(identity or self.identity(index), client=False, server=True)

    def __enter__(self) -> Self:
        try:
            for namespace in self.namespaces:
                namespace.create(self._stack)
            for index, namespace in enumerate(self.namespaces):
                agent = AgentProcess(namespace, self.workdir, index + 1)
                self._stack.callback(agent.stop)
                self.agents.append(agent)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    @property
    def host_addresses(self) -> list[str]:
        return [n.host_address for n in self.namespaces]

    def start(self, index: int, resolver_port: int, identity: str | None = None) -> None:
        """(Re)start agent ``index`` asking the resolver on its host side at ``resolver_port``,
        with a certificate for ``identity`` (default: the one the server expects)."""
        cert, key = self.agent_cert(index, identity)
        settings = AgentSettings(
            f"{self.namespaces[index].host_address}:{resolver_port}", cert, key
        )
        self.agents[index].start(settings, self.ca.ca_file, self.SERVER_IDENTITY)

    def server_config(self, set_name: str = "mpic") -> str:
        """The server's ``[perspectives.<set_name>]`` table for these agents."""
        lines = [
            f"[perspectives.{set_name}]",
            f'ca_file = "{self.ca.ca_file}"',
            f'client_cert_file = "{self.server_cert}"',
            f'client_key_file = "{self.server_key}"',
        ]
        for index, namespace in enumerate(self.namespaces):
            lines += [
                f"[[perspectives.{set_name}.agents]]",
                f'name = "perspective-{index + 1}"',
                f'url = "https://{namespace.address}:{AGENT_PORT}"',
                f'identity = "{self.identity(index)}"',
            ]
        return "\n".join(lines) + "\n"


def namespaces_left(tag: str) -> list[str]:
    listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in listed.stdout.splitlines() if tag in line]


def links_left(tag: str) -> list[str]:
    listed = subprocess.run([IP, "-br", "link"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in listed.stdout.splitlines() if tag in line]
