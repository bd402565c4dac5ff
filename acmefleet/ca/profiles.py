"""Leaf certificate profiles: what kind of certificate and how long it lives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

ProfileKind = Literal["public-dv", "private-server"]


@dataclass(frozen=True)
class LeafProfile:
    name: str
    description: str
    kind: ProfileKind
    validity: timedelta
    max_validity: timedelta

    def __post_init__(self) -> None:
        if not timedelta(0) < self.validity <= self.max_validity:
            raise ValueError(f"profile {self.name!r}: need 0 < validity <= max_validity")


DEFAULT_PROFILES: dict[str, LeafProfile] = {
    p.name: p
    for p in (
        LeafProfile(
            name="public-dv",
            description="Domain-validated TLS server certificate (CA/B Forum BRs)",
            kind="public-dv",
            validity=timedelta(days=90),
            max_validity=timedelta(days=199),  # BR maximum is 200 days from 2026-03-15
        ),
        LeafProfile(
            name="private-server",
            description="TLS server certificate for a private PKI",
            kind="private-server",
            validity=timedelta(days=90),
            max_validity=timedelta(days=397),
        ),
    )
}
