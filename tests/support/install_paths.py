"""The installable forms of acmefleet, built from this checkout for the install-path tests.

``build_collection`` runs scripts/build-collection (the wheel, and the collection tarball
with that wheel in the acme_server role); ``pip_controller`` makes a virtualenv with
``<wheel>[fleet]`` from the machine's configured package index, kept per wheel hash (a clean
CI machine pays about a minute once); ``clean_env`` is an environment with no checkout on
any path: no ansible.cfg, no PYTHONPATH, only the given collections path.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VENV_CACHE = Path(
    os.environ.get("ACMEFLEET_TEST_CACHE", Path.home() / ".cache" / "acmefleet" / "tests")
)


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def build_collection(out: Path) -> tuple[Path, Path]:
    """(wheel, collection tarball) in ``out``, made by scripts/build-collection."""
    started = time.monotonic()
    result = run(
        [str(ROOT / "scripts" / "build-collection"), str(out)],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"scripts/build-collection: {time.monotonic() - started:.1f} s")
    wheel, tarball = (Path(line) for line in result.stdout.split())
    assert wheel.name.startswith("acmefleet-") and wheel.suffix == ".whl"
    return wheel, tarball


def pip_controller(wheel: Path) -> Path:
    """A virtualenv with ``<wheel>[fleet]`` installed (dependencies from the package index).

    Made under a lock: an integration and a host test may want the same one at once.
    """
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()[:16]
    venv = VENV_CACHE / f"controller-{digest}"
    VENV_CACHE.mkdir(parents=True, exist_ok=True)
    with (VENV_CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            _make_controller(wheel, venv)
        return venv


def _make_controller(wheel: Path, venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    started = time.monotonic()
    made = run([sys.executable, "-m", "venv", str(venv)], venv.parent)
    assert made.returncode == 0, made.stderr
    pip = run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[fleet]"],
        venv.parent,
        timeout=1200,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr[-3000:]
    (venv / ".complete").write_text(f"{wheel.name}\n")
    print(f"pip install acmefleet[fleet] into a new virtualenv: {time.monotonic() - started:.1f} s")
    for old in VENV_CACHE.glob("controller-*"):
        if old != venv:
            shutil.rmtree(old, ignore_errors=True)


def clean_env(collections: Path, tools: Path) -> dict[str, str]:
    """No checkout anywhere: no ansible.cfg, no PYTHONPATH, only the given collection path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ANSIBLE_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{tools}:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    return env


def galaxy_install(tarball: Path, target: Path, tools: Path, cwd: Path) -> str:
    """Install the tarball into ``target`` offline (ansible.windows resolved as installed).

    --force: a pip-installed acmefleet.fleet of the same version (in site-packages, which
    Ansible scans) would otherwise count as installed and the tarball be skipped.
    """
    installed = run(
        [
            str(tools / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--force",
            str(tarball),
            "-p",
            str(target),
        ],
        cwd,
        clean_env(target, tools),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "acmefleet.fleet:0.1.0 was installed successfully" in installed.stdout, installed.stdout
    assert (target / "ansible_collections" / "acmefleet" / "fleet" / "MANIFEST.json").is_file()
    return installed.stdout
