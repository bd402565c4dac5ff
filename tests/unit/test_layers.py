"""The layer rules of docs/architecture.md, checked over every import in the package.

A new top-level module or package fails here until it is given a place in ``MAY_IMPORT``
(and in the document): where code goes is decided once, on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "acmefleet"

# Leaves: no acmefleet imports but each other's, as listed.
_LEAVES: dict[str, set[str]] = {
    "clock": set(),
    "baseline": set(),  # the CA/B Forum BR's dates and periods
    "config": {"baseline"},
    "errors": set(),
    "identifiers": set(),
    "tasks": set(),
    "models": {"identifiers", "baseline"},
    "jose": {"errors"},
    "ca": {"clock", "identifiers", "jose"},  # jose: base64url for RFC 9773 certIDs
    "validation": {"errors", "identifiers"},
    # The upstream CA's client: the RFC 8555 client side, dns-01 records over RFC 2136.
    "upstream": {"errors", "jose", "validation"},
    "lab": set(),
}
_DOMAIN = {
    "baseline",
    "clock",
    "config",
    "errors",
    "identifiers",
    "models",
    "jose",
    "ca",
    "validation",
    "upstream",
}

# What each part of the package may import (besides itself and ``acmefleet`` the root).
# A dotted entry allows that module alone, e.g. the fleet reaches the console only through
# its REST client.
MAY_IMPORT: dict[str, set[str]] = {
    **_LEAVES,
    "store": {"models", "identifiers", "errors", "config"},
    "policy": _DOMAIN | {"store"},
    "acme": _DOMAIN | {"policy", "store", "tasks"},
    "console": _DOMAIN | {"store"},
    "server": _DOMAIN | {"acme", "console", "store", "tasks", "policy"},
    # ca.renewal_info: the RFC 9773 certID of a served certificate (a pure module).
    "fleet": {"lab", "config", "console.client", "console.errors", "ca.renewal_info"},
    "server_demo": _DOMAIN | {"server", "console", "store"},
    # The validator agent (a remote perspective, BR 3.2.2.9) runs the validators with its
    # own [validation] settings and nothing of the server: no store, no policy, no CA.
    "agent": {"config", "errors", "identifiers", "validation"},
    "cli": _DOMAIN | {"server", "console", "store", "fleet", "lab", "server_demo", "agent"},
}

# SQL is written in store/ only: the layers above pass a Connection down and nothing more.
SQL_BUILDERS = {"select", "insert", "update", "delete", "text", "func", "and_", "or_"}
NO_SQL = ("acme", "policy", "console")


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, imported names) for each absolute import in a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def _allowed(importer: str, module: str, names: list[str]) -> bool:
    if module == "acmefleet":  # the root: __version__
        return all(n == "__version__" for n in names)
    target = module.split(".")[1]
    if target == importer:
        return True
    rules = MAY_IMPORT[importer]
    if target in rules:
        return True
    dotted = ".".join(module.split(".")[1:3])
    return dotted in rules


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_every_part_of_the_package_has_rules() -> None:
    parts = {_part(p) for p in _package_files()} - {"__init__", "__main__"}
    assert parts - MAY_IMPORT.keys() == set(), "give new parts a layer (docs/architecture.md)"


def test_imports_go_one_way_down() -> None:
    broken = []
    for path in _package_files():
        importer = _part(path)
        if importer in ("__init__", "__main__"):
            continue
        for line, module, names in _imports(path):
            if module.startswith("acmefleet") and not _allowed(importer, module, names):
                broken.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert broken == []


@pytest.mark.parametrize("part", NO_SQL)
def test_sql_is_written_in_the_store_only(part: str) -> None:
    found = []
    for path in sorted((PACKAGE / part).rglob("*.py")):
        for line, module, names in _imports(path):
            used = SQL_BUILDERS & set(names) if module.startswith("sqlalchemy") else set()
            if used or module.startswith("acmefleet.store.schema"):
                found.append(f"{path.relative_to(ROOT)}:{line} {module} {sorted(used)}")
    assert found == []


def test_collection_plugins_never_import_the_server_package() -> None:
    """Plugins run on controllers and hosts that have only Ansible, not acmefleet."""
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / "plugins").rglob("*.py"))
        for line, module, _ in _imports(path)
        if module.split(".")[0] == "acmefleet"
    ]
    assert found == []


def test_the_rules_catch_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a store module importing the front end is refused."""
    assert not _allowed("store", "acmefleet.acme.app", ["AcmeApp"])
    assert not _allowed("console", "acmefleet.server.build", ["build_context"])
    assert not _allowed("fleet", "acmefleet.console.operations", ["ConsoleOperations"])
    assert _allowed("fleet", "acmefleet.console.client", ["RemoteBackend"])
    assert not _allowed("ca", "acmefleet", ["config"])
    assert not _allowed("agent", "acmefleet.store.engine", ["Database"])
    assert not _allowed("server", "acmefleet.agent.server", ["Agent"])
