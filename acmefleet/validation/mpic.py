"""Multi-Perspective Issuance Corroboration (CA/Browser Forum Baseline Requirements 3.2.2.9).

A validation this server (the *primary network perspective*) makes is repeated, at the same
time, from remote network perspectives: ``acmefleet validator`` agents elsewhere on the
network, each with its own resolvers and routes, asked over mutual TLS (BR 3.2.2.9: "an
authenticated and encrypted channel"). A BGP or DNS hijack near one of them then cannot
alone make a validation pass.

The outcome, per BR 3.2.2.9:

* the primary's own check must pass (its problem is the challenge's problem otherwise);
* of the remote perspectives, at most ``allowed_non_corroborations(n)`` may fail to
  corroborate it, per the BR's *Quorum Requirements* table::

      | # of Distinct Remote Network Perspectives Used | # of Allowed non-Corroborations |
      | 2-5                                            | 1                               |
      | 6+                                             | 2                               |

  A perspective that answers with a problem, refuses the request, presents a certificate
  without the configured identity, or gives no answer within the challenge's deadline does
  not corroborate. Nothing is cached between perspectives or attempts (each agent asks its
  own resolvers afresh; BR 3.2.2.9 forbids reusing one perspective's results in another).

Everything runs under the challenge's one deadline (the primary validator's): the remote
requests start with the primary's check and each is cut off at that deadline, so a silent
agent costs no more time than a slow web server. The problem for a failed quorum names how
many perspectives did not corroborate and, per perspective, its configured name and the ACME
problem it reported; where an agent could not be used, only that (the address, the TLS
error or the HTTP status are logged, never shown).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import stat
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import httpx

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.validation.base import ChallengeValidator, TxtRecordChecker
from acmefleet.validation.caa import CaaCheck, CaaResult
from acmefleet.validation.perspective import (
    MAX_ANSWER_BYTES,
    PATH,
    CaaRequest,
    CheckRequest,
    PerspectiveRequest,
    TxtRequest,
    parse_answer,
)

log = logging.getLogger(__name__)

# BR 3.2.2.9 (from 15 September 2025): at least two remote network perspectives.
MIN_REMOTE_PERSPECTIVES = 2
# BR 3.2.2.9 (from 15 March 2026): those that corroborate span two RIR service regions.
MIN_REGIONS = 2


def allowed_non_corroborations(remote_perspectives: int) -> int:
    """BR 3.2.2.9, Table "Quorum Requirements": how many remote perspectives may fail to
    corroborate the primary's determination (2 to 5 used: 1; 6 or more: 2)."""
    if remote_perspectives < MIN_REMOTE_PERSPECTIVES:
        return 0
    if remote_perspectives <= 5:
        return 1
    return 2


def check_private_key_file(path: Path) -> None:
    """A private key must be a regular file only its owner can read (0600 or stricter)."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is not a regular file")
    if info.st_mode & 0o077:
        raise ValueError(f"{path} is readable by others (mode {info.st_mode & 0o777:o}): use 0600")


def tls_context(
    purpose: ssl.Purpose, *, ca_file: Path, cert_file: Path, key_file: Path
) -> ssl.SSLContext:
    """A mutual-TLS context, TLS 1.2 or later: our certificate and key, and the CA the other
    side's certificate must chain to. ``SERVER_AUTH``: the ACME server calling an agent (the
    agent's name is checked by the caller); ``CLIENT_AUTH``: an agent, which requires a
    client certificate."""
    check_private_key_file(key_file)
    context = ssl.create_default_context(purpose, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    context.load_cert_chain(str(cert_file), str(key_file))
    if purpose is ssl.Purpose.CLIENT_AUTH:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _certificate_refused(exc: BaseException) -> bool:
    """Whether the agent's certificate failed verification (wrong CA, wrong identity)."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx wraps httpcore's error, which wraps the ssl one
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _NotAvailable(Exception):
    """The perspective gave no usable answer (logged in full; shown only as such)."""


@dataclass(frozen=True)
class RemotePerspective:
    """One ``acmefleet validator`` agent: where it is and who it must prove to be."""

    name: str  # shown in problems: an operator's label, never the address
    url: str  # https://HOST:PORT
    identity: str  # a dNSName its certificate must carry (checked as the TLS server name)
    context: ssl.SSLContext  # tls_context(SERVER_AUTH, ...): our client certificate
    # The Regional Internet Registry whose service region it is in (ARIN, RIPE, ...), when
    # the operator says so: then the corroborating ones must span two (BR 3.2.2.9).
    region: str | None = None

    async def check(self, request: PerspectiveRequest, seconds: float) -> AcmeError | None:
        """The agent's finding (None: it corroborates); ``_NotAvailable`` when it gave none."""
        try:
            async with asyncio.timeout(seconds):
                return await self._ask(request)
        except TimeoutError:
            log.info("perspective %s (%s): no answer within %g s", self.name, self.url, seconds)
            raise _NotAvailable(f"no answer within {seconds:g} s") from None

    async def _ask(self, request: PerspectiveRequest) -> AcmeError | None:
        async with httpx.AsyncClient(verify=self.context, trust_env=False) as client:
            try:
                async with client.stream(
                    "POST",
                    self.url + PATH,
                    content=request.to_json(),
                    headers={"Content-Type": "application/json"},
                    # The certificate must name the configured identity, whatever address
                    # the URL has (the context checks the host name against this).
                    extensions={"sni_hostname": self.identity},
                ) as response:
                    body = bytearray()
                    async for chunk in response.aiter_raw():
                        body += chunk
                        if len(body) > MAX_ANSWER_BYTES:
                            break
                    status = response.status_code
            except httpx.HTTPError as exc:
                log.warning(
                    "perspective %s (%s): %s: %s", self.name, self.url, type(exc).__name__, exc
                )
                if _certificate_refused(exc):
                    raise _NotAvailable("its TLS certificate was not accepted") from None
                raise _NotAvailable("not reachable") from None
        if status != 200:
            log.warning(
                "perspective %s (%s) refused the check: HTTP %d %s",
                self.name,
                self.url,
                status,
                bytes(body[:200]),
            )
            raise _NotAvailable(f"refused the check (HTTP {status})")
        try:
            return parse_answer(bytes(body))
        except ValueError as exc:
            log.warning("perspective %s (%s): unusable answer: %s", self.name, self.url, exc)
            raise _NotAvailable("gave an unusable answer") from None


@dataclass(frozen=True)
class _Outcome:
    perspective: RemotePerspective
    problem: AcmeError | None  # None: corroborated
    unavailable: str | None = None  # why it gave no answer

    def shown(self) -> str:
        if self.unavailable is not None:
            return f"{self.perspective.name}: not available ({self.unavailable})"
        assert self.problem is not None
        return f"{self.perspective.name}: {self.problem.type.value}: {self.problem.detail}"


_T = TypeVar("_T")


async def _outcome(
    perspective: RemotePerspective, request: PerspectiveRequest, seconds: float
) -> _Outcome:
    try:
        return _Outcome(perspective, await perspective.check(request, seconds))
    except _NotAvailable as exc:
        return _Outcome(perspective, None, unavailable=str(exc))


async def _corroborated(
    primary: Awaitable[_T],
    perspectives: Sequence[RemotePerspective],
    request: PerspectiveRequest,
    seconds: float,
) -> tuple[_T, list[_Outcome]]:
    """The primary's determination and every remote perspective's outcome, asked side by
    side; the remote requests are cancelled when the primary's check fails."""
    remote = [
        asyncio.create_task(_outcome(p, request, seconds), name=f"mpic-{p.name}")
        for p in perspectives
    ]
    try:
        found = await primary
    except BaseException:
        # The primary's determination is the one that counts when it fails: no remote
        # answer could make the check pass, so stop asking.
        for task in remote:
            task.cancel()
        await asyncio.gather(*remote, return_exceptions=True)
        raise
    return found, list(await asyncio.gather(*remote))


def _judge(
    what: str,
    perspectives: Sequence[RemotePerspective],
    outcomes: list[_Outcome],
    *,
    identifier: dict[str, str] | None = None,
    status: int | None = None,
) -> None:
    """Raise the problem when ``outcomes`` are not within the BR 3.2.2.9 quorum (``what``:
    "dns-01 validation of example.org", say)."""
    failed = [o for o in outcomes if o.problem is not None or o.unavailable is not None]
    allowed = allowed_non_corroborations(len(outcomes))
    for outcome in failed:
        log.info(
            "%s: perspective %s did not corroborate: %s",
            what,
            outcome.perspective.name,
            outcome.shown(),
        )
    if len(failed) <= allowed:
        _judge_regions(what, perspectives, outcomes, failed, identifier=identifier)
        return
    types = {o.problem.type for o in failed if o.problem is not None}
    # One kind of failure everywhere (every perspective saw NXDOMAIN): that type;
    # mixed, or agents not available: the validation is not authorised.
    kind = types.pop() if len(types) == 1 and all(o.problem for o in failed) else None
    raise AcmeError(
        kind or ProblemType.UNAUTHORIZED,
        f"{len(failed)} of {len(outcomes)} remote network perspectives did not "
        f"corroborate this {what} (at most {allowed} may not: CA/B Forum BR 3.2.2.9): "
        + "; ".join(o.shown() for o in failed),
        status=status if kind is ProblemType.CAA else None,
        identifier=identifier,
    )


def _judge_regions(
    what: str,
    perspectives: Sequence[RemotePerspective],
    outcomes: list[_Outcome],
    failed: list[_Outcome],
    *,
    identifier: dict[str, str] | None = None,
) -> None:
    """BR 3.2.2.9 (from 15 March 2026): the perspectives that corroborate must fall within
    the service regions of at least two Regional Internet Registries. Applied when the
    set's agents are given regions (the configuration gives all of them one, or none)."""
    if not any(p.region for p in perspectives):
        return
    regions = {
        o.perspective.region for o in outcomes if o.problem is None and o.unavailable is None
    }
    if len(regions) >= MIN_REGIONS:
        return
    where = ", ".join(sorted(r for r in regions if r)) or "none"
    detail = (
        f"the remote network perspectives that corroborated this {what} are in "
        f"{len(regions)} Regional Internet Registry region(s) ({where}); CA/B Forum BR "
        f"3.2.2.9 needs {MIN_REGIONS}"
    )
    if failed:
        detail += ". Not corroborated by " + "; ".join(o.shown() for o in failed)
    raise AcmeError(ProblemType.UNAUTHORIZED, detail, identifier=identifier)


class CorroboratingValidator:
    """A ``ChallengeValidator`` that passes only when ``primary`` passes and the remote
    perspectives corroborate it within the BR 3.2.2.9 quorum. Chosen per public endpoint
    (``server/build.py``); it is the same challenge type and deadline as ``primary``."""

    def __init__(
        self,
        primary: ChallengeValidator,
        perspectives: Sequence[RemotePerspective],
        *,
        kind: str | None = None,
    ) -> None:
        if len(perspectives) < MIN_REMOTE_PERSPECTIVES:
            raise ValueError(
                f"BR 3.2.2.9 needs at least {MIN_REMOTE_PERSPECTIVES} remote perspectives"
            )
        self._primary = primary
        self._perspectives = tuple(perspectives)
        self.challenge_type = primary.challenge_type
        self.kind = kind or primary.challenge_type  # the agents' check kind
        self.deadline = primary.deadline

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        request = CheckRequest(self.kind, identifier, token, key_authorization)
        _, outcomes = await _corroborated(
            self._primary.validate(identifier, token, key_authorization),
            self._perspectives,
            request,
            self.deadline.total_seconds(),
        )
        _judge(
            f"{self.challenge_type} validation of {identifier.value}", self._perspectives, outcomes
        )

    async def expect_txt(self, name: str, value: str) -> None:
        """The console's DNS check (BR 3.2.2.4.7) corroborated as a validation is: the
        primary (a dns-01 validator) looks the TXT record up, and so does every agent."""
        primary = self._primary
        if not isinstance(primary, TxtRecordChecker):
            raise AcmeError(
                ProblemType.SERVER_INTERNAL, f"{self.challenge_type} does not look TXT records up"
            )
        _, outcomes = await _corroborated(
            primary.expect_txt(name, value),
            self._perspectives,
            TxtRequest(name, value),
            self.deadline.total_seconds(),
        )
        _judge(f"TXT record check of {name}", self._perspectives, outcomes)


class CorroboratingCaaChecker:
    """A ``CaaCheck`` (``validation/caa.py``) that allows issuance only when ``primary``
    allows it and the remote perspectives corroborate that within the BR 3.2.2.9 quorum
    (BR 3.2.2.9 has the CAA check corroborated as a domain validation is).

    A perspective that found a forbidding record (``caa``) and one whose lookup failed
    (``dns``) both do not corroborate; the problem names each with its own type and words.
    When too many do not, the problem is ``caa`` if every one of them saw a forbidding
    record, the shared type if all failed alike, and ``unauthorized`` otherwise: only a
    ``caa`` problem ends an order at finalize, a failed lookup leaves it to be retried."""

    def __init__(
        self,
        primary: CaaCheck,
        perspectives: Sequence[RemotePerspective],
        *,
        deadline: timedelta,
    ) -> None:
        if len(perspectives) < MIN_REMOTE_PERSPECTIVES:
            raise ValueError(
                f"BR 3.2.2.9 needs at least {MIN_REMOTE_PERSPECTIVES} remote perspectives"
            )
        self._primary = primary
        self._perspectives = tuple(perspectives)
        self.deadline = deadline

    async def check(
        self,
        name: str,
        *,
        wildcard: bool,
        account_uri: str,
        method: str,
        issuer_domains: Sequence[str],
    ) -> CaaResult:
        request = CaaRequest(name, wildcard, account_uri, method, tuple(issuer_domains))
        found, outcomes = await _corroborated(
            self._primary.check(
                name,
                wildcard=wildcard,
                account_uri=account_uri,
                method=method,
                issuer_domains=issuer_domains,
            ),
            self._perspectives,
            request,
            self.deadline.total_seconds(),
        )
        shown = f"*.{name}" if wildcard else name
        _judge(
            f"CAA check for {shown}",
            self._perspectives,
            outcomes,
            identifier={"type": "dns", "value": shown},
            status=403,
        )
        return found
