"""One TLS probe, two callers: the roll-out's acmefleet.fleet.tls and the module tls_certificate.

Real TLS servers on loopback, with certificates made here, serve each case; both callers
probe the same server and must agree on the verdict (reachable, chain verified, good for
the expected names and days) and on what is served, and keep their own wording.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography import x509

from acmefleet.fleet import tls
from acmefleet.fleet.inventory import FleetHost
from tests.support.tls_certs import LOOPBACK_NAMES, ServingCert, make_serving_cert

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins" / "modules" / "tls_certificate.py"


@contextlib.contextmanager
def tls_server(cert: ServingCert, *, handshakes: int | None = None) -> Iterator[int]:
    """A loopback TLS server with ``cert``; after ``handshakes`` connections it stops listening."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert, cert.key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        served = 0
        while not stop.is_set() and (handshakes is None or served < handshakes):
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            served += 1
            if served == handshakes:
                listener.close()  # before this handshake ends: the next connection is refused
            with contextlib.suppress(OSError), raw:
                raw.settimeout(5)
                with context.wrap_socket(raw, server_side=True):
                    pass  # the client has what it came for once the handshake is done
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)


@contextlib.contextmanager
def plain_tcp_server() -> Iterator[int]:
    """Something on the port that is not TLS: an HTTP answer, then the connection closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), raw:
                raw.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def module_main() -> Iterator[ModuleType]:
    """The module tls_certificate, importing its module_utils by FQCN as Ansible does."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / ".collections"))
        spec = importlib.util.spec_from_file_location("acmefleet_tls_certificate", MODULE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


@contextlib.contextmanager
def module_args(args: dict[str, Any]) -> Iterator[None]:
    try:
        from ansible.module_utils.testing import patch_module_args
    except ImportError:  # ansible-core before 2.19
        from ansible.module_utils import basic

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
            )
            yield
        return
    with patch_module_args(args):
        yield


@dataclass(frozen=True)
class Case:
    port: int
    ca_bundle: Path
    names: tuple[str, ...] = LOOPBACK_NAMES  # the first is the SNI name; all are expected
    min_days: int = 0


def run_module(
    module: ModuleType, case: Case, capsys: pytest.CaptureFixture[str]
) -> tuple[bool, dict[str, Any]]:
    """(failed, result) of the module on the controller, as ``delegate_to: localhost`` runs it."""
    args = {
        "address": "127.0.0.1",
        "port": case.port,
        "server_name": case.names[0],
        "ca_bundle": str(case.ca_bundle),
        "expected_names": list(case.names),
        "min_days": case.min_days,
        "timeout": 5.0,
    }
    capsys.readouterr()
    with module_args(args), pytest.raises(SystemExit) as exited:
        module.main()
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert bool(result.get("failed")) == (exited.value.code != 0)
    return bool(result.get("failed")), result


def run_fleet(case: Case) -> tls.ServedCertificate:
    host = FleetHost(
        name="web1",
        address="127.0.0.1",
        stack="certbot_apache",
        names=case.names,
        endpoint="private",
        org="acme",
        tls_port=case.port,
    )
    return tls.probe(host, case.ca_bundle)


def both(
    module: ModuleType, case: Case, capsys: pytest.CaptureFixture[str]
) -> tuple[tls.ServedCertificate, bool, dict[str, Any]]:
    """Probe with both callers and check that they agree; return what each said."""
    fleet = run_fleet(case)
    failed, result = run_module(module, case, capsys)
    unreachable = result.get("problems") == ["unreachable"]
    assert fleet.reachable == (not unreachable)
    if unreachable:
        assert not fleet.verified and "verified" not in result
        return fleet, failed, result
    assert fleet.verified == result["verified"]
    good = fleet.is_good(case.names, case.min_days, datetime.now(UTC))
    assert good == (not failed) == (result["problems"] == [])
    assert list(fleet.names) == result["names"]
    assert (fleet.issuer, fleet.serial) == (result["issuer"], result["serial"])
    assert fleet.not_after is not None
    assert fleet.not_after.strftime("%Y-%m-%dT%H:%M:%SZ") == result["not_after"]
    return fleet, failed, result


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServingCert]:
    where = tmp_path_factory.mktemp("tls")
    return {
        "good": make_serving_cert(where / "good", prefix="good"),
        "other": make_serving_cert(where / "other", prefix="other"),
        "expired": make_serving_cert(where / "expired", prefix="expired", days=-2),
    }


def serial_of(cert: ServingCert) -> str:
    return format(x509.load_pem_x509_certificate(cert.cert.read_bytes()).serial_number, "x")


def test_a_good_certificate(
    module_main: ModuleType, certs: dict[str, ServingCert], capsys: pytest.CaptureFixture[str]
) -> None:
    good = certs["good"]
    with tls_server(good) as port:
        fleet, failed, result = both(module_main, Case(port, good.ca_bundle, min_days=25), capsys)
    assert fleet.verified and fleet.problem is None and not failed
    assert result["verify_error"] is None and result["days_left"] in (28, 29)
    assert fleet.names == LOOPBACK_NAMES and fleet.issuer == "good test CA"
    assert fleet.serial == serial_of(good)


def test_a_chain_from_another_ca(
    module_main: ModuleType, certs: dict[str, ServingCert], capsys: pytest.CaptureFixture[str]
) -> None:
    with tls_server(certs["other"]) as port:
        fleet, failed, result = both(module_main, Case(port, certs["good"].ca_bundle), capsys)
    reason = "unable to get local issuer certificate"
    assert fleet.problem == f"certificate does not verify: {reason}"
    assert failed and result["verify_error"] == reason
    assert result["msg"] == f"chain does not verify for localhost: {reason}"
    assert fleet.serial == serial_of(certs["other"]) and fleet.issuer == "other test CA"


def test_a_name_the_certificate_does_not_carry(
    module_main: ModuleType, certs: dict[str, ServingCert], capsys: pytest.CaptureFixture[str]
) -> None:
    good = certs["good"]
    with tls_server(good) as port:
        case = Case(port, good.ca_bundle, names=("www.example.net", *LOOPBACK_NAMES))
        fleet, failed, result = both(module_main, case, capsys)
    reason = "Hostname mismatch, certificate is not valid for 'www.example.net'."
    assert fleet.problem == f"certificate does not verify: {reason}"
    assert failed and result["problems"] == [
        f"chain does not verify for www.example.net: {reason}",
        f"names {sorted(LOOPBACK_NAMES)} != expected {sorted(case.names)}",
    ]


def test_an_expired_certificate(
    module_main: ModuleType, certs: dict[str, ServingCert], capsys: pytest.CaptureFixture[str]
) -> None:
    expired = certs["expired"]
    with tls_server(expired) as port:
        fleet, failed, result = both(module_main, Case(port, expired.ca_bundle), capsys)
    assert fleet.problem == "certificate does not verify: certificate has expired"
    assert failed and result["verify_error"] == "certificate has expired"
    assert result["days_left"] < 0


def test_verified_but_other_names_or_too_few_days(
    module_main: ModuleType, certs: dict[str, ServingCert], capsys: pytest.CaptureFixture[str]
) -> None:
    good = certs["good"]
    with tls_server(good) as port:
        fewer = Case(port, good.ca_bundle, names=("localhost",))
        fleet, failed, result = both(module_main, fewer, capsys)
        assert fleet.verified and failed
        assert result["problems"] == [f"names {sorted(LOOPBACK_NAMES)} != expected ['localhost']"]
        fleet, failed, result = both(module_main, Case(port, good.ca_bundle, min_days=60), capsys)
        assert fleet.verified and failed
        assert result["problems"] == [f"only {result['days_left']} days left (< 60)"]


def test_nothing_listening(
    module_main: ModuleType, certs: dict[str, ServingCert], capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    fleet, failed, result = both(module_main, Case(port, certs["good"].ca_bundle), capsys)
    assert failed and not fleet.reachable
    assert fleet.problem == f"no TLS on port {port}: [Errno 111] Connection refused"
    assert (
        result["msg"]
        == f"TLS connection to 127.0.0.1:{port} failed: [Errno 111] Connection refused"
    )


def test_no_tls_on_the_port(
    module_main: ModuleType, certs: dict[str, ServingCert], capsys: pytest.CaptureFixture[str]
) -> None:
    with plain_tcp_server() as port:
        fleet, failed, result = both(module_main, Case(port, certs["good"].ca_bundle), capsys)
    assert failed and not fleet.reachable and fleet.problem is not None
    assert fleet.problem.startswith(f"no TLS on port {port}: ")
    assert result["msg"].startswith(f"TLS connection to 127.0.0.1:{port} failed: ")
    assert fleet.problem.split(": ", 1)[1] == result["msg"].split(" failed: ", 1)[1]


def test_refused_chain_then_no_second_handshake(
    module_main: ModuleType, certs: dict[str, ServingCert], capsys: pytest.CaptureFixture[str]
) -> None:
    """The verifying handshake refuses the chain; the unverified one finds the port closed."""
    case_ca = certs["good"].ca_bundle
    with tls_server(certs["other"], handshakes=1) as port:
        fleet = run_fleet(Case(port, case_ca))
    assert not fleet.reachable
    assert fleet.problem == "TLS failed: [Errno 111] Connection refused"
    with tls_server(certs["other"], handshakes=1) as port:
        failed, result = run_module(module_main, Case(port, case_ca), capsys)
    assert failed and result["problems"] == ["unreachable"]
    assert (
        result["msg"]
        == f"TLS connection to 127.0.0.1:{port} failed: [Errno 111] Connection refused"
    )
