"""A realistic roll-out's outcomes, shaped as ``Rollout.run`` records them, for the report tests.

Six hosts: one already served a valid certificate (skipped after the TLS check), a canary that
went through every phase (its packages installed while the server was deployed), a second
wave of three (packages installed by the enrolment playbook itself) where one failed in it
(over the budget of 0), and a third
wave that was therefore not attempted. The phase times follow the order rollout.py records.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from acmefleet.fleet import core
from acmefleet.fleet.report_html import RunFacts
from acmefleet.fleet.state import HostOutcome

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
T0 = NOW.timestamp() - 600  # the run started ten minutes before the report
ISSUER = "acmefleet Private Issuing CA"
# The HMAC key minted for web4: a careless task echoed its command line into the error, the
# page must not carry it on.
HMAC_KEY = "q3Vx8tYwZp0LmN4bRcDe7FgHiJkA9sUoPv2WxYz1AbC"
FAILURE = (
    "Obtain the certificate with lego: non-zero return code\n"
    f"cmd: lego --eab --kid kid-web4 --hmac {HMAC_KEY} run\n"
    "acme: error: 403 :: urn:ietf:params:acme:error:unauthorized :: "
    "names are not allowed for this account's organisation"
)


def stamp(days: int) -> str:
    return (NOW + timedelta(days=days)).strftime(core.TIME_FORMAT)


def span(start: float, end: float) -> list[float]:
    return [round(T0 + start, 3), round(T0 + end, 3)]


def sample_run() -> tuple[list[HostOutcome], RunFacts]:
    tls = span(0.0, 0.4)
    pre = span(0.4, 3.1)
    # later waves install their packages inside the enrolment playbook (within issuance)
    second = {"tls": tls, "preflight": pre, "eab": span(96.0, 96.9), "packages": span(97.4, 131.0)}
    outcomes = [
        HostOutcome(
            "web0", "certbot_apache", "skipped", ["web0.example.net"], serial="0a1b2c3d",
            issuer=ISSUER, not_after=stamp(61), phases={"tls": tls},
        ),
        HostOutcome(
            "web1", "lego_nginx", "enrolled", ["web1.example.net", "www.web1.example.net"],
            serial="5e6f7a8b9c", issuer=ISSUER, not_after=stamp(89), duration=52.0, wave=1,
            eab_kid="kid-web1", changes=14,
            phases={
                "tls": tls, "preflight": pre, "packages": span(3.1, 41.0),
                "eab": span(41.0, 41.6), "enrol": span(41.6, 92.5), "verify": span(92.5, 93.1),
            },
        ),
        HostOutcome(
            "web2", "lego_nginx", "enrolled", ["web2.example.net"], serial="77aa", issuer=ISSUER,
            not_after=stamp(89), duration=70.0, wave=2, eab_kid="kid-web2",
            phases={**second, "enrol": span(96.9, 160.2), "verify": span(160.2, 161.0)},
        ),
        HostOutcome(
            "web3", "certbot_apache", "enrolled", ["web3.example.net"], serial="88bb",
            issuer=ISSUER, not_after=stamp(89), duration=70.0, wave=2, eab_kid="kid-web3",
            phases={**second, "enrol": span(96.9, 160.2), "verify": span(160.2, 161.0)},
        ),
        HostOutcome(
            "web4", "lego_nginx", "failed", ["web4.example.net"], wave=2, duration=70.0,
            eab_kid="kid-web4", error=FAILURE + " (its unused EAB was revoked)",
            phases={**second, "enrol": span(96.9, 160.2), "verify": span(160.2, 161.0)},
            failed_phase="enrol",
        ),
        HostOutcome(
            "web5", "certbot_apache", "not-attempted", ["web5.example.net"], wave=3,
            error="stopped: failure budget", phases={"tls": tls, "preflight": pre},
        ),
    ]  # fmt: skip
    facts = RunFacts(
        inventory="/srv/fleet/inventory/production.fleet.yml",
        started=T0,
        ended=T0 + 161.5,
        plan=(("web1",), ("web2", "web3", "web4"), ("web5",)),
        waves="1,75%,100%",
        max_fail="0",
        min_days=30,
    )
    return outcomes, facts


# Bars the sample draws: web0 1, web1 6, web2-web4 6 each, web5 2; one of them failed.
SAMPLE_BARS = 27
