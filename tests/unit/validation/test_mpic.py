"""MPIC (BR 3.2.2.9): the quorum table, the agent protocol, and the configuration."""

from __future__ import annotations

import json
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from acmefleet.agent.checks import CHECKS, CaaAgentCheck, build_caa, build_checks
from acmefleet.agent.config import parse_agent_config
from acmefleet.config import ConfigError, ValidationConfig, parse_config, public_pki_warnings
from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.server.build import (
    build_endpoint_caa_checkers,
    build_endpoint_validators,
    build_validators,
    console_validators,
    endpoint_perspectives,
)
from acmefleet.validation import mpic
from acmefleet.validation.caa import CaaChecker
from acmefleet.validation.dns01 import Dns01Validator
from acmefleet.validation.dnsquery import DnsSettings
from acmefleet.validation.mpic import (
    CorroboratingCaaChecker,
    CorroboratingValidator,
    RemotePerspective,
    _Outcome,
    allowed_non_corroborations,
    check_private_key_file,
)
from acmefleet.validation.perspective import (
    MAX_REQUEST_BYTES,
    BadCheckRequest,
    CaaRequest,
    CheckRequest,
    TxtRequest,
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
    mpic._judge(f"dns-01 validation of {NAME.value}", validator._perspectives, outcomes)


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
        (_request(key_authorization=f"{TOKEN}.{'p' * 65}"), "'key_authorization'"),
        (_request(key_authorization=f"{TOKEN}."), "'key_authorization'"),
        (_request(key_authorization=f"{TOKEN}.a b"), "'key_authorization'"),
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


# ------------------------------------------------------------------ CAA corroborated


ACCOUNT = "https://acme.test/acme/pub/acct/42"


def _caa(**fields: Any) -> bytes:
    raw = {
        "kind": "caa",
        "name": "www.example.org",
        "wildcard": False,
        "account_uri": ACCOUNT,
        "method": "dns-01",
        "issuer_domains": ["acme.test", "ca.example"],
        **fields,
    }
    return json.dumps(raw).encode()


def test_a_caa_request_round_trips() -> None:
    request = CaaRequest("example.org", True, ACCOUNT, "ca-dns-txt", ("acme.test",))
    assert parse_request(request.to_json()) == request
    # Names are normalised as identifiers are.
    parsed = parse_request(_caa(name="WWW.Example.ORG"))
    assert isinstance(parsed, CaaRequest) and parsed.name == "www.example.org"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_caa(token=TOKEN), "unknown"),
        (json.dumps({"kind": "caa", "name": "example.org"}).encode(), "missing"),
        (_caa(name="*.example.org"), "'name'"),
        (_caa(name="-bad-.example"), "'name'"),
        (_caa(name="192.0.2.1"), "'name'"),
        (_caa(name=["example.org"]), "'name'"),
        (_caa(name="a" * 300 + ".org"), "'name'"),
        (_caa(wildcard="true"), "'wildcard'"),
        (_caa(wildcard=1), "'wildcard'"),
        (_caa(account_uri="http://acme.test/acct/1"), "'account_uri'"),
        (_caa(account_uri=ACCOUNT + " x"), "'account_uri'"),
        (_caa(account_uri=ACCOUNT + ";x=y"), "'account_uri'"),
        (_caa(account_uri=ACCOUNT + "\n"), "'account_uri'"),
        (_caa(account_uri="https://" + "a" * 501), "'account_uri'"),
        (_caa(method="dns 01"), "'method'"),
        (_caa(method=""), "'method'"),
        (_caa(method="m" * 65), "'method'"),
        (_caa(issuer_domains=[]), "'issuer_domains'"),
        (_caa(issuer_domains="acme.test"), "'issuer_domains'"),
        (_caa(issuer_domains=[7]), "'issuer_domains'"),
        (_caa(issuer_domains=["acme test"]), "'issuer_domains'"),
        (_caa(issuer_domains=["acme.test."]), "'issuer_domains'"),
        (_caa(issuer_domains=[f"ca{i}.test" for i in range(9)]), "'issuer_domains'"),
        (_caa(issuer_domains=["a" * 200] * 8, pad="x" * 3000), "larger than"),
    ],
)
def test_bad_caa_requests_are_named(body: bytes, words: str) -> None:
    with pytest.raises(BadCheckRequest, match=words):
        parse_request(body)


def test_the_largest_valid_caa_request_fits() -> None:
    label = "a" * 63
    domains = tuple(f"{label}.{label}.{label}.{'b' * 60}"[:253] for _ in range(8))
    request = CaaRequest(
        f"{label}.{label}.{label}.{'c' * 61}", True, "https://" + "u" * 500, "m" * 64, domains
    )
    assert len(request.to_json()) <= MAX_REQUEST_BYTES
    assert parse_request(request.to_json()) == request


def _caa_checker(count: int) -> CorroboratingCaaChecker:
    primary = _validator(count)
    return CorroboratingCaaChecker(
        CaaChecker(DnsSettings((("127.0.0.1", 53),), timedelta(seconds=3))),
        primary._perspectives,
        deadline=timedelta(seconds=3),
    )


def _judge_caa(checker: CorroboratingCaaChecker, failures: list[AcmeError | str | None]) -> None:
    outcomes = [
        _Outcome(p, f if isinstance(f, AcmeError) else None, f if isinstance(f, str) else None)
        for p, f in zip(checker._perspectives, failures, strict=True)
    ]
    mpic._judge(
        "CAA check for www.example.org",
        checker._perspectives,
        outcomes,
        identifier={"type": "dns", "value": "www.example.org"},
        status=403,
    )


def test_caa_forbidding_and_lookup_failure_both_do_not_corroborate() -> None:
    checker = _caa_checker(3)
    forbids = AcmeError(ProblemType.CAA, "the CAA records at www.example.org forbid issuance")
    failed = AcmeError(ProblemType.DNS, "CAA could not be checked, so nothing is issued: SERVFAIL")
    _judge_caa(checker, [None, None, forbids])  # one of three: within quorum
    _judge_caa(checker, [None, failed, None])
    with pytest.raises(AcmeError) as caught:
        _judge_caa(checker, [None, forbids, forbids])
    assert (caught.value.type, caught.value.http_status) == (ProblemType.CAA, 403)
    assert caught.value.identifier == {"type": "dns", "value": "www.example.org"}
    assert caught.value.detail.startswith(
        "2 of 3 remote network perspectives did not corroborate this CAA check for "
        "www.example.org (at most 1 may not: CA/B Forum BR 3.2.2.9): p1: caa: the CAA records"
    )
    # Mixed: the problem names which saw a forbidding record and which could not look.
    with pytest.raises(AcmeError) as caught:
        _judge_caa(checker, [forbids, failed, None])
    assert caught.value.type == ProblemType.UNAUTHORIZED
    assert "p0: caa: the CAA records" in caught.value.detail
    assert "p1: dns: CAA could not be checked" in caught.value.detail


def test_fewer_than_two_caa_perspectives_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        _caa_checker(1)


def test_the_agent_registers_the_caa_check() -> None:
    built = build_caa(
        ValidationConfig(dns_resolvers=(("192.0.2.53", 53),), timeout=timedelta(seconds=2))
    )
    assert isinstance(built, CaaAgentCheck) and built.kind == "caa"
    assert isinstance(built.checker, CaaChecker)
    assert built.checker.settings.resolvers == (("192.0.2.53", 53),)
    assert built.deadline == timedelta(seconds=2)


def test_only_endpoints_with_perspectives_corroborate_caa(tmp_path: Path) -> None:
    ca = PerspectivesCA(tmp_path, "unit")
    cert, key = ca.issue("server.test", client=True, server=False)
    files = {"ca_file": ca.ca_file.name, "client_cert_file": cert.name, "client_key_file": key.name}
    config = parse_config(_config({"eu": _set(**files)}, perspectives="eu"))
    checkers = build_endpoint_caa_checkers(config, endpoint_perspectives(config, tmp_path))
    assert set(checkers) == {"pub"}  # "priv" keeps the context's own CaaChecker
    assert isinstance(checkers["pub"], CorroboratingCaaChecker)
    assert checkers["pub"].deadline == config.validation.timeout


# ------------------------------------------------------------------ the console corroborated


def test_the_consoles_http01_content_is_a_key_authorization_the_agent_accepts() -> None:
    # The console's http-01 check expects TOKEN.acmefleet-domain-validation.
    request = CheckRequest("http-01", NAME, TOKEN, f"{TOKEN}.acmefleet-domain-validation")
    assert parse_request(request.to_json()) == request


def _txt(**fields: Any) -> bytes:
    raw = {"kind": "txt", "name": "_acmefleet-challenge.example.org", "value": "v" * 43}
    return json.dumps({**raw, **fields}).encode()


def test_a_txt_request_round_trips() -> None:
    request = TxtRequest("_acmefleet-challenge.example.org", "v" * 43)
    assert parse_request(request.to_json()) == request
    parsed = parse_request(_txt(name="_acmefleet-challenge.Example.ORG"))
    assert isinstance(parsed, TxtRequest) and parsed.name == "_acmefleet-challenge.example.org"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_txt(extra=1), "unknown"),
        (json.dumps({"kind": "txt", "name": "_a.example.org"}).encode(), "missing"),
        (_txt(name="example.org"), "'name'"),  # no underscore label
        (_txt(name="_acmefleet-challenge"), "'name'"),  # nothing under it
        (_txt(name="_acmefleet-challenge.*.example.org"), "'name'"),
        (_txt(name="_ACME.example.org"), "'name'"),
        (_txt(name="_-bad.example.org"), "'name'"),
        (_txt(name="_x.-bad-.example"), "'name'"),
        (_txt(name=7), "'name'"),
        (_txt(value="short"), "'value'"),
        (_txt(value="a b" * 10), "'value'"),
        (_txt(value="v" * 129), "'value'"),
        (_txt(value=None), "'value'"),
    ],
)
def test_bad_txt_requests_are_named(body: bytes, words: str) -> None:
    with pytest.raises(BadCheckRequest, match=words):
        parse_request(body)


def test_the_console_uses_the_validators_of_a_public_endpoint_with_perspectives(
    tmp_path: Path,
) -> None:
    ca = PerspectivesCA(tmp_path, "unit")
    cert, key = ca.issue("server.test", client=True, server=False)
    files = {"ca_file": ca.ca_file.name, "client_cert_file": cert.name, "client_key_file": key.name}
    config = parse_config(_config({"eu": _set(**files)}, perspectives="eu"))
    local = build_validators(config)
    chosen = build_endpoint_validators(config, local, tmp_path)
    console = console_validators(config, local, chosen)
    assert console is chosen["pub"]
    assert all(isinstance(v, CorroboratingValidator) for v in console.values())
    # Without perspectives anywhere: the server's own.
    plain = parse_config(_config())
    assert console_validators(plain, local, {"pub": local, "priv": local}) is local
