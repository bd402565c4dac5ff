"""Where the collection acmefleet.fleet is, for a checkout and for an installed wheel."""

from __future__ import annotations

from pathlib import Path


def _collection_location() -> tuple[Path, Path]:
    """(collection root, the directory holding its ansible_collections/ tree).

    In a checkout the repository root is the collection (made importable by FQCN through
    .collections/); in an installed wheel the collection sits beside this package, as
    site-packages/ansible_collections/acmefleet/fleet (see setup.py).
    """
    top = Path(__file__).resolve().parents[2]
    if (top / "galaxy.yml").is_file():
        return top, top / ".collections"
    return top / "ansible_collections" / "acmefleet" / "fleet", top


COLLECTION_ROOT, COLLECTIONS_PATH = _collection_location()
