"""Every documented way to get the collection works: the checkout, ``pip install
acmefleet[fleet]`` and the collection tarball built by ``scripts/build-collection``.

The pip-installed controller and the installed tarball are used from a temporary directory,
with no ansible.cfg, no checkout on any path and ANSIBLE_COLLECTIONS_PATH pointing at an
empty directory (or the tarball's install target): Ansible must find acmefleet.fleet and
its dependency ansible.windows by itself. The acme_server role's wheel finder
(roles/acme_server/files/server_wheel.py) is run for each of its four sources, and the
role's config.toml task renders the server's [limits], [rate_limits] and trusted proxies
into a file the server's own parser accepts, without a secret in Ansible's output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from acmefleet.config import parse_config
from tests.support.install_paths import (
    BIN,
    ROOT,
    build_collection,
    clean_env,
    galaxy_install,
    pip_controller,
    run,
)

pytestmark = pytest.mark.integration
FINDER = ROOT / "roles" / "acme_server" / "files" / "server_wheel.py"
LINUX_FLEET = """\
all:
  children:
    acme_servers:
      hosts:
        acme1:
          ansible_host: 192.0.2.10
          acme_server_base_url: https://acme1.example.net:8555
          acme_server_pki_base_url: http://acme1.example.net:8556
    certbot_apache:
      hosts:
        web1: {ansible_host: 192.0.2.11}
    lego_nginx:
      hosts:
        web2: {ansible_host: 192.0.2.12}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, collection tarball), made by scripts/build-collection."""
    return build_collection(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def controller(built: tuple[Path, Path]) -> Path:
    return pip_controller(built[0])


def syntax_check(playbook: str, cwd: Path, env: dict[str, str]) -> str:
    inventory = cwd / "fleet.yml"
    inventory.write_text(LINUX_FLEET)
    result = run(["ansible-playbook", "--syntax-check", "-i", str(inventory), playbook], cwd, env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_built_collection_holds_the_server_wheel_and_no_development_files(
    built: tuple[Path, Path],
) -> None:
    wheel, tarball = built
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
        manifest_file = archive.extractfile("MANIFEST.json")
        assert manifest_file is not None
        manifest = json.loads(manifest_file.read())
    assert f"roles/acme_server/files/wheels/{wheel.name}" in names
    assert {
        "MANIFEST.json",
        "playbooks/enroll.yml",
        "playbooks/acme_server.yml",
        "roles/acme_server/files/server_wheel.py",
        "roles/acme_server/meta/argument_specs.yml",
        "plugins/inventory/fleet.py",
    } <= names
    dev_only = [
        n
        for n in names
        if "/molecule" in n
        or n.split("/")[0] in ("tests", "benchmarks", "scripts", "acmefleet", ".ci", ".collections")
        or n in ("pyproject.toml", "setup.py")
        or ".acmefleet" in n
        or "__pycache__" in n
    ]
    assert dev_only == []
    assert manifest["collection_info"]["dependencies"] == {"ansible.windows": ">=2.0.0"}


def test_built_collection_installs_offline_and_runs_by_fqcn(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    """ansible-galaxy honours the declared dependency ansible.windows without Galaxy:
    --offline resolves it from the collections already installed (the ansible bundle in the
    Python environment, which Ansible scans); only acmefleet.fleet is installed."""
    _, tarball = built
    target = tmp_path / "collections"
    env = clean_env(target, BIN)
    started = time.monotonic()
    installed = galaxy_install(tarball, target, BIN, tmp_path)
    assert "acmefleet.fleet:0.1.0 was installed successfully" in installed
    assert "'ansible.windows:" in installed and "is already installed" in installed
    root = target / "ansible_collections" / "acmefleet" / "fleet"
    for playbook in ("enroll", "acme_server"):
        out = syntax_check(f"acmefleet.fleet.{playbook}", tmp_path, env)
        assert f"{root}/playbooks/{playbook}.yml" in out
    print(f"galaxy install + 2 syntax checks: {time.monotonic() - started:.1f} s")


def test_pip_installed_controller_runs_the_playbooks_by_fqcn(
    controller: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "no-collections"
    empty.mkdir()
    env = clean_env(empty, controller / "bin")
    site = run(
        [
            str(controller / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        tmp_path,
        env,
    ).stdout.strip()
    root = Path(site) / "ansible_collections" / "acmefleet" / "fleet"
    for playbook in ("enroll", "acme_server"):
        out = syntax_check(f"acmefleet.fleet.{playbook}", tmp_path, env)
        assert f"{root}/playbooks/{playbook}.yml" in out
    helped = run([str(controller / "bin" / "acmefleet"), "rollout", "--help"], tmp_path, env)
    assert helped.returncode == 0 and "--inventory" in helped.stdout, helped.stderr
    # The orchestrator reads a fleet file through the installed collection's inventory plugin.
    bad = tmp_path / "bad.fleet.yml"
    bad.write_text(
        "plugin: acmefleet.fleet.fleet\nhosts:\n  - name: w1\n    stack: iis\n"
        "    names: [w1.example.com]\n"
    )
    refused = run([str(controller / "bin" / "acmefleet"), "rollout", "-i", str(bad)], tmp_path, env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "'stack' must be one of" in refused.stderr


def find_wheel(
    tmp_path: Path,
    *,
    wheel: str = "",
    project_dir: str = "",
    role_dir: Path = ROOT / "roles" / "acme_server",
    version: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return run(
        [
            sys.executable,
            str(FINDER),
            wheel,
            project_dir,
            str(role_dir),
            str(tmp_path / "cache"),
            version,
        ],
        tmp_path,
        env,
    )


def test_server_wheel_sources_in_order(built: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, tarball = built
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    explicit = find_wheel(tmp_path, wheel=str(wheel), project_dir=str(ROOT))
    assert explicit.returncode == 0, explicit.stderr
    found = json.loads(explicit.stdout)
    assert (found["source"], found["version"], found["changed"]) == ("explicit", "0.1.0", True)
    # The wheel's runtime requirements (its extras left out) are the project's dependencies.
    assert len(found["dependencies"]) == len(project["dependencies"])
    assert not any("extra" in dep for dep in found["dependencies"])
    cached = tmp_path / "cache" / "acmefleet-0.1.0" / "project" / wheel.name
    assert cached.read_bytes() == wheel.read_bytes()
    again = json.loads(find_wheel(tmp_path, wheel=str(wheel)).stdout)
    assert again["changed"] is False

    checkout = json.loads(find_wheel(tmp_path, project_dir=str(ROOT)).stdout)
    assert checkout["source"] == "checkout"
    assert checkout["dependencies"] == project["dependencies"]

    installed = tmp_path / "installed"
    with tarfile.open(tarball) as archive:
        archive.extractall(installed)  # our own tarball, just built
    shipped = find_wheel(
        tmp_path, project_dir=str(installed), role_dir=installed / "roles" / "acme_server"
    )
    assert json.loads(shipped.stdout)["source"] == "shipped", shipped.stderr

    # No wheel in the role: the controller's package index, as its pip is configured; the
    # freshly built wheel is offered through an extra find-links directory.
    bare = tmp_path / "bare"
    shutil.copytree(installed, bare)
    shutil.rmtree(bare / "roles" / "acme_server" / "files" / "wheels")
    links = tmp_path / "links"
    links.mkdir()
    shutil.copy(wheel, links)
    index_env = {
        **os.environ,
        "PIP_FIND_LINKS": f"{links} {os.environ.get('PIP_FIND_LINKS', '')}".strip(),
    }
    fetched = find_wheel(
        tmp_path, project_dir=str(bare), role_dir=bare / "roles" / "acme_server", env=index_env
    )
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["source"] == "index"
    assert (tmp_path / "cache" / "index" / "acmefleet-0.1.0" / wheel.name).exists()

    missing = find_wheel(
        tmp_path,
        project_dir=str(bare),
        role_dir=bare / "roles" / "acme_server",
        version="0.0.1.dev9",
        env=index_env,
    )
    assert missing.returncode == 1
    assert "no acmefleet wheel to deploy" in missing.stderr
    assert "acme_server_wheel" in missing.stderr and "acmefleet==0.0.1.dev9" in missing.stderr


def test_config_template_renders_limits_without_leaking_secrets(tmp_path: Path) -> None:
    """The role's own configure task, validated by the server's parser; --diff -v shows
    neither the database password nor the rendered file."""
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    # The template task validates with <venv>/bin/python: a wrapper, not a symlink (a symlink
    # outside the virtualenv would start the base interpreter, without acmefleet).
    wrapper = venv / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    data = tmp_path / "data"
    data.mkdir()
    password = "Pw-" + hashlib.sha256(os.urandom(16)).hexdigest()[:20]
    settings = {
        "acme_server_base_url": "https://acme.example.net:8555",
        "acme_server_pki_base_url": "http://acme.example.net:8556",
        "acme_server_data_dir": str(data),
        "acme_server_venv": str(venv.parent),
        "acme_server_user": "root",
        "acme_server_group": "root",
        "acme_server_database_url": f"postgresql+psycopg://acmefleet:{password}@db/acmefleet",
        "acme_server_limits": {"max_connections": 800, "body_seconds": 45},
        "acme_server_rate_limits": {
            "new_orders_per_account": "600/3h",
            "pending_authorizations_per_account": "off",
        },
        "acme_server_trusted_proxies": ["10.0.0.5", "192.0.2.0/24"],
        "acme_server_validation": {
            "max_concurrent": 4,
            "authorization_reuse_days": 90,
            "authorization_reuse_scope": "organisation",
        },
        "ansible_python_interpreter": sys.executable,
        # Skips the role's restart handler: there is no acmefleet service on this machine.
        "__acme_server_dry_run_fresh": True,
    }
    playbook = tmp_path / "configure.yml"
    playbook.write_text(
        "- name: Render config.toml\n  hosts: localhost\n  connection: local\n"
        "  gather_facts: false\n  tasks:\n    - name: The role's configure tasks\n"
        "      ansible.builtin.include_role:\n        name: acmefleet.fleet.acme_server\n"
        "        tasks_from: configure\n"
    )

    def configure(values: dict[str, object]) -> subprocess.CompletedProcess[str]:
        extra = tmp_path / "vars.json"
        extra.write_text(json.dumps(values))
        return run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                "localhost,",
                "--diff",
                "-v",
                str(playbook),
                "-e",
                f"@{extra}",
            ],
            ROOT,
            {
                **os.environ,
                "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
                "ANSIBLE_NOCOLOR": "1",
            },
        )

    done = configure(settings)
    assert done.returncode == 0, done.stdout + done.stderr
    assert password not in done.stdout + done.stderr
    assert "max_connections" not in done.stdout  # no diff of the file either
    config = parse_config(tomllib.loads((data / "config.toml").read_text()))
    assert config.limits.max_connections == 800 and config.limits.body_timeout == 45
    assert config.limits.max_headers == 100  # left out: the server's default
    assert config.rate_limits.new_orders_per_account is not None
    assert config.rate_limits.new_orders_per_account.count == 600
    assert config.rate_limits.pending_authorizations_per_account is None
    assert config.rate_limits.eab_failures_per_address is not None  # default kept
    assert config.trusted_proxies == ("10.0.0.5/32", "192.0.2.0/24")
    assert config.validation.max_concurrent == 4
    assert config.validation.authorization_reuse == timedelta(days=90)
    assert config.validation.reuse_scope == "organisation"
    assert config.validation.lease == timedelta(seconds=10)  # left out: the default
    assert (data / "config.toml").stat().st_mode & 0o777 == 0o600

    beyond = configure({**settings, "acme_server_validation": {"authorization_reuse_days": 399}})
    assert beyond.returncode != 0, "more than the BR's 398 days is refused by the server"

    refused = configure({**settings, "acme_server_limits": {"max_connection": 5}})
    assert refused.returncode != 0
    assert password not in refused.stdout + refused.stderr
    # The server's parser refused it: the file on disk is still the good one.
    kept = parse_config(tomllib.loads((data / "config.toml").read_text()))
    assert kept.limits.max_connections == 800
