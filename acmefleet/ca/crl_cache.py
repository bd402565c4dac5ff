"""The CRLs a server process has built, kept briefly so a burst of fetches signs once.

One object per process, shared by the ACME front end (which serves and fills it) and the
console (which drops a CA's entry after a revocation it made has committed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

CRL_CACHE_FOR = timedelta(seconds=60)


@dataclass(frozen=True)
class _Built:
    der: bytes
    made_at: datetime


class CrlCache:
    """DER CRLs by trust level, each fresh for :data:`CRL_CACHE_FOR`."""

    def __init__(self, keep_for: timedelta = CRL_CACHE_FOR) -> None:
        self._keep_for = keep_for
        self._built: dict[str, _Built] = {}

    def get(self, level: str, now: datetime) -> bytes | None:
        """The CRL built for ``level`` less than ``keep_for`` ago, if any."""
        found = self._built.get(level)
        if found is None or now - found.made_at >= self._keep_for:
            return None
        return found.der

    def put(self, level: str, der: bytes, made_at: datetime) -> None:
        self._built[level] = _Built(der, made_at)

    def invalidate(self, level: str) -> None:
        """A certificate of ``level`` was revoked: the next fetch builds a new CRL."""
        self._built.pop(level, None)
