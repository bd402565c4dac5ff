"""Identifiers for stored objects: random, URL-safe, unguessable."""

from __future__ import annotations

import secrets


def new_id() -> str:
    return secrets.token_urlsafe(16)
