"""What every challenge validator provides."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, runtime_checkable

from acmefleet.identifiers import Identifier


class ChallengeValidator(Protocol):
    challenge_type: str
    # The longest one validation may take, start to finish (DNS, connections, redirects...).
    # Policy also holds a challenge to it across restarts: a challenge left ``processing``
    # longer than this since it was started is not validated again but made invalid.
    deadline: timedelta

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        """Return if control is proven; raise ``AcmeError`` with the problem otherwise.

        Must return or raise within ``deadline``."""
        ...


@runtime_checkable
class TxtRecordChecker(Protocol):
    """What looks a TXT record up for a validation (the dns-01 validator does): the console's
    DNS check (BR 3.2.2.4.7) uses the server's own, so ACME and the console ask the same
    resolvers with the same deadline, CNAME following, size limits and errors."""

    deadline: timedelta

    async def expect_txt(self, name: str, value: str) -> None:
        """Return if a TXT record at ``name`` is ``value``; raise ``AcmeError`` otherwise."""
        ...
