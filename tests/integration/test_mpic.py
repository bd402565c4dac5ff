"""Multi-perspective issuance corroboration (CA/B Forum BR 3.2.2.9) with real agents.

Three ``acmefleet validator`` agents, each in its own network namespace (``ip netns`` and a
veth pair: nothing leaves the machine), serve their check over mutual TLS to the ACME
server on the host. Each agent has its own view of DNS: it asks the resolver address on its
own veth, where either the truthful Knot (the one the ACME server itself asks and the
clients update with RFC 2136) or a "hijacked" Knot answers; the hijacked one holds a wildcard
TXT record, so it gives a *different answer* for every challenge name.

Shown: all agree: valid (lego ``--dns rfc2136``, a wildcard); one sees another answer: still
valid and issued (BR quorum: 3 remote perspectives, 1 may disagree); two: invalid with the
corroboration problem; an agent with the wrong certificate identity is refused by the server
(and counts as not corroborating); clients without the right certificate are refused by the
agent; a silent (stopped) or dead agent counts as not corroborating within the deadline.

CAA is corroborated too (BR 3.2.2.9): the server and every agent check it, each through its
own view. The truthful DNS allows this CA (``US``); a perspective made to see a forbidding
record (the hijacked Knot, given the right TXT record so dns-01 itself agrees) does not
corroborate: one is within quorum, two refuse the name with ``caa``.
"""

from __future__ import annotations

import os
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from acmefleet.validation.dns01 import txt_value
from tests.support.acme_client import AcmeClient, make_csr
from tests.support.acmefleet_server import AcmefleetServer, checked_acmefleet
from tests.support.clients import LegoPaths, check_issued, run_lego
from tests.support.console import console_api, error_body, ok_json
from tests.support.knot import ALGORITHM, KEY_NAME, ZONE, KnotServer
from tests.support.mpic import (
    AGENT_PORT,
    Perspectives,
    PerspectivesCA,
    links_left,
    namespaces_left,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]
ERR = "urn:ietf:params:acme:error:"
SERVER_TIMEOUT = 5  # [validation] timeout_seconds of the ACME server (agents: 3 s)
HIJACKED = "hijacked-answer"
US = "acmefleet.test"  # caa_identities of the public endpoint
OTHER_CA = "other-ca.test"


@pytest.fixture(scope="module")
def perspectives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Perspectives]:
    with Perspectives(tmp_path_factory.mktemp("perspectives")) as found:
        tag = found.tag
        yield found
    # Torn down: no namespace or veth of this run is left.
    assert namespaces_left(tag) == []
    assert links_left(tag) == []


@pytest.fixture(scope="module")
def knot(
    perspectives: Perspectives, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KnotServer]:
    """The truthful DNS: the ACME server's resolver, and the agents' unless hijacked."""
    with KnotServer(
        tmp_path_factory.mktemp("knot"), also_listen=perspectives.host_addresses
    ) as server:
        yield server


@pytest.fixture(scope="module")
def hijacked(
    perspectives: Perspectives, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KnotServer]:
    """Another answer for every name: what a perspective behind a hijacked route sees."""
    records = [f'* TXT "{HIJACKED}"']
    with KnotServer(
        tmp_path_factory.mktemp("hijacked"), records, also_listen=perspectives.host_addresses
    ) as server:
        yield server


@pytest.fixture(scope="module")
def acmefleet(
    perspectives: Perspectives, knot: KnotServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AcmefleetServer]:
    settings = {
        "dns_resolvers": f'["{knot.address}"]',
        "timeout_seconds": str(SERVER_TIMEOUT),
        "check_caa": "true",
        "caa_identities": f'["{US}"]',
    }
    # The template's last table is the public endpoint: this line joins it.
    extra = 'perspectives = "mpic"\n' + perspectives.server_config("mpic")
    with checked_acmefleet(
        tmp_path_factory.mktemp("acmefleet"), settings=settings, extra_config=extra
    ) as server:
        yield server


class Views:
    """Which DNS each agent sees; an agent is restarted only when its view changes."""

    def __init__(self, perspectives: Perspectives, knot: KnotServer, hijacked: KnotServer):
        self.perspectives = perspectives
        self.servers = {"truth": knot, "hijacked": hijacked}
        self.current: list[tuple[str, str | None] | None] = [None] * len(perspectives.agents)

    def set(self, *views: str, identity: dict[int, str] | None = None) -> None:
        for index, view in enumerate(views):
            wanted = (view, (identity or {}).get(index))
            agent = self.perspectives.agents[index]
            alive = agent.proc is not None and agent.proc.poll() is None
            if self.current[index] != wanted or not alive:
                self.perspectives.start(index, self.servers[view].port, identity=wanted[1])
                self.current[index] = wanted


@pytest.fixture(scope="module")
def views(perspectives: Perspectives, knot: KnotServer, hijacked: KnotServer) -> Views:
    return Views(perspectives, knot, hijacked)


def new_client(server: AcmefleetServer) -> AcmeClient:
    acme = AcmeClient(server.directory("public"), server.ca_bundle)
    response = acme.new_account(server.mint_eab("acme", "public"), contact=["mailto:a@example.com"])
    assert response.status_code == 201, response.text
    return acme


def dns01(
    acmefleet: AcmefleetServer,
    knot: KnotServer,
    name: str,
    *,
    issue: bool = False,
    also: KnotServer | None = None,
) -> tuple[dict[str, Any], float, bytes | None]:
    """Validate ``name`` by dns-01 (the TXT record put into the truthful DNS, and into
    ``also``): the final authorization, how long validation took, and (``issue``, when
    valid) the certificate."""
    with new_client(acmefleet) as acme:
        created = acme.new_order([name])
        assert created.status_code == 201, created.text
        authz_url = created.json()["authorizations"][0]
        authz = acme.get(authz_url).json()
        [challenge] = [c for c in authz["challenges"] if c["type"] == "dns-01"]
        value = txt_value(acme.key.key_authorization(challenge["token"]))
        for server in (knot, also) if also is not None else (knot,):
            server.update(ZONE, replace={f"_acme-challenge.{name}.": ("TXT", [f'"{value}"'])})
        started = time.monotonic()
        assert acme.answer_challenge(challenge["url"]).status_code == 200
        final = acme.poll(authz_url, ("valid", "invalid"), timeout=60)
        took = time.monotonic() - started
        if not issue or final["status"] != "valid":
            return final, took, None
        order_url = created.headers["Location"]
        acme.poll_order(order_url, ("ready",))
        csr, _key = make_csr([name])
        finalized = acme.finalize(created.json(), csr)
        assert finalized.status_code == 200, finalized.text
        order = acme.poll_order(order_url, ("valid", "invalid"))
        assert order["status"] == "valid", order
        return final, took, acme.download_certificate(order["certificate"]).encode()


def problem_of(authz: dict[str, Any]) -> dict[str, Any]:
    assert authz["status"] == "invalid", authz
    [failed] = [c for c in authz["challenges"] if c["type"] == "dns-01"]
    problem: dict[str, Any] = failed["error"]
    return problem


# ------------------------------------------------------------------ quorum


def test_lego_wildcard_when_all_perspectives_agree(
    acmefleet: AcmefleetServer, knot: KnotServer, views: Views, tmp_path: Path
) -> None:
    views.set("truth", "truth", "truth")
    secret_file = tmp_path / "tsig-secret"
    secret_file.touch(mode=0o600)
    secret_file.write_text(knot.secret)
    base = tmp_path / "lego"
    names = [f"*.all.{ZONE}", f"all.{ZONE}"]
    run = run_lego(
        [
            "--dns",
            "rfc2136",
            "--dns.resolvers",
            knot.address,
            "--dns.disable-cp",
            *[arg for name in names for arg in ("-d", name)],
            "run",
        ],
        ca_bundle=acmefleet.ca_bundle,
        base_dir=base,
        directory=acmefleet.directory("public"),
        eab=acmefleet.mint_eab("acme", "public"),
        env={
            "RFC2136_NAMESERVER": knot.address,
            "RFC2136_TSIG_KEY": KEY_NAME,
            "RFC2136_TSIG_ALGORITHM": f"{ALGORITHM}.",
            "RFC2136_TSIG_SECRET_FILE": str(secret_file),
            "RFC2136_PROPAGATION_TIMEOUT": "30",
            "RFC2136_POLLING_INTERVAL": "1",
            "RFC2136_SEQUENCE_INTERVAL": "1",
        },
    ).check()
    pem = LegoPaths(base).certificate(f"_.all.{ZONE}").read_bytes()
    check_issued(acmefleet, pem, names, level="public", context=run.describe())
    # Every perspective was asked, and each passed it from its own namespace.
    for agent in views.perspectives.agents:
        assert f"dns-01 all.{ZONE} for {Perspectives.SERVER_IDENTITY}: pass" in agent.log_text()


def test_one_perspective_seeing_another_answer_is_within_quorum(
    acmefleet: AcmefleetServer, knot: KnotServer, views: Views
) -> None:
    views.set("truth", "truth", "hijacked")
    final, _, pem = dns01(acmefleet, knot, f"one.{ZONE}", issue=True)
    assert final["status"] == "valid", final
    assert pem is not None  # and the certificate is issued
    check_issued(acmefleet, pem, [f"one.{ZONE}"], level="public")
    third = views.perspectives.agents[2].log_text()
    assert f"dns-01 one.{ZONE} for {Perspectives.SERVER_IDENTITY}: unauthorized" in third
    assert "did not corroborate" in acmefleet.log_text()


def test_two_perspectives_disagreeing_make_the_challenge_invalid(
    acmefleet: AcmefleetServer, knot: KnotServer, views: Views
) -> None:
    views.set("truth", "hijacked", "hijacked")
    final, _, _ = dns01(acmefleet, knot, f"two.{ZONE}")
    problem = problem_of(final)
    assert problem["type"] == ERR + "unauthorized"
    detail = problem["detail"]
    assert detail.startswith(
        f"2 of 3 remote network perspectives did not corroborate this dns-01 validation of "
        f"two.{ZONE} (at most 1 may not: CA/B Forum BR 3.2.2.9)"
    ), detail
    assert "perspective-2: unauthorized: none of the 1 TXT record(s)" in detail
    assert "perspective-3: unauthorized" in detail
    assert "perspective-1" not in detail
    # Nothing internal: no agent address, no port.
    assert all(n.address not in detail for n in views.perspectives.namespaces)
    assert str(AGENT_PORT) not in detail


# ------------------------------------------------------------------ CAA corroborated


def caa_views(knot: KnotServer, hijacked: KnotServer, label: str) -> str:
    """``label`` in the zone: the truthful DNS allows this CA, the hijacked one forbids it."""
    name = f"{label}.{ZONE}"
    knot.update(ZONE, replace={f"{name}.": ("CAA", [f'0 issue "{US}"'])})
    hijacked.update(ZONE, replace={f"{name}.": ("CAA", [f'0 issue "{OTHER_CA}"'])})
    return name


def test_caa_allowed_from_every_perspective_is_issued(
    acmefleet: AcmefleetServer, knot: KnotServer, hijacked: KnotServer, views: Views
) -> None:
    views.set("truth", "truth", "truth")
    name = caa_views(knot, hijacked, "caa-all")
    final, _, pem = dns01(acmefleet, knot, name, issue=True)
    assert final["status"] == "valid", final
    assert pem is not None
    check_issued(acmefleet, pem, [name], level="public")
    for agent in views.perspectives.agents:
        assert f"caa {name} for {Perspectives.SERVER_IDENTITY}: pass" in agent.log_text()


def test_one_perspective_seeing_a_forbidding_caa_is_within_quorum(
    acmefleet: AcmefleetServer, knot: KnotServer, hijacked: KnotServer, views: Views
) -> None:
    views.set("truth", "truth", "hijacked")
    name = caa_views(knot, hijacked, "caa-one")
    final, _, pem = dns01(acmefleet, knot, name, issue=True, also=hijacked)
    assert final["status"] == "valid", final
    assert pem is not None
    check_issued(acmefleet, pem, [name], level="public")
    third = views.perspectives.agents[2].log_text()
    assert f"dns-01 {name} for {Perspectives.SERVER_IDENTITY}: pass" in third
    assert f"caa {name} for {Perspectives.SERVER_IDENTITY}: caa: the CAA records" in third
    assert f"CAA check for {name}: perspective perspective-3 did not corroborate" in (
        acmefleet.log_text()
    )


def test_two_perspectives_seeing_a_forbidding_caa_refuse_with_caa(
    acmefleet: AcmefleetServer, knot: KnotServer, hijacked: KnotServer, views: Views
) -> None:
    views.set("truth", "hijacked", "hijacked")
    name = caa_views(knot, hijacked, "caa-two")
    final, _, _ = dns01(acmefleet, knot, name, also=hijacked)
    problem = problem_of(final)
    assert problem["type"] == ERR + "caa", problem
    assert problem["identifier"] == {"type": "dns", "value": name}
    detail = problem["detail"]
    assert detail.startswith(
        f"2 of 3 remote network perspectives did not corroborate this CAA check for {name} "
        "(at most 1 may not: CA/B Forum BR 3.2.2.9)"
    ), detail
    # Each names what it saw: a forbidding record (not a failed lookup).
    for label in ("perspective-2", "perspective-3"):
        assert f"{label}: caa: the CAA records at {name} forbid issuance" in detail, detail
        assert f'0 issue "{OTHER_CA}"' in detail
    assert "perspective-1" not in detail
    assert all(n.address not in detail for n in views.perspectives.namespaces)


# ------------------------------------------------------------------ identities


def test_an_agent_with_the_wrong_identity_is_refused_by_the_server(
    acmefleet: AcmefleetServer, knot: KnotServer, views: Views
) -> None:
    # Agent 1 presents a certificate from the right CA for another name; agent 3 is
    # hijacked: with agent 1 refused, two do not corroborate.
    views.set("truth", "truth", "hijacked", identity={0: "impostor.mpic.test"})
    final, _, _ = dns01(acmefleet, knot, f"impostor.{ZONE}")
    detail = problem_of(final)["detail"]
    assert "2 of 3 remote network perspectives" in detail, detail
    assert "perspective-1: not available (its TLS certificate was not accepted)" in detail
    assert "CERTIFICATE_VERIFY_FAILED" in acmefleet.log_text()


def _check_request() -> bytes:
    token = "A" * 43
    return (
        '{"kind":"dns-01","identifier":{"type":"dns","value":"x.example.org"},'
        f'"token":"{token}","key_authorization":"{token}.{"B" * 43}"}}'
    ).encode()


def _post(perspectives: Perspectives, cert: tuple[Path, Path] | None) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(perspectives.ca.ca_file))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    namespace = perspectives.namespaces[1]
    with httpx.Client(verify=context, trust_env=False, timeout=10) as client:
        return client.post(
            f"https://{namespace.address}:{AGENT_PORT}/check",
            content=_check_request(),
            headers={"Content-Type": "application/json"},
            extensions={"sni_hostname": perspectives.identity(1)},
        )


def test_the_agent_refuses_clients_without_the_right_certificate(
    views: Views, tmp_path: Path
) -> None:
    views.set("truth", "truth", "truth")
    perspectives = views.perspectives
    # No client certificate, or one from another CA: the handshake fails.
    with pytest.raises(httpx.HTTPError):
        _post(perspectives, None)
    stranger = PerspectivesCA(tmp_path / "stranger", "stranger")
    with pytest.raises(httpx.HTTPError):
        _post(perspectives, stranger.issue(Perspectives.SERVER_IDENTITY, client=True, server=False))
    # The right CA, but not the server's identity (another agent's certificate): 403.
    other_agent = perspectives.ca.issue("agent-9.mpic.test", client=True, server=True)
    refused = _post(perspectives, other_agent)
    assert refused.status_code == 403, refused.text
    # The server's certificate: the check runs (no such record: a dns problem).
    answered = _post(perspectives, (perspectives.server_cert, perspectives.server_key))
    assert answered.status_code == 200, answered.text
    assert answered.json()["result"] == "fail"
    assert answered.json()["problem"]["type"] == ERR + "dns"


# ------------------------------------------------------------------ silence and death


def test_a_silent_and_a_dead_agent_do_not_corroborate_within_the_deadline(
    acmefleet: AcmefleetServer, knot: KnotServer, views: Views
) -> None:
    views.set("truth", "truth", "truth")
    agents = views.perspectives.agents
    silent, dead = agents[1], agents[2]
    assert silent.proc is not None
    # SIGSTOP: the kernel still accepts the TCP connection; nothing answers the handshake.
    os.killpg(silent.proc.pid, signal.SIGSTOP)
    try:
        dead.stop()
        final, took, _ = dns01(acmefleet, knot, f"silent.{ZONE}")
    finally:
        os.killpg(silent.proc.pid, signal.SIGCONT)
    detail = problem_of(final)["detail"]
    assert "2 of 3 remote network perspectives" in detail, detail
    assert f"perspective-2: not available (no answer within {SERVER_TIMEOUT} s)" in detail
    assert "perspective-3: not available (not reachable)" in detail
    # The challenge's one deadline, not one per agent (and polling adds up to a second).
    assert took < SERVER_TIMEOUT + 3, took


def test_one_dead_agent_is_within_quorum(
    acmefleet: AcmefleetServer, knot: KnotServer, views: Views
) -> None:
    views.set("truth", "truth", "truth")
    views.perspectives.agents[0].stop()
    final, took, _ = dns01(acmefleet, knot, f"dead.{ZONE}")
    assert final["status"] == "valid", final
    assert took < SERVER_TIMEOUT, took


# ------------------------------------------------------------------ the console corroborated


def test_the_consoles_dns_check_is_corroborated(
    acmefleet: AcmefleetServer, knot: KnotServer, views: Views
) -> None:
    """The console's DNS check (BR 3.2.2.4.7) goes through the public endpoint's perspectives:
    two agents seeing another TXT answer refuse it; one is within quorum."""
    acmefleet.mint_eab("acme", "public")  # the organisation exists
    name = f"console.{ZONE}"
    record = f"_acmefleet-challenge.{name}"
    with console_api(acmefleet, "admin") as admin:
        [org] = [o for o in ok_json(admin.http.get("/organizations")) if o["name"] == "acme"]
        domain = admin.add_domain(int(org["id"]), name)
        started = ok_json(
            admin.http.post(f"/domains/{domain['id']}/validation", json={"method": "dns"})
        )
        value = started["random_value"]
        knot.update(ZONE, replace={f"{record}.": ("TXT", [f'"{value}"'])})

        views.set("truth", "hijacked", "hijacked")
        refused = error_body(admin.http.post(f"/domains/{domain['id']}/validation/check"), 400)
        detail = str(refused["detail"])
        assert detail.startswith(
            f"dns validation of {name} failed: 2 of 3 remote network perspectives did not "
            f"corroborate this TXT record check of {record}"
        ), detail
        assert "perspective-2: unauthorized: none of the 1 TXT record(s)" in detail

        views.set("truth", "truth", "hijacked")
        checked = ok_json(admin.http.post(f"/domains/{domain['id']}/validation/check"))
        assert checked["validated"] and checked["validation_method"] == "dns"
    first = views.perspectives.agents[0].log_text()
    assert f"txt {record} for {Perspectives.SERVER_IDENTITY}: pass" in first
