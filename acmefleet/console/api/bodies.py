"""Request bodies of the API (pydantic), strict: unknown fields are refused."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OrgCreate(Body):
    name: str = Field(min_length=1, max_length=200)


class DomainCreate(Body):
    name: str = Field(min_length=1, max_length=253, description="DNS domain or IP network (CIDR)")


class Validation(Body):
    method: Literal["manual", "http-01", "dns"] = Field(
        description=(
            "'manual': an administrator's justified validation. 'http-01': start a check of "
            "a token the domain's web server serves (validates the name only). 'dns': start "
            "a check of a Random Value in a TXT record at _acmefleet-challenge.<domain> "
            "(CA/B BR 3.2.2.4.7; validates the name, its subdomains and wildcards)."
        )
    )
    justification: str | None = Field(default=None, max_length=1000)
    days: int = Field(default=397, ge=1, le=825)
    scope: Literal["exact", "subdomains"] | None = Field(
        default=None,
        description=(
            "What the validation covers on public endpoints: 'exact' (the name only, no "
            "wildcard) or 'subdomains' (the name, its subdomains and wildcards under it). "
            "A manual validation is 'exact' unless asked; http-01 is always 'exact', dns "
            "always 'subdomains'."
        ),
    )


class DelegationCreate(Body):
    account_id: str | None = Field(default=None, max_length=64)
    eab_kid: str | None = Field(default=None, max_length=64)


class EabCreate(Body):
    org_id: int = Field(ge=1, le=2**63 - 1)
    endpoint: str = Field(min_length=1, max_length=64)
    days: float | None = Field(default=None, gt=0, le=3650)


class Revocation(Body):
    reason: int = Field(default=0, ge=0, le=10)


class RenewalPullForward(Body):
    """Which certificates (at least one criterion), why, and within how long to renew them."""

    org_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    endpoint: str | None = Field(default=None, min_length=1, max_length=64)
    issuer: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The issuing CA: a trust level ('private', 'public') or 'upstream:NAME'.",
    )
    name: str | None = Field(default=None, min_length=1, max_length=253)
    serials: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=100_000
    )
    reason: str = Field(min_length=1, max_length=500)
    within_hours: float = Field(
        default=24, ge=1 / 60, le=90 * 24, description="The window's length from now."
    )
