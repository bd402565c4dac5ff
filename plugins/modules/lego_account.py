#!/usr/bin/python
# Copyright: acmefleet developers
# Apache License 2.0
"""Register lego's ACME account with External Account Binding, without lego."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lego_account
short_description: Register lego's ACME account (External Account Binding) without lego
description:
  - Registers an ACME account with an External Account Binding (RFC 8555 section 7.3.4) and
    writes it where lego 4.9 looks for it, so that lego then runs with C(--eab) alone and the
    EAB HMAC key is never on lego's command line.
  - "Writes lego's files under I(path): C(accounts/<host>_<port>/<email>/account.json) (lego's
    C(Account): C(email), C(registration.body) with the server's account object and
    C(registration.uri)) and the account key C(accounts/<host>_<port>/<email>/keys/<email>.key)
    (PEM C(EC PRIVATE KEY), mode 0600, written to a temporary file and renamed)."
  - Does nothing when C(account.json) exists already and its account URL lies under
    I(server)'s base (the directory URL without its last segment): lego has an account for
    I(server) and I(email); the EAB credential is then not needed and not used.
  - lego keys accounts by host:port and e-mail only, so another directory of the same server
    (an acmefleet endpoint the host used before) shares the file. Such an account is replaced:
    a new key (beside the old one until the server accepted it) and a new registration.
  - Reuses an account key lego left without an account (a failed registration) if it is an
    EC P-256 key; fails on any other key.
  - Runs on the managed host with the Python standard library and the C(openssl) binary only
    (C(openssl ecparam) makes the key, C(openssl ec) gives its public point, C(openssl dgst
    -sign) signs ES256 with the signing input on stdin). The HMAC is computed in Python; the
    key is on no command line, in no environment and in no file, and no failure message
    quotes it.
  - Agrees to the server's terms of service (C(termsOfServiceAgreed), like C(lego --accept-tos))
    and gives C(mailto:<email>) as contact.
  - If the registration fails, the files and directories this run created are removed.
version_added: 0.1.0
author: acmefleet developers
options:
  path:
    description: lego's state directory (C(lego --path)).
    type: path
    required: true
  server:
    description: ACME directory URL (C(lego --server)); https only.
    type: str
    required: true
  email:
    description: Account contact (C(lego --email)); it names lego's account directory.
    type: str
    required: true
  eab_kid:
    description: EAB key identifier.
    type: str
    required: true
  eab_hmac_key:
    description:
      - EAB HMAC key, base64url (padding tolerated). Single use on acmefleet.
      - Marked C(no_log); still, give the task C(no_log) too.
    type: str
    required: true
  ca_file:
    description:
      - PEM CA certificates to trust for I(server) (replaces the system store, like
        C(LEGO_CA_CERTIFICATES)). The system store when omitted.
    type: path
  key_type:
    description:
      - Type of the account key. Only C(ec256) (EC P-256, signing ES256) is supported. lego
        uses the key whatever C(--key-type) it is given (that option sets the certificate key).
    type: str
    choices: [ec256]
    default: ec256
  timeout:
    description: Timeout of each HTTPS request, in seconds.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    description:
      - Reports whether an account would be registered; writes nothing and sends nothing to
        the server (the credential is single use).
  diff_mode:
    support: none
requirements:
  - the openssl binary, to register (Debian's ca-certificates depends on it; lego on
    ca-certificates)
notes:
  - The account key type does not follow the certificate key type (lego 4.9 would make an
    account key of its C(--key-type)); an ec256 account key serves any certificate key type.
  - The module's arguments, the HMAC key among them, reach the host the way Ansible sends
    every module its arguments (the module payload over the connection, on stdin when
    pipelining), never on a command line.
seealso:
  - name: RFC 8555 section 7.3.4 (External Account Binding)
    link: https://www.rfc-editor.org/rfc/rfc8555#section-7.3.4
"""

EXAMPLES = r"""
- name: Register lego's account with the EAB credential (lego then runs with --eab alone)
  acmefleet.fleet.lego_account:
    path: /var/lib/lego
    server: https://acme.example.net:8555/acme/public/directory
    email: ops@example.com
    eab_kid: "{{ eab.kid }}"
    eab_hmac_key: "{{ eab.hmac_key }}"
    ca_file: /usr/local/share/ca-certificates/acmefleet.crt
  no_log: true
"""

RETURN = r"""
account_file:
  description: lego's C(account.json) for I(server) and I(email).
  type: path
  returned: always
  sample: /var/lib/lego/accounts/acme.example.net_8555/ops@example.com/account.json
key_file:
  description: lego's account key.
  type: path
  returned: always
  sample: /var/lib/lego/accounts/acme.example.net_8555/ops@example.com/keys/ops@example.com.key
account_uri:
  description: The account URL (from C(account.json) when it existed; null in check mode).
  type: str
  returned: always
  sample: https://acme.example.net:8555/acme/public/acct/hR0QWfFyz3TfQg7DIHwJVw
status:
  description: The account's status as the server answered.
  type: str
  returned: when an account was registered
  sample: valid
key_generated:
  description: Whether the account key was made by this run (false, an existing lego key).
  type: bool
  returned: when an account was registered
existing_account:
  description: The server answered 200 (it had an account for this key already), not 201.
  type: bool
  returned: when an account was registered
replaced_account_uri:
  description:
    - The URL of another directory's account that account.json held before (none if none).
  type: str
  returned: when an account was registered
problem:
  description: The server's problem document (C(type), C(detail), C(status)) on failure.
  type: dict
  returned: failure
  sample: {"type": "urn:ietf:params:acme:error:unauthorized", "detail": "...", "status": 401}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.acmefleet.fleet.plugins.module_utils.acme_register import (
    OpenSSL,
    RegistrationError,
    ensure_account,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "server": {"type": "str", "required": True},
            "email": {"type": "str", "required": True},
            "eab_kid": {"type": "str", "required": True},
            "eab_hmac_key": {"type": "str", "required": True, "no_log": True},
            "ca_file": {"type": "path"},
            "key_type": {"type": "str", "choices": ["ec256"], "default": "ec256"},
            "timeout": {"type": "float", "default": 30.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    # Only a registration needs openssl: check mode and an existing account do not.
    openssl = OpenSSL(module.get_bin_path("openssl"))
    try:
        result = ensure_account(
            path=p["path"],
            server=p["server"],
            email=p["email"],
            eab_kid=p["eab_kid"],
            eab_hmac_key=p["eab_hmac_key"],
            ca_file=p["ca_file"],
            openssl=openssl,
            check_mode=module.check_mode,
            timeout=p["timeout"],
        )
    except RegistrationError as exc:
        module.fail_json(msg=str(exc), problem=exc.problem)
    except OSError as exc:
        module.fail_json(msg=f"lego's account files: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
