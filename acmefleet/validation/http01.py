"""http-01 (RFC 8555 §8.3): fetch the key authorization from the name's web server."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from acmefleet.errors import AcmeError, ProblemType
from acmefleet.identifiers import Identifier
from acmefleet.validation.addresses import IPAddress, check_reachable, resolve

MAX_REDIRECTS = 10
MAX_BODY_BYTES = 8192


class Http01Validator:
    challenge_type = "http-01"

    def __init__(
        self, *, port: int, timeout: timedelta, allow_private: bool, hosts: Mapping[str, str]
    ) -> None:
        self._port = port
        self._timeout = timeout.total_seconds()
        self._allow_private = allow_private
        self._hosts = dict(hosts)

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        url = f"http://{identifier.value}:{self._port}/.well-known/acme-challenge/{token}"
        async with httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, trust_env=False
        ) as client:
            body = await self._fetch(client, url)
        if body.strip() != key_authorization:
            raise AcmeError(
                ProblemType.INCORRECT_RESPONSE,
                f"the key authorization at {url} does not match the expected value",
                status=403,
                identifier=identifier.as_wire(),
            )

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> str:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise AcmeError(
                    ProblemType.CONNECTION, f"only http:// redirects are followed: {url}"
                )
            address = await self._address(parts.hostname)
            port = parts.port or 80
            host = f"[{address}]" if address.version == 6 else str(address)
            target = f"http://{host}:{port}{parts.path or '/'}"
            if parts.query:
                target += f"?{parts.query}"
            try:
                response = await client.get(target, headers={"Host": parts.netloc})
            except httpx.TimeoutException as exc:
                raise AcmeError(ProblemType.CONNECTION, f"timeout fetching {url}") from exc
            except httpx.HTTPError as exc:
                raise AcmeError(ProblemType.CONNECTION, f"cannot fetch {url}: {exc}") from exc
            if response.is_redirect and "location" in response.headers:
                url = str(httpx.URL(url).join(response.headers["location"]))
                continue
            if response.status_code != 200:
                raise AcmeError(
                    ProblemType.UNAUTHORIZED,
                    f"{url} answered HTTP {response.status_code}, not the key authorization",
                )
            return response.content[:MAX_BODY_BYTES].decode("utf-8", errors="replace")
        raise AcmeError(ProblemType.CONNECTION, f"more than {MAX_REDIRECTS} redirects from {url}")

    async def _address(self, name: str) -> IPAddress:
        addresses = await resolve(name, self._hosts)
        for address in addresses:
            check_reachable(address, allow_private=self._allow_private)
        return addresses[0]
