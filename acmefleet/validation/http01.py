"""http-01 (RFC 8555 §8.3): fetch the key authorization from the name's web server.

The web server belongs to the applicant, so everything it controls is bounded:

* **time**: one deadline (``validation.timeout_seconds``) for the whole validation: name
  resolution, every connection, every redirect and the response. Not per read: a server that
  drips one byte every second would otherwise keep a challenge ``processing`` for ever.
* **size**: the body is streamed, never buffered whole. At most ``MAX_BODY_BYTES`` (and one
  byte more, to notice a longer body) are read; a longer body is refused, never truncated
  (truncating could make a padded body match).
* **redirects**: at most ``MAX_REDIRECTS``, only 301, 302, 307 and 308, only to ``http`` on
  port 80 (or the configured http-01 port, for closed networks and tests) and ``https`` on port
  443: the BR's Authorized Ports (CA/B BR 3.2.2.4.19). An https certificate is not checked, as
  Boulder does: the key authorization proves control, the certificate proves nothing here.
* **errors**: RFC 8555 problems (``dns``, ``connection``, ``unauthorized``,
  ``incorrectResponse``) whose detail names the URL and nothing learnt from the network: no
  exception text, no resolved address, and one phrase for every way a connection can fail
  (refused, reset, timed out, not HTTP, a refused address), so validation is no port scanner.
  What happened exactly is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.validation.addresses import IPAddress, check_reachable, resolve

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10
# A key authorization is 87 bytes (a 43-character token, ".", a 43-character thumbprint); the
# console's own check content is 60. RFC 8555 §8.3 lets the server ignore whitespace at the
# end of the body, and servers add a newline or two. 128 bytes (Boulder's limit) leaves 41 for
# it; anything longer is not a key authorization and is refused unread.
MAX_BODY_BYTES = 128
TRAILING_WHITESPACE = b" \t\r\n"
REDIRECTS = frozenset({301, 302, 307, 308})  # BR 3.2.2.4.19: these, and only these
HTTP_PORT = 80
HTTPS_PORT = 443
MAX_SHOWN_URL = 200


@dataclass(frozen=True)
class _Target:
    """One URL to fetch, checked: scheme, host name, port, and path with query."""

    url: str
    scheme: str
    hostname: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        default = HTTP_PORT if self.scheme == "http" else HTTPS_PORT
        return host if self.port == default else f"{host}:{self.port}"


def _shown(url: str) -> str:
    """A URL for a problem detail (a redirect target is the applicant's text: kept short)."""
    return url if len(url) <= MAX_SHOWN_URL else url[:MAX_SHOWN_URL] + "…"


class Http01Validator:
    challenge_type = "http-01"

    def __init__(
        self,
        *,
        port: int,
        timeout: timedelta,
        allow_private: bool,
        hosts: Mapping[str, str],
        https_port: int = HTTPS_PORT,
    ) -> None:
        if timeout <= timedelta(0):
            raise ValueError("the validation timeout must be positive")
        self._port = port
        self._https_port = https_port  # 443; tests move it, as http01_port moves port 80
        self._allow_private = allow_private
        self._hosts = dict(hosts)
        self.deadline = timeout

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        suffix = "" if self._port == HTTP_PORT else f":{self._port}"
        url = f"http://{identifier.value}{suffix}/.well-known/acme-challenge/{token}"
        seconds = self.deadline.total_seconds()
        try:
            async with asyncio.timeout(seconds):
                body = await self._fetch(url)
        except TimeoutError:
            log.info("http-01 %s: no answer within %g s", url, seconds)
            raise AcmeError(
                ProblemType.CONNECTION,
                f"fetching {url} did not finish within {seconds:g} s (name resolution, "
                "connections, redirects and the response together)",
            ) from None
        if body.rstrip(TRAILING_WHITESPACE) != key_authorization.encode("ascii"):
            raise AcmeError(
                ProblemType.INCORRECT_RESPONSE,
                f"the key authorization at {url} does not match the expected value",
                status=403,
            )

    async def _fetch(self, url: str) -> bytes:
        """The body of the 200 answer at the end of at most MAX_REDIRECTS redirects."""
        async with httpx.AsyncClient(
            timeout=self.deadline.total_seconds(),
            follow_redirects=False,
            trust_env=False,
            verify=False,  # noqa: S501 (https redirect targets: the certificate proves nothing)
        ) as client:
            for _hop in range(MAX_REDIRECTS + 1):
                target = self._target(url)
                address = await self._address(target)
                status, location, body = await self._get(client, target, address)
                if location is None:
                    if status != 200:
                        raise AcmeError(
                            ProblemType.UNAUTHORIZED,
                            f"{_shown(url)} answered HTTP {status}, not 200 with the key "
                            "authorization",
                        )
                    return body
                try:
                    url = str(httpx.URL(url).join(location))
                except httpx.InvalidURL:
                    raise AcmeError(
                        ProblemType.CONNECTION, f"{_shown(url)} redirected to an invalid URL"
                    ) from None
        raise AcmeError(ProblemType.CONNECTION, f"more than {MAX_REDIRECTS} redirects")

    def _target(self, url: str) -> _Target:
        """The URL if validation may fetch it: http on 80 (or the http-01 port), https on 443."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise AcmeError(
                ProblemType.CONNECTION, f"a redirect to an invalid URL: {_shown(url)}"
            ) from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise AcmeError(
                ProblemType.CONNECTION,
                f"a redirect to {_shown(url)}: only http and https URLs are followed",
            )
        if port is None:
            port = HTTP_PORT if scheme == "http" else HTTPS_PORT
        allowed = (HTTP_PORT, self._port) if scheme == "http" else (self._https_port,)
        if port not in allowed:
            raise AcmeError(
                ProblemType.CONNECTION,
                f"a redirect to {_shown(url)}: only http on port {HTTP_PORT} and https on "
                f"port {HTTPS_PORT} are followed",
            )
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        return _Target(url, scheme, parts.hostname, port, path)

    async def _address(self, target: _Target) -> IPAddress:
        addresses = await resolve(target.hostname, self._hosts)
        for address in addresses:
            try:
                check_reachable(address, allow_private=self._allow_private)
            except AcmeError:
                log.info("http-01 %s: %s is not an address to validate at", target.url, address)
                raise self._unreachable(target) from None
        return addresses[0]

    def _unreachable(self, target: _Target) -> AcmeError:
        """The one problem for every way of not getting an HTTP answer."""
        return AcmeError(
            ProblemType.CONNECTION,
            f"could not connect to {_shown(target.url)} or get an HTTP answer from it",
        )

    async def _get(
        self, client: httpx.AsyncClient, target: _Target, address: IPAddress
    ) -> tuple[int, str | None, bytes]:
        """(status, redirect location or None, body of a 200) from the pinned address."""
        host = f"[{address}]" if address.version == 6 else str(address)
        request_url = f"{target.scheme}://{host}:{target.port}{target.path}"
        headers = {"Host": target.host_header, "Accept-Encoding": "identity"}
        extensions = {"sni_hostname": target.hostname} if target.scheme == "https" else {}
        try:
            async with client.stream(
                "GET", request_url, headers=headers, extensions=extensions
            ) as response:
                location = response.headers.get("location")
                if response.status_code in REDIRECTS and location:
                    return response.status_code, location, b""
                if response.status_code != 200:
                    return response.status_code, None, b""
                return 200, None, await self._body(response, target)
        except httpx.HTTPError as exc:
            log.info("http-01 %s via %s: %s: %s", target.url, address, type(exc).__name__, exc)
            raise self._unreachable(target) from None

    async def _body(self, response: httpx.Response, target: _Target) -> bytes:
        """At most MAX_BODY_BYTES, as sent (no content decoding): more is refused unread."""
        too_large = AcmeError(
            ProblemType.INCORRECT_RESPONSE,
            f"the response at {_shown(target.url)} is larger than {MAX_BODY_BYTES} bytes: "
            "it is not a key authorization",
            status=403,
        )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise too_large
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise too_large
        return bytes(body)
