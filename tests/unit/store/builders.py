"""Models with a distinct value in every field, and checks that each field reads back.

Values of one type differ from each other, so that two fields swapped anywhere between a
model, the columns and back cannot go unnoticed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from acmefleet.identifiers import Identifier
from acmefleet.models import Account, Authorization, Certificate, Challenge, Order

T0 = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


def at(minutes: int) -> datetime:
    """A distinct, whole-second instant ``minutes`` after T0."""
    return T0 + timedelta(minutes=minutes)


def account_model(org_id: int, number: int = 1, **changes: Any) -> Account:
    account = Account(
        id=f"acct-{number}",
        endpoint="private",
        org_id=org_id,
        jwk={"kty": "EC", "crv": "P-256", "x": f"x{number}", "y": f"y{number}"},
        thumbprint=f"thumb-{number}",
        status="valid",
        contact=[f"mailto:ops{number}@example.com"],
        eab_kid=f"kid-of-acct-{number}",
        created_at=at(10 + number),
    )
    return dataclasses.replace(account, **changes)


def authorization_model(
    authz_id: str, account_id: str, name: str = "www.example.com", **changes: Any
) -> Authorization:
    challenge = Challenge(
        id=f"{authz_id}-http",
        authz_id=authz_id,
        type="http-01",
        token=f"token-{authz_id}",
        status="pending",
        validated_at=None,
        error=None,
    )
    authz = Authorization(
        id=authz_id,
        account_id=account_id,
        identifier=Identifier(type="dns", value=name),
        wildcard=False,
        stored_status="pending",
        expires_at=at(500),
        challenges=(challenge,),
    )
    return dataclasses.replace(authz, **changes)


def order_model(
    order_id: str, account_id: str, authzs: tuple[Authorization, ...], **changes: Any
) -> Order:
    order = Order(
        id=order_id,
        account_id=account_id,
        profile="private-server",
        identifiers=tuple(a.identifier for a in authzs),
        expires_at=at(600),
        not_before=None,
        not_after=None,
        finalization="none",
        error=None,
        certificate_id=None,
        authorizations=authzs,
    )
    return dataclasses.replace(order, **changes)


def certificate_model(
    cert_id: str, account_id: str, org_id: int, serial: str, **changes: Any
) -> Certificate:
    certificate = Certificate(
        id=cert_id,
        serial_hex=serial,
        account_id=account_id,
        order_id=f"order-of-{cert_id}",
        org_id=org_id,
        endpoint="internal",
        ca_level="private",
        profile="private-server",
        names=["www.example.com", "example.com"],
        not_before=at(20),
        not_after=at(9000),
        chain_pem=f"-----BEGIN CERTIFICATE-----\n{cert_id}\n-----END CERTIFICATE-----\n",
        spki_sha256=f"spki-{cert_id}",
        revoked_at=None,
        revocation_reason=None,
    )
    return dataclasses.replace(certificate, **changes)


def assert_fields(model: object, expected: Mapping[str, object]) -> None:
    """``model`` holds exactly ``expected``, field by field; ``expected`` names every field.

    Values of one type must differ from each other (None aside), so that two fields
    swapped anywhere between the model, the columns and back cannot go unnoticed.
    """
    assert dataclasses.is_dataclass(model)
    names = [f.name for f in dataclasses.fields(model)]
    assert sorted(expected) == sorted(names), "the test must name every field of the model"
    seen: dict[tuple[type, str], str] = {}
    for name, value in expected.items():
        if value is None or isinstance(value, bool):
            continue
        key = (type(value), repr(value))
        assert key not in seen, f"{name} and {seen[key]} expect the same value {value!r}"
        seen[key] = name
    assert {n: getattr(model, n) for n in names} == dict(expected)


def assert_columns(
    model: object,
    row: Mapping[str, object],
    *,
    renamed: Mapping[str, str] | None = None,
    not_columns: tuple[str, ...] = (),
) -> None:
    """Each field of ``model`` equals the column of the raw ``row`` it is read from.

    A field reads its column of the same name unless ``renamed`` names another; fields in
    ``not_columns`` are built from several columns or rows and are checked by the caller.
    """
    assert dataclasses.is_dataclass(model)
    renamed = renamed or {}
    for field in dataclasses.fields(model):
        if field.name in not_columns:
            continue
        column = renamed.get(field.name, field.name)
        assert column in row, f"{type(model).__name__}.{field.name}: no column {column}"
        assert getattr(model, field.name) == row[column], f"{field.name} != column {column}"
