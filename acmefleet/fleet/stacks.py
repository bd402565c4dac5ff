"""The stack registry (``meta/stacks.yml`` of the collection), as the orchestrator reads it.

The same file is read by the playbooks (``vars_files``) and the inventory plugin, so a stack
is added in one place; ``tests/unit/test_stacks.py`` checks the roles and the lab image agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from acmefleet.fleet.collection import COLLECTION_ROOT

REGISTRY = COLLECTION_ROOT / "meta" / "stacks.yml"
OS_FAMILIES = ("linux", "windows")
CHALLENGES = ("http-01", "dns-01")


@dataclass(frozen=True)
class Stack:
    name: str
    role: str
    os: str
    client: str
    web_server: str
    packages: tuple[str, ...]
    renewal_unit: str
    certificate_path: str
    account_path: str
    account_scope: str
    # How the role can prove the names (acmefleet_challenge); http-01 unless listed.
    challenges: tuple[str, ...] = ("http-01",)

    @property
    def is_windows(self) -> bool:
        return self.os == "windows"

    @property
    def role_name(self) -> str:
        """The role's directory under roles/ (the FQCN without acmefleet.fleet.)."""
        return self.role.rsplit(".", 1)[-1]


def _stack(name: str, entry: Any) -> Stack:
    if not isinstance(entry, dict):
        raise ValueError(f"{REGISTRY}: stack {name!r} must be a mapping")
    try:
        stack = Stack(
            name=name,
            role=str(entry["role"]),
            os=str(entry["os"]),
            client=str(entry["client"]),
            web_server=str(entry["web_server"]),
            packages=tuple(str(p) for p in entry.get("packages") or ()),
            renewal_unit=str(entry["renewal_unit"]),
            certificate_path=str(entry["certificate_path"]),
            account_path=str(entry["account_path"]),
            account_scope=str(entry["account_scope"]),
            challenges=tuple(str(c) for c in entry.get("challenges") or ("http-01",)),
        )
    except KeyError as exc:
        raise ValueError(f"{REGISTRY}: stack {name!r} lacks {exc.args[0]!r}") from None
    if stack.os not in OS_FAMILIES:
        raise ValueError(f"{REGISTRY}: stack {name!r}: os must be one of {OS_FAMILIES}")
    if not set(stack.challenges) <= set(CHALLENGES) or "http-01" not in stack.challenges:
        raise ValueError(
            f"{REGISTRY}: stack {name!r}: challenges must be http-01 and others of {CHALLENGES}"
        )
    return stack


@cache
def load(path: Path = REGISTRY) -> dict[str, Stack]:
    """Every stack by name, in the registry's order."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = document.get("acmefleet_stacks") if isinstance(document, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"{path}: acmefleet_stacks must be a non-empty mapping")
    return {name: _stack(name, entry) for name, entry in entries.items()}


def names() -> tuple[str, ...]:
    return tuple(load())


def get(name: str) -> Stack | None:
    return load().get(name)
