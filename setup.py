"""Packages of the acmefleet distribution (the metadata is in pyproject.toml).

Besides the Python package, the wheel carries the Ansible collection acmefleet.fleet, whose
root is this repository's root, as ``ansible_collections/acmefleet/fleet`` in site-packages:
Ansible finds collections there by itself (``collections_scan_sys_path``), so
``pip install acmefleet[fleet]`` gives a controller that runs ``acmefleet.fleet.enroll`` by
FQCN without a checkout. This needs a package directory mapping, which pyproject.toml's
static configuration cannot combine with package discovery, hence this file.
"""

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

COLLECTION = "ansible_collections.acmefleet.fleet"

# What an installed collection holds; the same as `ansible-galaxy collection build` keeps
# (galaxy.yml build_ignore): no Molecule scenarios, tests or development files.
COLLECTION_FILES = [
    "galaxy.yml",
    "README.md",
    "CHANGELOG.md",
    "ansible.cfg",
    "meta/*.yml",
    "playbooks/*.yml",
    "playbooks/tasks/*.yml",
    "plugins/README.md",
    "plugins/*/*.py",
    "plugins/*/*.yml",
    "inventory/README.md",
    "inventory/*.yml",
    "inventory/group_vars/*.yml",
    "roles/README.md",
    "roles/*/README.md",
    *(
        f"roles/*/{part}/**/*"
        for part in ("defaults", "files", "handlers", "meta", "tasks", "templates", "vars")
    ),
]


class BuildPy(build_py):
    """The collection is data: not this script, a module in the collection's root."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        found: list[tuple[str, str, str]] = super().find_package_modules(package, package_dir)
        return [m for m in found if not (package == COLLECTION and m[1] == "setup")]


setup(
    cmdclass={"build_py": BuildPy},
    packages=[*find_packages(include=["acmefleet", "acmefleet.*"]), COLLECTION],
    package_dir={COLLECTION: "."},
    package_data={
        "acmefleet": [
            "py.typed",
            "store/migrations/*.mako",
            "store/migrations/env.py",
            "store/migrations/versions/*.py",
            "console/web/templates/*.html",
            "console/web/static/*.css",
        ],
        COLLECTION: COLLECTION_FILES,
    },
    # Only the files listed above (not what the source distribution's file list adds).
    include_package_data=False,
    # Nor a wheel scripts/build-collection put into the role: a pip-installed controller's
    # role fetches the server's wheel from the controller's package index instead.
    exclude_package_data={COLLECTION: ["roles/*/files/wheels/*"]},
)
