"""What every challenge validator provides."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

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
