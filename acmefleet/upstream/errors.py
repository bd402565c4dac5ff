"""What can go wrong with an upstream CA, in the terms a caller decides on.

Every error says whether trying again later can help (``transient``) and, where the upstream
said so, when (``retry_after``, seconds). Texts from the upstream are printable, bounded and
never hold anything this side sent (no key, no HMAC): they may be logged and shown as a
subproblem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

ACME_ERROR = "urn:ietf:params:acme:error:"
MAX_TEXT = 300

# Problems a later attempt can cure (RFC 8555 §6.7): the upstream's own trouble, limits, a
# nonce, or a DNS lookup that may see the record next time.
_TRANSIENT = {"rateLimited", "badNonce", "serverInternal", "connection", "dns"}


def printable(text: object, limit: int = MAX_TEXT) -> str:
    """``text`` with control characters replaced and cut to ``limit`` (a log line stays one)."""
    cleaned = "".join(c if c.isprintable() else "?" for c in str(text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


class UpstreamError(Exception):
    """The upstream CA could not do what was asked."""

    _transient: ClassVar[bool] = False

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(printable(detail))
        self.detail = printable(detail)
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Whether the same request may succeed later."""
        return self._transient


class UpstreamUnavailable(UpstreamError):
    """No answer, a timeout, or a 5xx without a problem document: try again later."""

    _transient = True


class UpstreamProtocolError(UpstreamError):
    """The upstream answered something RFC 8555 does not allow (bad JSON, another origin)."""


@dataclass(frozen=True)
class Subproblem:
    type: str
    detail: str
    identifier: str | None


class UpstreamProblem(UpstreamError):
    """An RFC 7807 problem document from the upstream, its texts sanitised."""

    def __init__(
        self,
        type_: str,
        detail: str,
        *,
        status: int,
        subproblems: tuple[Subproblem, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{type_}: {detail}", retry_after=retry_after)
        self.type = printable(type_, 120)
        self.status = status
        self.subproblems = subproblems
        self.detail = printable(detail)

    @property
    def acme_type(self) -> str | None:
        """The short name (``rateLimited``) of an ACME error type, else None."""
        return self.type.removeprefix(ACME_ERROR) if self.type.startswith(ACME_ERROR) else None

    @property
    def transient(self) -> bool:
        return self.acme_type in _TRANSIENT or self.status >= 500


class UpstreamOrderFailed(UpstreamError):
    """The upstream's order (or one of its authorizations) ended invalid: final, whatever
    the problem's type, as that order cannot be finished and another is not placed."""

    def __init__(self, detail: str, problem: UpstreamProblem | None = None) -> None:
        super().__init__(problem.detail if problem is not None else detail)
        self.problem = problem


class DnsUpdateError(UpstreamError):
    """The organisation's DNS server refused or did not answer an RFC 2136 update."""

    _transient = True


class AccountKeyError(UpstreamError):
    """The upstream account's key file is unusable (mode, owner, format)."""
