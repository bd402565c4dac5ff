# Copyright: acmefleet developers
# Apache License 2.0
"""Quoting for systemd unit files, so a value is one word and expands to itself.

systemd.service(5), "Command lines": words in double quotes, C escapes for ``\\`` and
``"``; ``%`` starts a specifier everywhere (``%%`` is one ``%``) and ``$`` a variable in
``Exec*=`` lines (``$$`` is one ``$``). systemd.exec(5): ``Environment="VAR=value"`` takes the
same quotes and specifiers, and no ``$`` expansion. A control character (a newline would
start a new directive) is refused.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError


def systemd_quote(value: Any, exec_line: bool = True) -> str:
    """``value`` as one double-quoted word of a unit file (``exec_line``: of an Exec line)."""
    text = str(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise AnsibleFilterError(f"a control character in a unit file value: {text[:60]!r}")
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if exec_line:
        text = text.replace("$", "$$")
    return f'"{text}"'


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"systemd_quote": systemd_quote}
