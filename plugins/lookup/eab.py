# Copyright: acmefleet developers
# Apache License 2.0
"""Lookup plugin: mint a fresh single-use EAB credential on an acmefleet server."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: eab
short_description: Mint a fresh single-use EAB credential on an acmefleet server
description:
  - Returns a dictionary with C(kid), C(hmac_key), C(directory) and C(expires), minted through
    the acmefleet console API. Every evaluation mints a new credential, so assign the result to
    a fact once (C(set_fact) with C(no_log=true)) rather than re-evaluating a variable.
version_added: 0.1.0
author: acmefleet developers
options:
  api_url:
    description: Base URL of the acmefleet server.
    type: str
    required: true
  token_file:
    description: File holding the console API token (role admin).
    type: path
    required: true
  ca_bundle:
    description: CA bundle to verify the server's certificate with.
    type: path
  org:
    description: Organisation name or id.
    type: str
    required: true
  endpoint:
    description: ACME endpoint name.
    type: str
    required: true
  days:
    description: Lifetime in days (server default when omitted).
    type: float
"""

EXAMPLES = r"""
- name: Mint a credential for this host
  ansible.builtin.set_fact:
    host_eab: "{{ lookup('acmefleet.fleet.eab', api_url=url, token_file=tok, org='Example Corp',
                  endpoint='private', ca_bundle=bundle) }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description: One dictionary with kid, hmac_key, directory and expires.
  type: list
  elements: dict
"""

from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.acmefleet.fleet.plugins.module_utils.console_api import (
    ConsoleApi,
    ConsoleApiError,
    read_token,
)


class LookupModule(LookupBase):
    def run(
        self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        self.set_options(var_options=variables, direct=kwargs)
        try:
            api = ConsoleApi(
                self.get_option("api_url"),
                read_token(None, self.get_option("token_file")),
                self.get_option("ca_bundle"),
            )
            minted = api.mint_eab(
                self.get_option("org"), self.get_option("endpoint"), self.get_option("days")
            )
        except ConsoleApiError as exc:
            raise AnsibleLookupError(f"acmefleet.fleet.eab: {exc}") from None
        return [minted]
