"""Every URL the ACME front end hands out, built in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass

# What an id minted by ``store.ids.new_id`` (and matched by the routes) can look like.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True)
class EndpointUrls:
    base_url: str
    endpoint: str

    @property
    def root(self) -> str:
        return f"{self.base_url}/acme/{self.endpoint}"

    @property
    def directory(self) -> str:
        return f"{self.root}/directory"

    def resource(self, name: str) -> str:
        return f"{self.root}/{name}"

    def account(self, account_id: str) -> str:
        return f"{self.root}/acct/{account_id}"

    def account_orders(self, account_id: str) -> str:
        return f"{self.root}/acct/{account_id}/orders"

    def order(self, order_id: str) -> str:
        return f"{self.root}/order/{order_id}"

    def finalize(self, order_id: str) -> str:
        return f"{self.root}/order/{order_id}/finalize"

    def authorization(self, authz_id: str) -> str:
        return f"{self.root}/authz/{authz_id}"

    def challenge(self, challenge_id: str) -> str:
        return f"{self.root}/chall/{challenge_id}"

    def certificate(self, cert_id: str) -> str:
        return f"{self.root}/cert/{cert_id}"

    def account_id_from_kid(self, kid: str) -> str | None:
        """The account id in a ``kid`` of this endpoint; None for any other URL."""
        prefix = f"{self.root}/acct/"
        if not kid.startswith(prefix):
            return None
        account_id = kid[len(prefix) :]
        return account_id if _ID.match(account_id) else None
