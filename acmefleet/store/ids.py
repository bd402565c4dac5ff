"""Identifiers for stored objects: random, URL-safe, unguessable."""

from __future__ import annotations

import secrets


def new_id() -> str:
    """16 random bytes, base64url; never starting with '-' (command lines take it for a flag)."""
    while True:
        value = secrets.token_urlsafe(16)
        if not value.startswith("-"):
            return value
