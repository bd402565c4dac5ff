"""The collection's filters are documented: ansible-doc shows every one, and its examples hold.

Filter plugins of one Python file are documented by a ``<filter name>.yml`` sidecar next to it
(DOCUMENTATION, EXAMPLES, RETURN). These tests ask ``ansible-doc`` itself, compare each
documented option with the Python function's parameters, and run the examples on localhost,
checking the result each one states in its comment.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ansible_cli import ansible

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FILTERS = ROOT / "plugins" / "filter"


def _filter_functions() -> dict[str, Any]:
    functions: dict[str, Any] = {}
    for path in sorted(FILTERS.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"filters_{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        functions.update(module.FilterModule().filters())
    return functions


FUNCTIONS = _filter_functions()
FQCNS = sorted(f"acmefleet.fleet.{name}" for name in FUNCTIONS)


def test_ansible_doc_lists_every_filter_as_documented() -> None:
    run = ansible("ansible-doc", "-t", "filter", "--list", "--json", "acmefleet.fleet")
    assert run.returncode == 0, run.stdout + run.stderr
    listed = json.loads(run.stdout)
    assert sorted(listed) == FQCNS
    for name, short in listed.items():
        assert short and "UNDOCUMENTED" not in short, name
    assert len(FQCNS) == 10


def test_each_filter_documents_its_parameters_examples_and_result() -> None:
    run = ansible("ansible-doc", "-t", "filter", "--json", *FQCNS)
    assert run.returncode == 0, run.stdout + run.stderr
    docs = json.loads(run.stdout)
    assert sorted(docs) == FQCNS
    for fqcn, entry in docs.items():
        name = fqcn.rsplit(".", 1)[1]
        doc = entry["doc"]
        assert doc["name"] == name and doc["description"], fqcn
        assert entry["examples"] and f"acmefleet.fleet.{name}" in entry["examples"], fqcn
        assert entry["return"]["_value"]["description"], fqcn
        # The options are the function's parameters: the piped value first (_input), then
        # the arguments in order (``positional``), required exactly when there is no default.
        params = list(inspect.signature(FUNCTIONS[name]).parameters.values())
        options = doc["options"]
        assert set(options) == {"_input", *(p.name for p in params[1:])}, fqcn
        assert doc.get("positional", "_input").replace(" ", "").split(",") == [
            "_input",
            *(p.name for p in params[1:]),
        ], fqcn
        for param in params[1:]:
            has_default = param.default is not inspect.Parameter.empty
            assert bool(options[param.name].get("required")) != has_default, (fqcn, param.name)
            if has_default:
                assert options[param.name]["default"] == param.default, (fqcn, param.name)


def _example_playbook(tmp_path: Path) -> Path:
    """Every example that runs on the controller, and for each ``# result`` comment above a
    ``msg:`` an assertion that the message is that result."""
    tasks: list[dict[str, Any]] = []
    for path in sorted(FILTERS.glob("*.yml")):
        text = yaml.safe_load(path.read_text())["EXAMPLES"]
        expected = re.findall(r"#\s*(.+)\n\s*msg:", text)
        for task in yaml.safe_load(text):
            if "ansible.windows.win_command" in task:
                continue  # needs a Windows host; its expression is rendered below
            tasks.append(task)
            debug = task.get("ansible.builtin.debug") or {}
            if "msg" in debug and expected:
                tasks.append(
                    {
                        "name": f"{path.stem}: the stated result",
                        "ansible.builtin.assert": {
                            "that": ["(shown if shown is string else shown | string) == want"],
                            "fail_msg": "{{ shown }} != {{ want }}",
                        },
                        "vars": {**task.get("vars", {}), "shown": debug["msg"],
                                 "want": expected.pop(0)},
                    }
                )  # fmt: skip
            for fact in task.get("ansible.builtin.set_fact") or {}:
                tasks.append({"ansible.builtin.assert": {"that": [f"{fact} | length > 0"]}})
    play = {
        "name": "Run the filters' examples",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "win_acme_server": "https://acme1.example.net:8555/acme/private/directory",
            "win_acme_names": ["www.example.com"],
            "win_acme_plugin_args": ["--source", "iis", "--siteid", "1"],
            "win_acme_key_type": "ec",
        },
        "tasks": tasks,
    }
    playbook = tmp_path / "examples.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    return playbook


def test_the_examples_run_and_give_the_results_they_state(tmp_path: Path) -> None:
    playbook = _example_playbook(tmp_path)
    run = ansible("ansible-playbook", "-i", "localhost,", str(playbook))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "failed=0" in run.stdout
    assert run.stdout.count(": the stated result]") >= 5
