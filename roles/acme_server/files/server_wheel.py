"""Find the acmefleet wheel the acme_server role deploys (runs on the controller).

Tried in this order; the first that applies wins:

1. ``explicit``: the wheel file given as acme_server_wheel;
2. ``checkout``: an acmefleet source tree (acme_server_project_dir holds pyproject.toml and
   the acmefleet package): its wheel is built by the role's next task, as before;
3. ``shipped``: the wheel scripts/build-collection put into this role (files/wheels/);
4. ``index``: ``pip download acmefleet==VERSION --no-deps`` through the controller's own pip
   configuration (a controller installed with pip has the same index), VERSION being
   acme_server_version or else the collection's own version.

Wheel sources are copied into CACHE/NAME-VERSION/project/ (where a checkout's build lands)
when they differ from what is there. Prints one JSON object: source, name, version,
dependencies (the wheel's runtime requirements, markers kept, extras dropped),
dependencies_hash, changed. Exits 1 with a message naming what was tried when none works.

Usage: server_wheel.py WHEEL PROJECT_DIR ROLE_DIR CACHE_DIR VERSION (empty strings: unset)
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

PACKAGE = "acmefleet"
EXTRA_MARKER = re.compile(r"""\bextra\s*==""")


def fail(message: str) -> None:
    sys.exit(f"acme_server: {message}")


def summary(source: str, name: str, version: str, deps: list[str]) -> dict[str, Any]:
    return {
        "source": source,
        "name": name,
        "version": version,
        "dependencies": deps,
        "dependencies_hash": hashlib.sha256("\n".join(deps).encode()).hexdigest()[:12],
        "changed": False,
    }


def from_checkout(project_dir: Path) -> dict[str, Any] | None:
    if not (project_dir / "pyproject.toml").is_file():
        return None
    if not (project_dir / PACKAGE / "__init__.py").is_file():
        return None
    with (project_dir / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    return summary(
        "checkout", project["name"], project["version"], list(project.get("dependencies", []))
    )


def from_wheel(source: str, wheel: Path, cache: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = email.parser.Parser().parsestr(archive.read(metadata_name).decode())
    except (OSError, zipfile.BadZipFile, StopIteration) as exc:
        fail(f"{wheel} is not a readable wheel: {exc}")
        raise  # unreachable: fail() exits
    name, version = str(metadata["Name"]), str(metadata["Version"])
    if name.lower().replace("_", "-") != PACKAGE:
        fail(f"{wheel} is a wheel of {name}, not of {PACKAGE}")
    deps = [
        str(req)
        for req in metadata.get_all("Requires-Dist") or []
        if not EXTRA_MARKER.search(str(req))
    ]
    result = summary(source, name, version, deps)
    # The project's wheel goes where the checkout build puts it; the checkout's source
    # fingerprint is dropped, so a later checkout run rebuilds instead of trusting it.
    dest = cache / f"{name}-{version}" / "project"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / wheel.name
    if not (target.is_file() and target.read_bytes() == wheel.read_bytes()):
        for old in dest.glob("*.whl"):
            old.unlink()
        (dest / ".source-sha256").unlink(missing_ok=True)
        partial = dest / ".new.whl"
        shutil.copyfile(wheel, partial)
        partial.rename(target)
        result["changed"] = True
    return result


def collection_version(collection: Path) -> str | None:
    manifest = collection / "MANIFEST.json"  # an installed collection
    if manifest.is_file():
        return str(json.loads(manifest.read_text())["collection_info"]["version"])
    galaxy = collection / "galaxy.yml"  # a checkout, or the collection inside the wheel
    if galaxy.is_file():
        found = re.search(r"^version:\s*['\"]?([^'\"\s]+)", galaxy.read_text(), re.MULTILINE)
        return found[1] if found else None
    return None


def from_index(version: str, cache: Path) -> tuple[Path | None, str]:
    downloads = cache / "index" / f"{PACKAGE}-{version}"
    known = sorted(downloads.glob(f"{PACKAGE}-{version}-*.whl"))
    if known:
        return known[0], ""
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as work:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                work,
                f"{PACKAGE}=={version}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        wheels = sorted(Path(work).glob("*.whl"))
        if run.returncode != 0 or not wheels:
            return None, (run.stderr.strip().splitlines() or ["no wheel"])[-1]
        target = downloads / wheels[0].name
        os.replace(wheels[0], target)
        return target, ""


def main(wheel: str, project_dir: str, role_dir: str, cache_dir: str, version: str) -> None:
    cache = Path(cache_dir).expanduser()
    tried: list[str] = []
    if wheel:
        path = Path(wheel).expanduser()
        if not path.is_file():
            fail(f"acme_server_wheel {path} does not exist")
        result = from_wheel("explicit", path, cache)
    else:
        result = from_checkout(Path(project_dir)) if project_dir else None
        tried.append(f"no acmefleet source tree at acme_server_project_dir ({project_dir})")
        if result is None:
            shipped = sorted((Path(role_dir) / "files" / "wheels").glob(f"{PACKAGE}-*.whl"))
            tried.append("no wheel shipped in the role (scripts/build-collection puts one there)")
            if shipped:
                result = from_wheel("shipped", shipped[-1], cache)
        if result is None:
            wanted = version or collection_version(Path(role_dir).parents[1])
            if not wanted:
                fail("; ".join([*tried, "no version to ask the index for (acme_server_version)"]))
            downloaded, why = from_index(str(wanted), cache)
            tried.append(f"pip download {PACKAGE}=={wanted} failed: {why}")
            if downloaded is None:
                fail(
                    "no acmefleet wheel to deploy: "
                    + "; ".join(tried)
                    + ". Set acme_server_wheel to an acmefleet wheel file."
                )
            result = from_wheel("index", downloaded, cache)
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
