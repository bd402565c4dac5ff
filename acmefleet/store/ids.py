"""Identifiers for stored objects: random, URL-safe, unguessable."""

from __future__ import annotations

import secrets

# Row ids (organisations, domains, delegations) are positive and fit a signed 64-bit column
# (SQLite INTEGER, PostgreSQL bigint). Larger numbers overflow the database driver: every
# entry point that takes an id refuses them first.
MAX_ROW_ID = 2**63 - 1


def new_id() -> str:
    """16 random bytes, base64url; never starting with '-' (command lines take it for a flag)."""
    while True:
        value = secrets.token_urlsafe(16)
        if not value.startswith("-"):
            return value
