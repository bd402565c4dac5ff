"""An RFC 8555 client for the upstream CA: one account, its orders, their authorizations.

Written for a server that talks to a CA on its own, unattended, for hours, so every answer is
treated as untrusted input:

* **one origin**: every URL the upstream hands out (directory entries, ``Location``,
  authorization, challenge, finalize and certificate URLs) must have the directory's scheme,
  host and port and no user info, or the client refuses it (a CA that names
  ``http://127.0.0.1:…`` does not make this server fetch it). Redirects are not followed.
* **bounded**: each request has one deadline (``timeout``) for connecting, sending and
  reading; an answer larger than ``MAX_BODY`` is cut off and refused; no compression is asked
  for; ``Retry-After`` is read only as a whole number of seconds and capped.
* **nonces**: the last ``Replay-Nonce`` seen is used next (a stack: the freshest first); a
  ``badNonce`` problem carries a new one and the request is signed again with it, at most
  ``NONCE_RETRIES`` times.
* **errors**: ``UpstreamUnavailable`` (no answer, 5xx without a problem document),
  ``UpstreamProblem`` (the CA's problem document, sanitised), ``UpstreamProtocolError``
  (anything RFC 8555 does not allow). Each says whether a later attempt can help.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from acmefleet.jose.b64 import b64url_encode
from acmefleet.upstream.errors import (
    Subproblem,
    UpstreamError,
    UpstreamOrderFailed,
    UpstreamProblem,
    UpstreamProtocolError,
    UpstreamUnavailable,
    printable,
)
from acmefleet.upstream.signing import AccountSigner
from acmefleet.validation.dns01 import txt_value

MAX_BODY = 1024 * 1024  # a chain of a few certificates is a few KiB; a directory less
MAX_URL = 2000
MAX_RETRY_AFTER = 86400.0
MAX_SUBPROBLEMS = 20
MAX_CHAIN = 5
NONCE_RETRIES = 3
NONCE_POOL = 16
USER_AGENT = "acmefleet-upstream"
_RETRY_AFTER = re.compile(r"[0-9]{1,10}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")
MIN_YEAR, MAX_YEAR = 1970, 9000
_CERT_ID = re.compile(r"[A-Za-z0-9_-]{1,100}\.[A-Za-z0-9_-]{1,100}")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)")
_FINAL_ORDER = {"valid", "invalid"}
_FINAL_AUTHZ = {"valid", "invalid", "deactivated", "expired", "revoked"}


class TxtPublisher(Protocol):
    """Where dns-01 records go (``upstream.dns01.Rfc2136Publisher``)."""

    async def publish(self, record: str, value: str) -> None: ...

    async def withdraw(self, record: str, value: str) -> None: ...

    async def settled(self) -> None: ...


@dataclass(frozen=True)
class Challenge:
    type: str
    url: str
    status: str
    token: str | None


@dataclass(frozen=True)
class Authorization:
    url: str
    status: str
    identifier: str
    wildcard: bool
    challenges: tuple[Challenge, ...]
    error: UpstreamProblem | None


@dataclass(frozen=True)
class Order:
    url: str
    status: str
    identifiers: tuple[str, ...]
    authorizations: tuple[str, ...]
    finalize: str
    certificate: str | None
    error: UpstreamProblem | None
    retry_after: float | None = None


@dataclass(frozen=True)
class RenewalWindow:
    """The upstream's suggested renewal window for one of its certificates (RFC 9773 §4.2),
    and how long it asks to be left alone before the next question (``Retry-After``)."""

    start: datetime
    end: datetime
    retry_after: float | None


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise UpstreamProtocolError("the upstream sent JSON that does not parse") from exc
        if not isinstance(value, dict):
            raise UpstreamProtocolError("the upstream sent JSON that is not an object")
        return value


def retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` as seconds, if it is a whole number (capped at a day); else None."""
    raw = headers.get("retry-after", "").strip()
    if not _RETRY_AFTER.fullmatch(raw):
        return None
    return min(float(raw), MAX_RETRY_AFTER)


def _text(value: Any, limit: int = 300) -> str:
    return printable(value, limit) if isinstance(value, str) else ""


def _problem(body: Any, status: int, after: float | None) -> UpstreamProblem:
    subproblems: list[Subproblem] = []
    raw_subs = body.get("subproblems") if isinstance(body.get("subproblems"), list) else []
    for item in raw_subs[:MAX_SUBPROBLEMS]:
        if not isinstance(item, dict):
            continue
        identifier = item.get("identifier")
        value = identifier.get("value") if isinstance(identifier, dict) else None
        subproblems.append(
            Subproblem(
                _text(item.get("type"), 120),
                _text(item.get("detail")),
                _text(value, 255) or None,
            )
        )
    return UpstreamProblem(
        _text(body.get("type"), 120) or "about:blank",
        _text(body.get("detail")),
        status=status,
        subproblems=tuple(subproblems),
        retry_after=after,
    )


def _instant(value: Any) -> datetime:
    """An RFC 3339 date-time with its offset (as ACME writes them), else a protocol error."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise UpstreamProtocolError("the upstream sent a time that is not RFC 3339")
    try:
        instant = datetime.fromisoformat(value.upper()).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise UpstreamProtocolError("the upstream sent a time that does not exist") from exc
    if not MIN_YEAR <= instant.year <= MAX_YEAR:  # and a database could not store it
        raise UpstreamProtocolError("the upstream sent a time out of any certificate's life")
    return instant


def _is_token(value: Any) -> bool:
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


class UpstreamClient:
    """One account at one upstream CA. Use as an async context manager."""

    def __init__(
        self,
        directory_url: str,
        signer: AccountSigner,
        *,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 30.0,
        account_url: str | None = None,
    ) -> None:
        self.directory_url = directory_url
        self.signer = signer
        self.account_url = account_url
        self.timeout = timeout
        origin = httpx.URL(directory_url)
        if (
            origin.scheme != "https"
            or not origin.host
            or origin.userinfo
            or not 1 <= (origin.port or 443) <= 65535
        ):
            raise ValueError(f"{directory_url!r}: the directory URL must be https://HOST[:PORT]/…")
        self._origin = (origin.scheme, origin.host, origin.port)
        self._verify = verify
        # Made on first use, on the event loop that uses it (a server builds its clients
        # before its loop runs).
        self._client: httpx.AsyncClient | None = None
        self._directory: dict[str, Any] | None = None
        self._nonces: list[str] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=self._verify,
                timeout=self.timeout,
                follow_redirects=False,
                trust_env=False,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            )
        return self._client

    # ------------------------------------------------------------------ transport

    def _checked_url(self, url: Any, what: str) -> str:
        if not isinstance(url, str) or not url or len(url) > MAX_URL:
            raise UpstreamProtocolError(f"the upstream's {what} URL is missing or too long")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise UpstreamProtocolError(f"the upstream's {what} URL does not parse") from exc
        if (parsed.scheme, parsed.host, parsed.port) != self._origin or parsed.userinfo:
            raise UpstreamProtocolError(
                f"the upstream's {what} URL leaves the directory's origin: refused"
            )
        return url

    async def _send(self, method: str, url: str, **kwargs: Any) -> _Answer:
        request = self._http.build_request(method, url, **kwargs)
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http.send(request, stream=True)
                try:
                    # Asked for none: a compressed answer is refused before it is read, not
                    # unpacked (a few KiB of gzip can unpack to gigabytes in one chunk).
                    encoding = response.headers.get("content-encoding", "identity").strip()
                    if encoding.lower() not in ("", "identity"):
                        raise UpstreamProtocolError(
                            "the upstream sent a compressed answer though none was asked for"
                        )
                    body = bytearray()
                    async for chunk in response.aiter_raw():
                        body += chunk
                        if len(body) > MAX_BODY:
                            raise UpstreamProtocolError(
                                f"the upstream's answer is larger than {MAX_BODY} bytes"
                            )
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise UpstreamUnavailable(
                f"no answer from the upstream within {self.timeout:g} s", retry_after=None
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"the upstream cannot be reached ({type(exc).__name__})"
            ) from exc
        nonce = response.headers.get("replay-nonce")
        if nonce and len(nonce) <= 256:
            self._nonces.append(nonce)
            del self._nonces[:-NONCE_POOL]
        answer = _Answer(response.status_code, response.headers, bytes(body))
        if 300 <= answer.status < 400:
            raise UpstreamProtocolError(f"the upstream redirected ({answer.status}): refused")
        if answer.status >= 400:
            raise self._failure(answer)
        return answer

    def _failure(self, answer: _Answer) -> UpstreamError:
        after = retry_after(answer.headers)
        content_type = answer.headers.get("content-type", "").split(";")[0].strip()
        if content_type == "application/problem+json":
            with contextlib.suppress(UpstreamProtocolError):
                return _problem(answer.json(), answer.status, after)
        if answer.status >= 500 or answer.status == 429:
            return UpstreamUnavailable(f"the upstream answered {answer.status}", retry_after=after)
        if answer.status == 404:  # pebble says so of an order it does not hold, plainly
            return UpstreamProblem("about:blank", "not found", status=404)
        return UpstreamProtocolError(f"the upstream answered {answer.status} without a problem")

    async def directory(self) -> dict[str, Any]:
        if self._directory is None:
            body = (await self._send("GET", self.directory_url)).json()
            for name in ("newNonce", "newAccount", "newOrder"):
                self._checked_url(body.get(name), name)
            self._directory = body
        return self._directory

    async def _resource(self, name: str) -> str:
        return self._checked_url((await self.directory()).get(name), name)

    async def _nonce(self) -> str:
        if self._nonces:
            return self._nonces.pop()
        await self._send("HEAD", await self._resource("newNonce"))
        if not self._nonces:
            raise UpstreamProtocolError("the upstream's newNonce gave no Replay-Nonce")
        return self._nonces.pop()

    async def _post(self, url: str, payload: Any | None, *, by_key: bool = False) -> _Answer:
        """A signed POST (``payload`` None: POST-as-GET), by ``kid`` unless ``by_key``."""
        kid = None if by_key else self._require_account()
        for attempt in range(NONCE_RETRIES + 1):
            body = self.signer.sign(url, await self._nonce(), payload, kid=kid)
            try:
                return await self._send(
                    "POST",
                    url,
                    content=json.dumps(body).encode(),
                    headers={"Content-Type": "application/jose+json"},
                )
            except UpstreamProblem as problem:
                if problem.acme_type != "badNonce" or attempt == NONCE_RETRIES:
                    raise
                # The refused nonce's answer carried a fresh one (§6.5): it is next on the stack.
        raise AssertionError("unreachable")

    def _require_account(self) -> str:
        if self.account_url is None:
            raise UpstreamError("no upstream account: register or find it first")
        return self.account_url

    # ------------------------------------------------------------------ account

    async def register(
        self, *, contact: Sequence[str] = (), eab: tuple[str, str] | None = None
    ) -> str:
        """newAccount, agreeing to the terms; ``eab`` is (kid, HMAC key). The account URL."""
        url = await self._resource("newAccount")
        payload: dict[str, Any] = {"termsOfServiceAgreed": True}
        if contact:
            payload["contact"] = list(contact)
        if eab is not None:
            payload["externalAccountBinding"] = self.signer.eab_binding(url, *eab)
        answer = await self._post(url, payload, by_key=True)
        self.account_url = self._checked_url(answer.headers.get("location"), "account")
        return self.account_url

    async def find_account(self) -> str | None:
        """newAccount with ``onlyReturnExisting``: the key's account URL, or None."""
        url = await self._resource("newAccount")
        try:
            answer = await self._post(url, {"onlyReturnExisting": True}, by_key=True)
        except UpstreamProblem as problem:
            if problem.acme_type == "accountDoesNotExist":
                return None
            raise
        self.account_url = self._checked_url(answer.headers.get("location"), "account")
        return self.account_url

    async def account_orders(self, max_pages: int = 20) -> list[str]:
        """The URLs of this account's orders (RFC 8555 §7.1.2.1), following ``Link:
        rel="next"`` for at most ``max_pages`` pages. The CA decides which it lists (pebble
        and Boulder: the pending and recent ones)."""
        account = (await self._post(self._require_account(), None)).json()
        url: str | None = self._checked_url(account.get("orders"), "orders")
        found: list[str] = []
        for _page in range(max_pages):
            if url is None:
                break
            answer = await self._post(url, None)
            listed = answer.json().get("orders")
            if not isinstance(listed, list):
                raise UpstreamProtocolError("the upstream's orders list is not a list")
            found += [self._checked_url(item, "order") for item in listed]
            following = answer.headers.get_list("link")
            url = None
            for link in following:
                target, _, params = link.partition(";")
                if 'rel="next"' in params.replace(" ", ""):
                    url = self._checked_url(target.strip().strip("<>"), "orders")
        return found

    # ------------------------------------------------------------------ renewal information

    async def has_renewal_info(self) -> bool:
        """Whether the upstream's directory offers renewalInfo (RFC 9773 §3)."""
        return (await self.directory()).get("renewalInfo") is not None

    async def renewal_info(self, cert_id: str) -> RenewalWindow | None:
        """The upstream's window for the certificate ``cert_id`` names (an unauthenticated
        GET, §4.1); None when the upstream offers no renewalInfo."""
        if not await self.has_renewal_info():
            return None
        if not _CERT_ID.fullmatch(cert_id):
            raise ValueError("not a certID")
        base = await self._resource("renewalInfo")
        answer = await self._send("GET", f"{base.rstrip('/')}/{cert_id}")
        window = answer.json().get("suggestedWindow")
        if not isinstance(window, dict):
            raise UpstreamProtocolError("the upstream's renewalInfo has no suggestedWindow")
        start, end = _instant(window.get("start")), _instant(window.get("end"))
        if end <= start:
            # §4.2: a window whose end is not after its start is not a window
            raise UpstreamProtocolError("the upstream's suggestedWindow ends before it starts")
        return RenewalWindow(start, end, retry_after(answer.headers))

    # ------------------------------------------------------------------ orders

    def _order(self, url: str, body: dict[str, Any], after: float | None) -> Order:
        status = body.get("status")
        identifiers = body.get("identifiers")
        authorizations = body.get("authorizations")
        if not isinstance(status, str) or not isinstance(authorizations, list):
            raise UpstreamProtocolError("the upstream's order lacks a status or authorizations")
        names = tuple(
            str(i.get("value"))
            for i in (identifiers if isinstance(identifiers, list) else [])
            if isinstance(i, dict)
        )
        certificate = body.get("certificate")
        error = body.get("error")
        return Order(
            url=url,
            status=printable(status, 20),
            identifiers=names,
            authorizations=tuple(self._checked_url(a, "authorization") for a in authorizations),
            finalize=self._checked_url(body.get("finalize"), "finalize"),
            certificate=(
                self._checked_url(certificate, "certificate") if certificate is not None else None
            ),
            error=_problem(error, 403, None) if isinstance(error, dict) else None,
            retry_after=after,
        )

    async def new_order(
        self, names: Sequence[str], *, profile: str | None = None, replaces: str | None = None
    ) -> Order:
        """newOrder; ``replaces``: the certID of the certificate it renews (RFC 9773 §5)."""
        payload: dict[str, Any] = {"identifiers": [{"type": "dns", "value": n} for n in names]}
        if profile is not None:
            payload["profile"] = profile
        if replaces is not None:
            payload["replaces"] = replaces
        answer = await self._post(await self._resource("newOrder"), payload)
        url = self._checked_url(answer.headers.get("location"), "order")
        return self._order(url, answer.json(), retry_after(answer.headers))

    async def order(self, url: str) -> Order:
        answer = await self._post(self._checked_url(url, "order"), None)
        return self._order(url, answer.json(), retry_after(answer.headers))

    async def authorization(self, url: str) -> Authorization:
        body = (await self._post(self._checked_url(url, "authorization"), None)).json()
        identifier = body.get("identifier")
        value = identifier.get("value") if isinstance(identifier, dict) else None
        status = body.get("status")
        if not isinstance(value, str) or not isinstance(status, str):
            raise UpstreamProtocolError("the upstream's authorization lacks its identifier")
        challenges = []
        error = None
        listed = body.get("challenges")
        if not isinstance(listed, list):
            raise UpstreamProtocolError("the upstream's authorization lists no challenges")
        for item in listed:
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                continue
            token = item.get("token")
            challenges.append(
                Challenge(
                    printable(item["type"], 40),
                    self._checked_url(item.get("url"), "challenge"),
                    printable(item.get("status", ""), 20),
                    token if _is_token(token) else None,
                )
            )
            if isinstance(item.get("error"), dict) and error is None:
                error = _problem(item["error"], 403, None)
        return Authorization(
            url,
            printable(status, 20),
            printable(value, 255),
            body.get("wildcard") is True,
            tuple(challenges),
            error,
        )

    async def answer(self, challenge: Challenge) -> None:
        """Tell the upstream the challenge is ready (an empty JSON object, §7.5.1)."""
        await self._post(challenge.url, {})

    async def finalize(self, order: Order, csr_der: bytes) -> Order:
        answer = await self._post(order.finalize, {"csr": b64url_encode(csr_der)})
        return self._order(order.url, answer.json(), retry_after(answer.headers))

    async def certificate(self, url: str) -> str:
        """The PEM chain at ``url``, parsed before it is returned (leaf first)."""
        answer = await self._post(self._checked_url(url, "certificate"), None)
        try:
            chain = x509.load_pem_x509_certificates(answer.body)
        except ValueError as exc:
            raise UpstreamProtocolError("the upstream's certificate is not a PEM chain") from exc
        if not chain or len(chain) > MAX_CHAIN:
            raise UpstreamProtocolError(f"the upstream's chain has {len(chain)} certificates")
        for child, parent in itertools.pairwise(chain):
            try:
                child.verify_directly_issued_by(parent)
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise UpstreamProtocolError(
                    "the upstream's chain is not a chain (a certificate not issued by the next)"
                ) from exc
        # Rebuilt from what was parsed: nothing else the answer held is kept or served.
        return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in chain)

    async def revoke(self, certificate_der: bytes, reason: int) -> None:
        """revokeCert (§7.6) by this account; an ``alreadyRevoked`` answer is success."""
        payload = {"certificate": b64url_encode(certificate_der), "reason": reason}
        try:
            await self._post(await self._resource("revokeCert"), payload)
        except UpstreamProblem as problem:
            if problem.acme_type != "alreadyRevoked":
                raise

    # ------------------------------------------------------------------ waiting

    async def until_decided(
        self,
        fetch: Callable[[], Awaitable[Any]],
        final: set[str],
        *,
        patience: float,
        poll_interval: float,
        what: str,
    ) -> Any:
        """Fetch until its ``status`` is in ``final``, honouring Retry-After, for at most
        ``patience`` seconds; then ``UpstreamUnavailable`` (transient: it may still finish)."""
        deadline = time.monotonic() + patience
        while True:
            current = await fetch()
            if current.status in final:
                return current
            left = deadline - time.monotonic()
            if left <= 0:
                raise UpstreamUnavailable(
                    f"the upstream's {what} is still {current.status} after {patience:g} s",
                    retry_after=poll_interval,
                )
            wait = getattr(current, "retry_after", None) or poll_interval
            await asyncio.sleep(min(wait, left))

    async def satisfy_dns01(
        self,
        order: Order,
        publisher: TxtPublisher | None,
        *,
        patience: float = 120.0,
        poll_interval: float = 1.0,
    ) -> None:
        """Every authorization of ``order`` valid: those the upstream already holds are left
        alone (pre-validated domains, reuse); the others through dns-01 records written by
        ``publisher`` and withdrawn afterwards, whatever happened."""
        pending = []
        wanted = {name.lower().removeprefix("*.") for name in order.identifiers}
        for url in order.authorizations:
            authz = await self.authorization(url)
            if authz.identifier.lower() not in wanted:
                # Records are written only for names of the order, never one the upstream
                # slipped in.
                raise UpstreamProtocolError(
                    f"the upstream's authorization for {authz.identifier} is for no name of "
                    "the order"
                )
            if authz.status == "valid":
                continue
            if authz.status != "pending":
                raise UpstreamOrderFailed(
                    f"the upstream's authorization for {authz.identifier} is {authz.status}",
                    authz.error,
                )
            dns01 = next((c for c in authz.challenges if c.type == "dns-01"), None)
            if dns01 is None or dns01.token is None:
                raise UpstreamError(f"the upstream offers no dns-01 for {authz.identifier}")
            if publisher is None:
                raise UpstreamError(
                    f"the upstream needs {authz.identifier} validated and no dns-01 updates "
                    "are configured for it"
                )
            pending.append((authz, dns01))
        if not pending:
            return
        assert publisher is not None
        records = [
            (
                f"_acme-challenge.{authz.identifier.removeprefix('*.')}",
                txt_value(self.signer.key_authorization(str(challenge.token))),
            )
            for authz, challenge in pending
        ]
        published: list[tuple[str, str]] = []
        try:
            for record, value in records:
                await publisher.publish(record, value)
                published.append((record, value))
            await publisher.settled()
            for _authz, challenge in pending:
                await self.answer(challenge)
            for authz, _challenge in pending:
                done = await self.until_decided(
                    functools.partial(self.authorization, authz.url),
                    _FINAL_AUTHZ,
                    patience=patience,
                    poll_interval=poll_interval,
                    what=f"authorization for {authz.identifier}",
                )
                if done.status != "valid":
                    raise UpstreamOrderFailed(
                        f"the upstream's authorization for {authz.identifier} is {done.status}",
                        done.error,
                    )
        finally:
            for record, value in published:
                with contextlib.suppress(UpstreamError):
                    await publisher.withdraw(record, value)

    async def issue(
        self,
        names: Sequence[str],
        csr_der: bytes,
        publisher: TxtPublisher | None,
        *,
        profile: str | None = None,
        patience: float = 120.0,
        poll_interval: float = 1.0,
    ) -> tuple[Order, str]:
        """One whole issuance: order, authorizations, finalize, wait, the chain."""
        order = await self.new_order(names, profile=profile)
        if order.status == "pending":
            await self.satisfy_dns01(
                order, publisher, patience=patience, poll_interval=poll_interval
            )
            order = await self.until_decided(
                lambda: self.order(order.url),
                {"ready", "valid", "invalid"},
                patience=patience,
                poll_interval=poll_interval,
                what="order",
            )
        if order.status == "ready":
            order = await self.finalize(order, csr_der)
        order = await self.until_decided(
            lambda: self.order(order.url),
            _FINAL_ORDER,
            patience=patience,
            poll_interval=poll_interval,
            what="order",
        )
        if order.status != "valid" or order.certificate is None:
            raise UpstreamOrderFailed(f"the upstream's order ended {order.status}", order.error)
        return order, await self.certificate(order.certificate)
