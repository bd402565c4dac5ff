"""Account contacts (RFC 8555 §7.3): mailto: URLs with one plain address each."""

from __future__ import annotations

import re
from typing import Any

from acmefleet.errors import AcmeError, ProblemType, malformed

# Used with fullmatch: "$" would also match before a trailing newline.
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
)
MAX_CONTACTS = 10


def check_contacts(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise malformed("'contact' must be an array of strings")
    if len(raw) > MAX_CONTACTS:
        raise AcmeError(ProblemType.INVALID_CONTACT, f"at most {MAX_CONTACTS} contacts")
    for contact in raw:
        scheme, _, address = contact.partition(":")
        if scheme.lower() != "mailto":
            raise AcmeError(
                ProblemType.UNSUPPORTED_CONTACT, f"only mailto: contacts are supported: {contact!r}"
            )
        if not _ADDRESS.fullmatch(address) or "." not in address.rsplit("@", 1)[-1]:
            raise AcmeError(ProblemType.INVALID_CONTACT, f"{contact!r} is not one plain address")
    return list(raw)
