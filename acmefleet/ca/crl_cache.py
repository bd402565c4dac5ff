"""The CRLs a server process has built, reused while the database says nothing changed.

Each CRL is kept with the revocation mark it was built from: how many certificates of its
CA are revoked and the latest revocation time, read from the database on every fetch. A
revocation committed by any worker or replica changes the mark, so the next fetch anywhere
builds a new CRL; nothing has to tell the other processes. An unchanged CRL is reused for
``keep_for``, so a burst of fetches signs once and thisUpdate stays recent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

CRL_CACHE_FOR = timedelta(seconds=60)

# (certificates of the CA revoked, the latest revocation time): revocations only add.
RevocationMark = tuple[int, datetime | None]


@dataclass(frozen=True)
class _Built:
    der: bytes
    mark: RevocationMark
    made_at: datetime


class CrlCache:
    """DER CRLs by trust level, each good while its mark holds, for :data:`CRL_CACHE_FOR`."""

    def __init__(self, keep_for: timedelta = CRL_CACHE_FOR) -> None:
        self._keep_for = keep_for
        self._built: dict[str, _Built] = {}

    def get(self, level: str, mark: RevocationMark, now: datetime) -> bytes | None:
        """The CRL built for ``level`` from the same ``mark`` less than ``keep_for`` ago."""
        found = self._built.get(level)
        if found is None or found.mark != mark or now - found.made_at >= self._keep_for:
            return None
        return found.der

    def last_built(self, level: str, now: datetime, valid_for: timedelta) -> bytes | None:
        """The last CRL built for ``level`` while it is still within its validity, whatever
        the mark: what to serve when the database cannot tell the mark."""
        found = self._built.get(level)
        if found is None or now - found.made_at >= valid_for:
            return None
        return found.der

    def put(self, level: str, mark: RevocationMark, der: bytes, made_at: datetime) -> None:
        self._built[level] = _Built(der, mark, made_at)
