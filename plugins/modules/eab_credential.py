#!/usr/bin/python
# Copyright: acmefleet developers
# Apache License 2.0
"""Mint or revoke a single-use EAB credential on an acmefleet server."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: eab_credential
short_description: Mint or revoke a single-use EAB credential on an acmefleet server
description:
  - Calls the acmefleet console API to mint a fresh External Account Binding credential
    (key id and HMAC key) for one organisation and one ACME endpoint, or to revoke an unused one.
  - A minted credential can be bound by exactly one ACME account; the server erases its HMAC
    key when it is used. Mint one per host, just before the host registers.
  - Run it on the controller (C(delegate_to=localhost)) and set C(no_log=true) on the task because
    the result contains the HMAC key.
version_added: 0.1.0
author: acmefleet developers
options:
  api_url:
    description: Base URL of the acmefleet server (the console API is under C(/admin/api/v1)).
    type: str
    required: true
  token:
    description: Console API token (role C(admin)). Prefer I(token_file).
    type: str
  token_file:
    description: File holding the console API token.
    type: path
  ca_bundle:
    description: CA bundle to verify the server's certificate with.
    type: path
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  org:
    description: Organisation name or numeric id the credential belongs to.
    type: str
  endpoint:
    description: ACME endpoint the credential is valid on (for example C(private), C(public)).
    type: str
  days:
    description: Lifetime of the credential in days (server default when omitted).
    type: float
  kid:
    description: Key id of the credential to revoke (with I(state=absent)).
    type: str
  state:
    description:
      - C(present) mints a new credential (every run mints a new one).
      - C(absent) revokes the unused credential I(kid); a bound or revoked one is left as it is.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: In check mode nothing is minted or revoked; C(changed) says what would happen.
  diff_mode:
    support: none
notes:
  - The HMAC key is returned once. It is not logged by the module, but the task must use
    C(no_log=true) so Ansible does not print the result.
"""

EXAMPLES = r"""
- name: Mint an EAB credential for this host
  acmefleet.fleet.eab_credential:
    api_url: https://acme.example.net:8555
    token_file: /etc/acmefleet/console-token
    ca_bundle: /etc/acmefleet/ca-bundle.pem
    org: Example Corp
    endpoint: private
    days: 1
  delegate_to: localhost
  register: eab
  no_log: true

- name: Revoke it again (when the host failed before using it)
  acmefleet.fleet.eab_credential:
    api_url: https://acme.example.net:8555
    token_file: /etc/acmefleet/console-token
    kid: "{{ eab.kid }}"
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
kid:
  description: Key id of the credential.
  returned: when minted or revoked
  type: str
hmac_key:
  description: The HMAC key (unpadded base64url), returned only when minted.
  returned: when minted
  type: str
directory:
  description: Directory URL of the endpoint.
  returned: when minted
  type: str
expires:
  description: When the credential expires (UTC, RFC 3339).
  returned: when minted
  type: str
status:
  description: State of a revoked or inspected credential (unused, bound, expired, revoked).
  returned: with state=absent
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.acmefleet.fleet.plugins.module_utils.console_api import (
    ConsoleApi,
    ConsoleApiError,
    read_token,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "api_url": {"type": "str", "required": True},
            "token": {"type": "str", "no_log": True},
            "token_file": {"type": "path"},
            "ca_bundle": {"type": "path"},
            "validate_certs": {"type": "bool", "default": True},
            "org": {"type": "str"},
            "endpoint": {"type": "str"},
            "days": {"type": "float"},
            "kid": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        required_one_of=[("token", "token_file")],
        mutually_exclusive=[("token", "token_file")],
        required_if=[("state", "present", ("org", "endpoint")), ("state", "absent", ("kid",))],
        supports_check_mode=True,
    )
    params = module.params
    try:
        api = ConsoleApi(
            params["api_url"],
            read_token(params["token"], params["token_file"]),
            params["ca_bundle"],
            params["validate_certs"],
        )
        if params["state"] == "present":
            if module.check_mode:
                module.exit_json(changed=True, kid=None, hmac_key=None, directory=None)
            minted = api.mint_eab(params["org"], params["endpoint"], params["days"])
            module.exit_json(
                changed=True,
                kid=minted["kid"],
                hmac_key=minted["hmac_key"],
                directory=minted["directory"],
                expires=minted["expires"],
            )
        current = api.credential(params["kid"])
        if current["status"] != "unused":
            module.exit_json(changed=False, kid=params["kid"], status=current["status"])
        if module.check_mode:
            module.exit_json(changed=True, kid=params["kid"], status="revoked")
        revoked = api.revoke_eab(params["kid"])
        module.exit_json(changed=True, kid=params["kid"], status=revoked["status"])
    except ConsoleApiError as exc:
        module.fail_json(msg=str(exc), status=exc.status)


if __name__ == "__main__":
    main()
