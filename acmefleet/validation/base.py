"""What every challenge validator provides."""

from __future__ import annotations

from typing import Protocol

from acmefleet.identifiers import Identifier


class ChallengeValidator(Protocol):
    challenge_type: str

    async def validate(self, identifier: Identifier, token: str, key_authorization: str) -> None:
        """Return if control is proven; raise ``AcmeError`` with the problem otherwise."""
        ...
