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
  - It always runs on the controller (its action plugin does the work there, in Ansible's own
    process, without starting a module); set C(no_log=true) on the task because the result
    contains the HMAC key. Tasks may keep C(delegate_to=localhost), which changes nothing.
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

from ansible_collections.acmefleet.fleet.plugins.module_utils import eab_credential


def main() -> None:
    module = AnsibleModule(
        argument_spec=eab_credential.ARGUMENT_SPEC,
        required_one_of=eab_credential.REQUIRED_ONE_OF,
        mutually_exclusive=eab_credential.MUTUALLY_EXCLUSIVE,
        required_if=eab_credential.REQUIRED_IF,
        supports_check_mode=True,
    )
    result = eab_credential.run(module.params, module.check_mode)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
