"""A signed ACME request after its checks: who signed it, with which key, for what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acmefleet.acme.http import Request
from acmefleet.acme.urls import EndpointUrls
from acmefleet.config import EndpointConfig
from acmefleet.errors import malformed
from acmefleet.jose.jws import RequestJws
from acmefleet.jose.keys import AccountKey
from acmefleet.models import Account


@dataclass
class Signed:
    request: Request
    endpoint: EndpointConfig
    urls: EndpointUrls
    jws: RequestJws
    key: AccountKey
    account: Account | None  # None when signed with "jwk" (newAccount, revokeCert)
    params: dict[str, str]
    # What the route's ``prepare`` step found before the write transaction (None: nothing).
    prepared: object = None

    @property
    def signer(self) -> Account:
        assert self.account is not None, "route requires kid"
        return self.account

    def payload(self) -> dict[str, Any]:
        if self.jws.is_post_as_get:
            raise malformed("this request needs a JSON payload, not POST-as-GET")
        return self.jws.payload_json()

    def require_post_as_get(self) -> None:
        if not self.jws.is_post_as_get:
            raise malformed("this resource is read with POST-as-GET (an empty payload)")
