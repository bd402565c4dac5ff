"""The errors used inside acmefleet; turned into problem documents only at the edge.

``AcmeError`` is a decision with its RFC 8555 type; ``StoreUnavailable`` is the database
failing for a reason that passes, which every front end answers 503 with ``Retry-After``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ProblemType(StrEnum):
    """RFC 8555 §6.7 error types (the part after ``urn:ietf:params:acme:error:``)."""

    ACCOUNT_DOES_NOT_EXIST = "accountDoesNotExist"
    # RFC 9773 §7.4: a newOrder "replaces" a certificate another finalized order replaced.
    ALREADY_REPLACED = "alreadyReplaced"
    ALREADY_REVOKED = "alreadyRevoked"
    BAD_CSR = "badCSR"
    BAD_NONCE = "badNonce"
    BAD_PUBLIC_KEY = "badPublicKey"
    BAD_REVOCATION_REASON = "badRevocationReason"
    BAD_SIGNATURE_ALGORITHM = "badSignatureAlgorithm"
    CAA = "caa"
    COMPOUND = "compound"
    CONNECTION = "connection"
    DNS = "dns"
    EXTERNAL_ACCOUNT_REQUIRED = "externalAccountRequired"
    INCORRECT_RESPONSE = "incorrectResponse"
    INVALID_CONTACT = "invalidContact"
    # draft-ietf-acme-profiles: a newOrder "profile" the server does not offer.
    INVALID_PROFILE = "invalidProfile"
    MALFORMED = "malformed"
    ORDER_NOT_READY = "orderNotReady"
    RATE_LIMITED = "rateLimited"
    REJECTED_IDENTIFIER = "rejectedIdentifier"
    SERVER_INTERNAL = "serverInternal"
    TLS = "tls"
    UNAUTHORIZED = "unauthorized"
    UNSUPPORTED_CONTACT = "unsupportedContact"
    UNSUPPORTED_IDENTIFIER = "unsupportedIdentifier"
    USER_ACTION_REQUIRED = "userActionRequired"

    @property
    def urn(self) -> str:
        return f"urn:ietf:params:acme:error:{self.value}"


_DEFAULT_STATUS: dict[ProblemType, int] = {
    ProblemType.ACCOUNT_DOES_NOT_EXIST: 400,
    ProblemType.ALREADY_REPLACED: 409,
    ProblemType.UNAUTHORIZED: 403,
    ProblemType.SERVER_INTERNAL: 500,
    ProblemType.RATE_LIMITED: 429,
    ProblemType.CONNECTION: 400,
    ProblemType.INCORRECT_RESPONSE: 403,
}


@dataclass
class AcmeError(Exception):
    """A failure with its RFC 8555 type; ``detail`` is safe to show to the client."""

    type: ProblemType
    detail: str
    status: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    subproblems: list[AcmeError] = field(default_factory=list)
    identifier: dict[str, str] | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.type.value}: {self.detail}")

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else _DEFAULT_STATUS.get(self.type, 400)

    def as_problem(self) -> dict[str, Any]:
        """The RFC 7807 problem document (RFC 8555 §6.7)."""
        doc: dict[str, Any] = {"type": self.type.urn, "detail": self.detail}
        if self.status is not None or self.type in _DEFAULT_STATUS:
            doc["status"] = self.http_status
        else:
            doc["status"] = 400
        if self.identifier is not None:
            doc["identifier"] = self.identifier
        if self.subproblems:
            doc["subproblems"] = [sub.as_problem() for sub in self.subproblems]
        doc.update(self.extra)
        return doc


class KeyInUse(AcmeError):
    """keyChange to a key another account holds (RFC 8555 §7.3.5): 409 Conflict.

    The answer must point at that account (Location), but its URL belongs to the HTTP
    front end; so policy raises this with the holder's id and the edge builds the URL.
    """

    holder_id: str

    def __init__(self, holder_id: str) -> None:
        super().__init__(
            ProblemType.MALFORMED, "the new key is already in use by an account", status=409
        )
        self.holder_id = holder_id


def malformed(detail: str, status: int = 400) -> AcmeError:
    return AcmeError(ProblemType.MALFORMED, detail, status=status)


def unauthorized(detail: str) -> AcmeError:
    return AcmeError(ProblemType.UNAUTHORIZED, detail, status=403)


def account_not_valid(status: str) -> AcmeError:
    """RFC 8555 §7.3.6: every request of a deactivated (or revoked) account is 401."""
    return AcmeError(ProblemType.UNAUTHORIZED, f"the account is {status}", status=401)


def not_found(what: str) -> AcmeError:
    return AcmeError(ProblemType.MALFORMED, f"{what} does not exist", status=404)


class StoreUnavailable(Exception):
    """The database could not answer for a reason that passes: a restart, a failover, every
    pooled connection busy, a lock held too long. The client may send the request again
    (after ``RETRY_AFTER_SECONDS``): nothing of it was committed, unless the connection was
    lost during the commit itself, where its fate is unknown (the retry then meets what
    it did: a used nonce, an order already finalized)."""

    RETRY_AFTER_SECONDS = 5

    def __init__(self, reason: str) -> None:
        super().__init__(f"the database is unavailable: {reason}")
        self.reason = reason
