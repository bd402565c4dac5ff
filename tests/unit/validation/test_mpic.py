"""MPIC (BR 3.2.2.9): the quorum table, the agent protocol, and the configuration."""

from __future__ import annotations

import json
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from acmefleet.agent.checks import CHECKS, build_checks
from acmefleet.agent.config import parse_agent_config
from acmefleet.config import ConfigError, ValidationConfig, parse_config, public_pki_warnings
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.server.build import build_endpoint_validators, build_validators
from acmefleet.validation.dns01 import Dns01Validator
from acmefleet.validation.mpic import (
    CorroboratingValidator,
    RemotePerspective,
    _Outcome,
    allowed_non_corroborations,
    check_private_key_file,
)
from acmefleet.validation.perspective import (
    BadCheckRequest,
    CheckRequest,
    answer,
    parse_answer,
    parse_request,
)
from tests.support.mpic import PerspectivesCA

TOKEN = "t" * 43
KEY_AUTHZ = f"{TOKEN}.{'p' * 43}"
NAME = Identifier("dns", "www.example.org")


# ------------------------------------------------------------------ BR 3.2.2.9 quorum


@pytest.mark.parametrize(
    ("remote", "allowed"), [(0, 0), (1, 0), (2, 1), (3, 1), (4, 1), (5, 1), (6, 2), (9, 2)]
)
def test_the_quorum_table(remote: int, allowed: int) -> None:
    assert allowed_non_corroborations(remote) == allowed


def _validator(count: int, regions: str = "") -> CorroboratingValidator:
    primary = Dns01Validator(resolvers=[("127.0.0.1", 53)], timeout=timedelta(seconds=3))
    context = ssl.create_default_context()
    agents = [
        RemotePerspective(
            f"p{i}", f"https://10.0.0.{i}:8600", f"a{i}.test", context, regions[i : i + 1] or None
        )
        for i in range(count)
    ]
    return CorroboratingValidator(primary, agents)


def test_fewer_than_two_perspectives_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        _validator(1)


def _judge(validator: CorroboratingValidator, failures: list[AcmeError | str | None]) -> None:
    outcomes = [
        _Outcome(p, f if isinstance(f, AcmeError) else None, f if isinstance(f, str) else None)
        for p, f in zip(validator._perspectives, failures, strict=True)
    ]
    validator._judge(NAME, outcomes)


def test_one_of_three_may_disagree_two_may_not() -> None:
    validator = _validator(3)
    dns = AcmeError(ProblemType.DNS, "no such DNS name")
    _judge(validator, [None, None, dns])
    with pytest.raises(AcmeError) as caught:
        _judge(validator, [None, dns, dns])
    assert caught.value.type == ProblemType.DNS  # the same problem everywhere: its type
    assert caught.value.detail.startswith(
        "2 of 3 remote network perspectives did not corroborate this dns-01 validation of "
        "www.example.org (at most 1 may not: CA/B Forum BR 3.2.2.9): p1: dns: no such"
    )


def test_mixed_or_unavailable_failures_are_unauthorized() -> None:
    validator = _validator(6)
    dns = AcmeError(ProblemType.DNS, "NXDOMAIN")
    _judge(validator, [None, None, None, None, dns, "not reachable"])  # 2 of 6: allowed
    with pytest.raises(AcmeError) as caught:
        _judge(validator, [None, None, None, dns, dns, "not reachable"])
    assert caught.value.type == ProblemType.UNAUTHORIZED
    assert "p5: not available (not reachable)" in caught.value.detail
    assert "10.0.0." not in caught.value.detail  # never an agent's address


def test_the_corroborating_perspectives_must_span_two_regions() -> None:
    validator = _validator(6, regions="AAAABB")  # p0-p3 in A; p4, p5 in B
    dns = AcmeError(ProblemType.DNS, "NXDOMAIN")
    _judge(validator, [None] * 6)
    _judge(validator, [dns, None, None, None, None, dns])  # A and B corroborate
    with pytest.raises(AcmeError) as caught:
        _judge(validator, [None, None, None, None, dns, "not reachable"])  # only A does
    assert caught.value.type == ProblemType.UNAUTHORIZED
    assert "are in 1 Regional Internet Registry region(s) (A)" in caught.value.detail
    assert "p4: dns: NXDOMAIN; p5: not available" in caught.value.detail


# ------------------------------------------------------------------ the protocol


def _request(**fields: Any) -> bytes:
    raw = {
        "kind": "dns-01",
        "identifier": NAME.as_wire(),
        "token": TOKEN,
        "key_authorization": KEY_AUTHZ,
        **fields,
    }
    return json.dumps(raw).encode()


def test_a_request_round_trips() -> None:
    request = CheckRequest("dns-01", NAME, TOKEN, KEY_AUTHZ)
    assert parse_request(request.to_json()) == request


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"x" * 5000, "larger than"),
        (b"\xff", "not JSON"),
        (b"[" * 4000, "not JSON"),  # nested past the recursion limit
        (b"null", "JSON object"),
        (_request(more=1), "unknown"),
        (_request(kind=7), "'kind'"),
        (_request(identifier={"type": "dns"}), "'identifier'"),
        (_request(identifier={"type": "dns", "value": "-bad-.example"}), "not a valid"),
        (_request(identifier={"type": "email", "value": "a@b.c"}), "not a valid"),
        (_request(token="a b"), "'token'"),
        (_request(key_authorization="other." + "p" * 43), "'key_authorization'"),
        (_request(key_authorization=f"{TOKEN}.{'p' * 44}"), "'key_authorization'"),
    ],
)
def test_bad_requests_are_named(body: bytes, words: str) -> None:
    with pytest.raises(BadCheckRequest, match=words):
        parse_request(body)


def test_answers_round_trip() -> None:
    assert parse_answer(answer(None)) is None
    found = parse_answer(answer(AcmeError(ProblemType.DNS, "no such DNS name")))
    assert found is not None and (found.type, found.detail) == (ProblemType.DNS, "no such DNS name")


def test_an_answer_is_bounded_and_cleaned() -> None:
    odd = {"result": "fail", "problem": {"type": "urn:x:y", "detail": "a\x1b[31mb\nc"}}
    found = parse_answer(json.dumps(odd).encode())
    assert found is not None and found.type == ProblemType.SERVER_INTERNAL
    assert found.detail == "a[31mbc"
    for bad in (b"x" * 9000, b"[]", b'{"result": "maybe"}', b'{"result": "fail"}'):
        with pytest.raises(ValueError):
            parse_answer(bad)


def test_a_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("x")
    key.chmod(0o644)
    with pytest.raises(ValueError, match="use 0600"):
        check_private_key_file(key)
    key.chmod(0o600)
    check_private_key_file(key)


# ------------------------------------------------------------------ configuration


def _config(sets: dict[str, Any] | None = None, **endpoint: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "server": {"base_url": "https://acme.test", "pki_base_url": "http://acme.test"},
        "endpoints": [
            {"name": "priv", "type": "private", "ca": "private", "profiles": ["x"]},
            {"name": "pub", "type": "public", "ca": "public", "profiles": ["y"], **endpoint},
        ],
    }
    if sets is not None:
        raw["perspectives"] = sets
    return raw


def _set(directory: Path = Path("/x"), count: int = 3, **changes: Any) -> dict[str, Any]:
    return {
        "ca_file": str(directory / "agents-ca.pem"),
        "client_cert_file": str(directory / "client.pem"),
        "client_key_file": str(directory / "client.key"),
        "agents": [
            {"name": f"p{i}", "url": f"https://10.9.{i}.2:8600", "identity": f"a{i}.test"}
            for i in range(count)
        ],
        **changes,
    }


def test_a_public_endpoint_names_its_perspectives() -> None:
    config = parse_config(_config({"eu": _set()}, perspectives="eu"))
    assert config.endpoints["pub"].perspectives == "eu"
    assert config.endpoints["priv"].perspectives is None
    assert [a.identity for a in config.perspectives["eu"].agents] == [
        "a0.test",
        "a1.test",
        "a2.test",
    ]


def _regions(*regions: str | None) -> dict[str, Any]:
    found = _set(count=len(regions))
    for agent, region in zip(found["agents"], regions, strict=True):
        if region is not None:
            agent["region"] = region
    return found


def test_regions_are_read() -> None:
    config = parse_config(_config({"eu": _regions("RIPE", "ARIN")}))
    assert [a.region for a in config.perspectives["eu"].agents] == ["RIPE", "ARIN"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (_config({"eu": _set(count=1)}, perspectives="eu"), "at least 2 remote perspectives"),
        (_config({"eu": _set()}, perspectives="us"), r"no \[perspectives.us\]"),
        (_config({"eu": _set(extra=1)}), "unknown setting"),
        (
            _config({"eu": _set(agents=[{"url": "http://a:1", "identity": "a.test"}] * 2)}),
            "https",
        ),
        (
            _config({"eu": _set(agents=[{"url": "https://a:1", "identity": "a.test"}] * 2)}),
            "unique",
        ),
        (
            _config({"eu": _set(agents=[{"url": "https://a:1", "identity": "a b"}] * 2)}),
            "identity",
        ),
        (_config({"eu": _regions("RIPE", None)}), "every agent a 'region', or none"),
        (_config({"eu": _regions("RIPE", "RIPE")}), "at least 2 RIR regions"),
        (_config({"eu": _regions("RIPE", "no spaces")}), "'region'"),
    ],
)
def test_bad_perspective_settings_are_named(raw: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_config(raw)


def test_a_private_endpoint_takes_no_perspectives() -> None:
    raw = _config({"eu": _set()})
    raw["endpoints"][0]["perspectives"] = "eu"
    with pytest.raises(ConfigError, match="private endpoint"):
        parse_config(raw)


def test_validators_are_corroborated_on_the_endpoint_that_asks(tmp_path: Path) -> None:
    ca = PerspectivesCA(tmp_path, "unit")
    cert, key = ca.issue("server.test", client=True, server=False)
    files = {"ca_file": ca.ca_file.name, "client_cert_file": cert.name, "client_key_file": key.name}
    config = parse_config(_config({"eu": _set(**files)}, perspectives="eu"))
    local = build_validators(config)
    chosen = build_endpoint_validators(config, local, tmp_path)  # relative to the data dir
    assert chosen["priv"] is local
    assert set(chosen["pub"]) == set(local)
    assert all(isinstance(v, CorroboratingValidator) for v in chosen["pub"].values())
    assert chosen["pub"]["dns-01"].deadline == local["dns-01"].deadline
    key.chmod(0o640)
    with pytest.raises(ConfigError, match=r"perspectives\.eu: .* use 0600"):
        build_endpoint_validators(config, local, tmp_path)


def test_an_agent_configuration(tmp_path: Path) -> None:
    raw = {
        "agent": {
            "listen": "[::]:9000",
            "cert_file": "a.pem",
            "key_file": "a.key",
            "client_ca_file": "ca.pem",
            "client_identity": "ACME.example.net",
        },
        "validation": {"dns_resolvers": ["192.0.2.53"], "timeout_seconds": 4},
    }
    config = parse_agent_config(raw, tmp_path)
    assert (config.host, config.port) == ("::", 9000)
    assert config.key_file == tmp_path / "a.key"
    assert config.client_identity == "acme.example.net"
    assert config.validation.dns_resolvers == (("192.0.2.53", 53),)
    assert config.validation.timeout == timedelta(seconds=4)
    for bad, words in [
        ({**raw, "agent": {**raw["agent"], "port": 1}}, "unknown setting"),
        ({**raw, "agent": {**raw["agent"], "listen": "x:99999"}}, "HOST:PORT"),
        ({**raw, "agent": {**raw["agent"], "max_concurrent_checks": 0}}, "max_concurrent"),
        ({**raw, "server": {}}, "unknown table"),
        ({"validation": {}}, r"no \[agent\]"),
    ]:
        with pytest.raises(ConfigError, match=words):
            parse_agent_config(bad, tmp_path)


def test_the_check_registry_builds_the_servers_validators() -> None:
    assert set(CHECKS) == {"http-01", "dns-01", "tls-alpn-01"}
    built = build_checks(ValidationConfig(timeout=timedelta(seconds=2)))
    assert isinstance(built["dns-01"], Dns01Validator)
    assert all(v.deadline == timedelta(seconds=2) for v in built.values())


def test_a_public_endpoint_without_perspectives_is_warned_about() -> None:
    without = public_pki_warnings(parse_config(_config()))
    assert any("endpoint pub is public but has no remote perspectives" in w for w in without)
    with_them = public_pki_warnings(parse_config(_config({"eu": _set()}, perspectives="eu")))
    assert not any("remote perspectives" in w for w in with_them)
