#!/usr/bin/python
# Copyright: acmefleet developers
# Apache License 2.0
"""Check the certificate a host really serves over TLS."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tls_certificate
short_description: Check the certificate a TLS server really serves
description:
  - Connects to I(address):I(port) with SNI I(server_name), verifies the chain against
    I(ca_bundle) for that name, and reports the served names, issuer, serial and expiry.
  - Fails when the chain does not verify, when I(expected_names) are not exactly the served
    names, or when fewer than I(min_days) remain (unless I(fail_on_problem=false)).
  - Meant to run on the controller, like a client would see the host.
version_added: 0.1.0
author: acmefleet developers
options:
  address:
    description: Address (or name) to connect to.
    type: str
    required: true
  port:
    description: TLS port.
    type: int
    default: 443
  server_name:
    description: Name sent as SNI and verified against the certificate.
    type: str
    required: true
  ca_bundle:
    description: CA certificates to verify the chain with (system store when omitted).
    type: path
  expected_names:
    description: The exact set of names the certificate must carry.
    type: list
    elements: str
  min_days:
    description: Fewest days the certificate must still be valid.
    type: int
    default: 0
  expected_issuer:
    description: Substring the issuer's common name must contain.
    type: str
  fail_on_problem:
    description: Fail the task when a check fails (otherwise only report C(problems)).
    type: bool
    default: true
  timeout:
    description: Connection timeout in seconds.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
requirements:
  - cryptography
"""

EXAMPLES = r"""
- name: The web host serves a valid certificate for its names
  acmefleet.fleet.tls_certificate:
    address: "{{ ansible_host }}"
    server_name: "{{ acmefleet_names[0] }}"
    ca_bundle: /etc/acmefleet/ca-bundle.pem
    expected_names: "{{ acmefleet_names }}"
    min_days: 14
  delegate_to: localhost
"""

RETURN = r"""
verified:
  description: Whether the chain verified for I(server_name).
  type: bool
  returned: always
verify_error:
  description: Why verification failed.
  type: str
  returned: always
names:
  description: DNS names and IP addresses in the certificate.
  type: list
  elements: str
  returned: always
issuer:
  description: Common name of the issuer.
  type: str
  returned: always
serial:
  description: Serial number (hex).
  type: str
  returned: always
not_after:
  description: End of validity (UTC).
  type: str
  returned: always
days_left:
  description: Whole days of validity left.
  type: int
  returned: always
problems:
  description: The checks that failed.
  type: list
  elements: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.acmefleet.fleet.plugins.module_utils.tls_probe import probe


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "address": {"type": "str", "required": True},
            "port": {"type": "int", "default": 443},
            "server_name": {"type": "str", "required": True},
            "ca_bundle": {"type": "path"},
            "expected_names": {"type": "list", "elements": "str"},
            "min_days": {"type": "int", "default": 0},
            "expected_issuer": {"type": "str"},
            "fail_on_problem": {"type": "bool", "default": True},
            "timeout": {"type": "float", "default": 10.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        seen = probe(p["address"], p["port"], p["server_name"], p["ca_bundle"], p["timeout"])
    except OSError as exc:
        module.fail_json(
            msg=f"TLS connection to {p['address']}:{p['port']} failed: {exc}",
            problems=["unreachable"],
        )
    problems = []
    if not seen["verified"]:
        problems.append(f"chain does not verify for {p['server_name']}: {seen['verify_error']}")
    if p["expected_names"] is not None and sorted(set(p["expected_names"])) != sorted(
        set(seen["names"])
    ):
        problems.append(f"names {sorted(seen['names'])} != expected {sorted(p['expected_names'])}")
    if seen["days_left"] < p["min_days"]:
        problems.append(f"only {seen['days_left']} days left (< {p['min_days']})")
    if p["expected_issuer"] and p["expected_issuer"] not in seen["issuer"]:
        problems.append(f"issuer {seen['issuer']!r} lacks {p['expected_issuer']!r}")
    if problems and p["fail_on_problem"]:
        module.fail_json(msg="; ".join(problems), problems=problems, **seen)
    module.exit_json(changed=False, problems=problems, **seen)


if __name__ == "__main__":
    main()
