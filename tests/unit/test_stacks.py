"""The stack registry (meta/stacks.yml) and everything that must agree with it.

Adding a stack means a registry entry plus what these tests ask for: the role with the uniform
interface (entry points main and account, the acmefleet_* inputs), its packages in the lab
image, a Molecule scenario, a host test, its tags documented; the playbooks, the inventory
plugin and the orchestrator read the registry and must name no stack themselves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from acmefleet.fleet import inventory, stacks, status
from acmefleet.lab import rootfs

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = stacks.load()
LINUX = [s for s in REGISTRY.values() if not s.is_windows]
WINDOWS = [s for s in REGISTRY.values() if s.is_windows]
# The stack interface: every Linux stack role takes these (roles/README.md).
UNIFORM_INPUTS = {
    "acmefleet_directory_url": True,  # name: required
    "acmefleet_ca_bundle": True,
    "acmefleet_names": True,
    "acmefleet_email": True,
    "acmefleet_eab_kid": False,
    "acmefleet_eab_hmac_key": False,
    "acmefleet_install_packages": False,
}
UNIFORM_OUTPUTS = (
    "acmefleet_account_exists",
    "acmefleet_certificate_path",
    "acmefleet_renewal_unit",
)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _role_dir(stack: stacks.Stack) -> Path:
    return ROOT / "roles" / stack.role_name


def _role_text(stack: stacks.Stack) -> str:
    return "\n".join(p.read_text() for p in sorted((_role_dir(stack) / "tasks").glob("*.yml")))


def test_registry_entries_are_complete() -> None:
    assert {"certbot_apache", "lego_nginx", "win_acme_iis", "win_acme_apache"} <= set(REGISTRY)
    for stack in REGISTRY.values():
        assert stack.role == f"acmefleet.fleet.{stack.name}", stack.name
        assert stack.renewal_unit and stack.certificate_path and stack.account_path
        assert stack.account_scope in ("directory", "server+email"), stack.name
        assert bool(stack.packages) == (not stack.is_windows), stack.name


@pytest.mark.parametrize("stack", REGISTRY.values(), ids=lambda s: s.name)
def test_every_stack_has_a_role_with_an_account_entry_point(stack: stacks.Stack) -> None:
    role = _role_dir(stack)
    assert (role / "tasks" / "main.yml").is_file()
    assert (role / "tasks" / "account.yml").is_file(), "entry point account.yml (mint decision)"
    assert (role / "README.md").is_file()
    specs = _yaml(role / "meta" / "argument_specs.yml")["argument_specs"]
    assert "main" in specs


@pytest.mark.parametrize("stack", LINUX, ids=lambda s: s.name)
def test_linux_stack_roles_have_the_uniform_interface(stack: stacks.Stack) -> None:
    role = _role_dir(stack)
    specs = _yaml(role / "meta" / "argument_specs.yml")["argument_specs"]
    options = specs["main"]["options"]
    for name, required in UNIFORM_INPUTS.items():
        assert name in options, f"{stack.name}: input {name} missing from argument_specs"
        assert bool(options[name].get("required", False)) == required, f"{stack.name}: {name}"
    assert options["acmefleet_eab_hmac_key"].get("no_log") is True
    account = specs["account"]["options"]
    assert account["acmefleet_directory_url"]["required"] is True
    text = _role_text(stack)
    for output in UNIFORM_OUTPUTS:
        assert re.search(rf"^\s+{output}:", text, re.M), f"{stack.name} never sets {output}"
    account_tasks = (role / "tasks" / "account.yml").read_text()
    assert "acmefleet_account_exists:" in account_tasks
    assert (role / "tasks" / "packages.yml").is_file(), "entry point of playbooks/prepare.yml"
    # What the role installs and renews with is what the registry says.
    variables = _yaml(role / "vars" / "main.yml")
    assert tuple(variables[f"{stack.name}__packages"]) == stack.packages
    assert variables[f"{stack.name}__renewal_unit"] == stack.renewal_unit
    # No role-prefixed copies of the uniform inputs are left behind.
    leftovers = re.findall(
        rf"\b{stack.name}_(server|ca_bundle|names|email|eab_kid|eab_hmac_key|install_packages)\b",
        text,
    )
    assert not leftovers, f"{stack.name}: role-prefixed inputs {sorted(set(leftovers))}"


@pytest.mark.parametrize("stack", LINUX, ids=lambda s: s.name)
def test_linux_stacks_are_tested_and_prefetched(stack: stacks.Stack) -> None:
    scenario = _role_dir(stack) / "molecule" / "default"
    for playbook in ("molecule.yml", "create.yml", "prepare.yml", "converge.yml", "verify.yml"):
        assert (scenario / playbook).is_file(), f"{stack.name}: molecule/default/{playbook}"
    assert (ROOT / "tests" / "hosts" / f"test_role_{stack.name}.py").is_file()
    missing = set(stack.packages) - set(rootfs.PREFETCHED)
    assert not missing, f"acmefleet/lab/rootfs.py PREFETCHED lacks {sorted(missing)}"


@pytest.mark.parametrize("stack", LINUX, ids=lambda s: s.name)
def test_role_readme_documents_exactly_the_step_tags(stack: stacks.Stack) -> None:
    main = (_role_dir(stack) / "tasks" / "main.yml").read_text()
    tags = set(re.findall(rf"\b({stack.name}_[a-z]+)\b", main))
    readme = (_role_dir(stack) / "README.md").read_text()
    steps = readme.split("## What it does", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(rf"`({stack.name}_[a-z]+)`", steps))
    assert tags == documented


def test_handler_names_are_unique_across_stack_roles() -> None:
    """One play includes every Linux stack role: a notified name must reach its own role's handler.

    (A certbot_nginx host once ran lego_nginx's "Reload nginx", whose condition reads a fact
    only lego_nginx sets.)
    """
    seen: dict[str, str] = {}
    for stack in LINUX:
        handlers = _yaml(_role_dir(stack) / "handlers" / "main.yml") or []
        for handler in handlers:
            for name in [handler["name"], *([handler["listen"]] if "listen" in handler else [])]:
                assert name not in seen, f"handler {name!r} in {stack.name} and {seen[name]}"
                seen[name] = stack.name


@pytest.mark.parametrize("stack", WINDOWS, ids=lambda s: s.name)
def test_windows_account_check_is_shared(stack: stacks.Stack) -> None:
    text = (_role_dir(stack) / "tasks" / "account.yml").read_text()
    assert "acmefleet.fleet.win_acme" in text
    shared = (ROOT / "roles" / "win_acme" / "tasks" / "account.yml").read_text()
    assert "acmefleet_account_exists:" in shared


def test_consumers_read_the_registry() -> None:
    assert tuple(REGISTRY) == inventory.STACKS
    assert set(status.RENEWAL_TIMERS) == {s.name for s in LINUX}
    for stack in LINUX:
        assert status.RENEWAL_TIMERS[stack.name] == stack.renewal_unit
    # The playbooks pick hosts and roles from the registry, never by a stack's name.
    for playbook in ("enroll.yml", "prepare.yml", "rollout_start.yml"):
        text = (ROOT / "playbooks" / playbook).read_text()
        assert "../meta/stacks.yml" in text
        named = [s.name for s in REGISTRY.values() if s.name in text]
        assert not named, f"playbooks/{playbook} names stacks {named}"
    # One include_role applying the stack per play (enroll.yml: and one asking for the account).
    # (rollout_start.yml: and the server's role)
    expected = {"enroll.yml": 4, "prepare.yml": 1, "rollout_start.yml": 2}
    for playbook, count in expected.items():
        text = (ROOT / "playbooks" / playbook).read_text()
        assert len(re.findall(r"include_role:", text)) == count, playbook


def test_inventory_plugin_reads_the_same_registry() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "fleet_inventory_plugin", ROOT / "plugins" / "inventory" / "fleet.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.read_stacks() == {s.name: s.os for s in REGISTRY.values()}
    assert tuple(module.STACKS) == tuple(REGISTRY)


def test_is_windows_follows_the_registry() -> None:
    for stack in REGISTRY.values():
        host = inventory.FleetHost("h", "10.0.0.1", stack.name, ("h.example",), "private", "o")
        assert host.is_windows == stack.is_windows


def test_demo_can_enrol_every_linux_stack() -> None:
    from acmefleet.fleet import rollout_demo

    every = rollout_demo.demo_hosts(tuple(s.name for s in LINUX))
    assert [stack for _, _, stack in every[1:]] == [s.name for s in LINUX]
    names = [name for name, _, _ in every]
    indexes = [index for _, index, _ in every]
    assert len(set(names)) == len(names) and len(set(indexes)) == len(indexes)
    assert all(len(name) <= 11 for name in names), names  # the lab's limit on host names
    with pytest.raises(RuntimeError, match="no Linux stack"):
        rollout_demo.demo_hosts(("win_acme_iis",))


# ------------------------------------------------------------------ challenges (issue 13)

RFC2136_INPUTS = (
    "acmefleet_rfc2136_server",
    "acmefleet_rfc2136_port",
    "acmefleet_rfc2136_tsig_key",
    "acmefleet_rfc2136_tsig_algorithm",
    "acmefleet_rfc2136_tsig_secret",
)


@pytest.mark.parametrize("stack", LINUX, ids=lambda s: s.name)
def test_a_stacks_challenges_are_its_roles_acmefleet_challenge(stack: stacks.Stack) -> None:
    options = _yaml(_role_dir(stack) / "meta" / "argument_specs.yml")["argument_specs"]["main"][
        "options"
    ]
    defaults = _yaml(_role_dir(stack) / "defaults" / "main.yml")
    if stack.challenges == ("http-01",):
        assert "acmefleet_challenge" not in options, f"{stack.name}: list its challenges"
        return
    spec = options["acmefleet_challenge"]
    assert spec["choices"] == list(stack.challenges), stack.name
    assert spec["default"] == defaults["acmefleet_challenge"] == stack.challenges[0]
    if "dns-01" in stack.challenges:
        for name in RFC2136_INPUTS:
            assert name in options and name in defaults, f"{stack.name}: {name}"
        assert options["acmefleet_rfc2136_tsig_secret"].get("no_log") is True
        readme = (_role_dir(stack) / "README.md").read_text()
        assert all(name in readme for name in ("acmefleet_challenge", *RFC2136_INPUTS))


def _tasks(path: Path) -> list[dict[str, Any]]:
    """Every task of a tasks file, those inside blocks included."""
    found: list[dict[str, Any]] = []
    for task in _yaml(path) or []:
        found.append(task)
        for key in ("block", "rescue", "always"):
            found.extend(task.get(key) or [])
    return found


@pytest.mark.parametrize(
    "stack", [s for s in LINUX if "dns-01" in s.challenges], ids=lambda s: s.name
)
def test_every_task_that_holds_the_tsig_secret_is_no_log(stack: stacks.Stack) -> None:
    holding = []
    for path in sorted((_role_dir(stack) / "tasks").glob("*.yml")):
        for task in _tasks(path):
            body = {k: v for k, v in task.items() if k not in ("name", "when")}
            if "acmefleet_rfc2136_tsig_secret }}" in yaml.safe_dump(body):
                holding.append(task["name"])
                assert task.get("no_log") is True, f"{stack.name} {path.name}: {task['name']}"
    assert holding, f"{stack.name}: no task writes the TSIG secret"


def test_enroll_refuses_a_challenge_the_stack_cannot_do() -> None:
    plays = _yaml(ROOT / "playbooks" / "enroll.yml")
    first = plays[0]["tasks"][0]
    assert "ansible.builtin.assert" in first, first
    assert "acmefleet_stacks[acmefleet_stack].challenges" in str(first["ansible.builtin.assert"])
