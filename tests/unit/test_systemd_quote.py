"""plugins/filter/systemd.py: a value is one word of a unit file and expands to itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

_PATH = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "systemd.py"
_SPEC = importlib.util.spec_from_file_location("systemd_filter", _PATH)
assert _SPEC and _SPEC.loader
_MODULE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MODULE)
quote = _MODULE.systemd_quote


def test_quoting() -> None:
    assert quote("/usr/bin/lego") == '"/usr/bin/lego"'
    assert quote('--domains=*.a b"c\\d') == '"--domains=*.a b\\"c\\\\d"'
    assert quote("100% $HOME ${X}") == '"100%% $$HOME $${X}"'
    assert quote("A=100% $HOME", exec_line=False) == '"A=100%% $HOME"'
    assert quote(42) == '"42"'


@pytest.mark.parametrize("value", ["a\nExecStartPre=/bin/sh", "tab\there", "nul\x00", "del\x7f"])
def test_control_characters_are_refused(value: str) -> None:
    with pytest.raises(AnsibleFilterError, match="control character"):
        quote(value)
